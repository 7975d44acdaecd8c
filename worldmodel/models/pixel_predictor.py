"""The pixel-space baseline: the latent model's action-conditioned predictor, run on pixel patches.

Tokens. A uint8 frame (H, W, 3) is normalized exactly like every encoder input
(:func:`worldmodel.data.video.normalize_frames`, ImageNet mean/std) and cut into non-overlapping ``p x p``
patches, each flattened channel-major to a token of size ``D_pix = 3 p^2``: (H/p * W/p, 3 p^2) per frame. These
tokens take the place of the encoder latents: the predictor is the very same
:class:`~worldmodel.models.ac_predictor.ACPredictor` (block-causal, 3D RoPE, action and state tokens,
residual start at copy-last, key/value-cached rollout) with ``embed_dim = D_pix`` and the patch grid of the
pixels, so architecture, losses (``worldmodel.train.ac.ac_losses``: teacher forcing + rollout, L1) and the
rollout code are shared, and only the linear maps in and out of the predictor width differ.

Fairness. The pixel patch size is chosen so a frame has as many tokens as the latent model's (pooled) grid
(64 px, encoder patch 8, pool 2 -> 4x4 latent tokens -> pixel patch 16), and the predictor width, depth and
heads are the latent model's; :func:`parameter_counts` reports both parameter counts (within +-20% at the
shipped presets; the difference is the in/out projections, ``2 * (D_pix - D) * width``).

Planning with it needs nothing special: its "latents" are normalized pixel patches, so the planner's default
energy (L1 averaged over tokens between the predicted last step and the encoded goal) is the mean absolute
pixel difference between the predicted last frame and the goal image.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.world_model import LatentWorldModel

CHECKPOINT_KIND = "train_pixel"


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """Images (..., 3, H, W) -> patch tokens (..., (H/p)*(W/p), 3*p*p), row-major patch order."""
    *lead, C, H, W = x.shape
    assert H % p == 0 and W % p == 0, f"patch size {p} must divide the frame size {H}x{W}"
    x = x.reshape(*lead, C, H // p, p, W // p, p)  # (..., C, gh, p, gw, p)
    x = x.movedim(-4, -5).movedim(-2, -4)  # (..., gh, gw, C, p, p)
    return x.reshape(*lead, (H // p) * (W // p), C * p * p)


def unpatchify(tokens: torch.Tensor, p: int, H: int, W: int) -> torch.Tensor:
    """Patch tokens (..., (H/p)*(W/p), 3*p*p) -> images (..., 3, H, W); inverse of :func:`patchify`."""
    *lead, N, D = tokens.shape
    C, gh, gw = D // (p * p), H // p, W // p
    assert N == gh * gw, (N, gh, gw)
    x = tokens.reshape(*lead, gh, gw, C, p, p)  # (..., gh, gw, C, p, p)
    x = x.movedim(-3, -5).movedim(-2, -3)  # (..., C, gh, p, gw, p)
    return x.reshape(*lead, C, H, W)


def frames_to_tokens(frames: torch.Tensor, p: int) -> torch.Tensor:
    """uint8 (or 0..255 float) frames (..., H, W, 3) -> normalized pixel-patch tokens (..., N, 3*p*p)."""
    from worldmodel.data.video import normalize_frames

    return patchify(normalize_frames(frames), p)


def tokens_to_frames(tokens: torch.Tensor, p: int, H: int, W: int) -> torch.Tensor:
    """Normalized pixel-patch tokens (..., N, 3*p*p) -> uint8 frames (..., H, W, 3) (clamped to 0..255)."""
    from worldmodel.data.video import IMAGENET_MEAN, IMAGENET_STD

    x = unpatchify(tokens.float(), p, H, W)  # (..., 3, H, W)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    x = (x * std + mean).mul(255.0).round().clamp(0, 255)
    return x.to(torch.uint8).movedim(-3, -1)  # (..., H, W, 3)


def pixel_model_config(base: ACPredictorConfig, img_size: int, patch_size: int, action_dim: int,
                       state_dim: int, max_steps: int | None = None) -> ACPredictorConfig:
    """The latent predictor's shape (width, depth, heads, MLP, rope) on pixel patches of ``patch_size``."""
    if img_size % patch_size:
        raise ValueError(f"patch_size={patch_size} does not divide the frame size {img_size}")
    g = img_size // patch_size
    return dataclasses.replace(base, embed_dim=3 * patch_size * patch_size, grid_h=g, grid_w=g, pool=1,
                               action_dim=action_dim, state_dim=state_dim,
                               max_steps=max_steps if max_steps is not None else base.max_steps)


def count_parameters(cfg: ACPredictorConfig) -> int:
    """Trainable parameters of an ACPredictor built from ``cfg`` (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = ACPredictor(cfg)
    return sum(p.numel() for p in model.parameters())


def parameter_counts(pixel_cfg: ACPredictorConfig, latent_cfg: ACPredictorConfig) -> dict:
    """Parameter counts of the pixel and latent predictors and their ratio (pixel / latent)."""
    n_pix, n_lat = count_parameters(pixel_cfg), count_parameters(latent_cfg)
    return {"params_pixel": n_pix, "params_latent": n_lat, "params_ratio": round(n_pix / n_lat, 4)}


def patch_size_for(img_size: int, latent_grid: int) -> int:
    """Pixel patch size giving the same tokens per frame as a latent grid of ``latent_grid`` x ``latent_grid``."""
    if img_size % latent_grid:
        raise ValueError(f"a {latent_grid}x{latent_grid} token grid does not tile {img_size}px frames")
    return img_size // latent_grid


class PixelWorldModel(LatentWorldModel):
    """World-model protocol on pixels: ``encode`` = normalized pixel patches, ``rollout`` = the predictor's
    cached path (inherited), ``decode`` = predicted tokens back to uint8 frames (for drift's probe through the
    frozen encoder and for pictures)."""

    def __init__(self, predictor: ACPredictor, patch_size: int, img_size: int, frame_skip: int,
                 action_low, action_high, manifest: dict | None = None):
        super().__init__(None, predictor, pool=1, frame_skip=frame_skip, action_low=action_low,
                         action_high=action_high, manifest=manifest)
        self.patch_size, self.img_size = int(patch_size), int(img_size)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> pixel-patch tokens (B, N, 3 p^2) on the model's device."""
        frames = torch.as_tensor(frames).to(self.device)
        if frames.shape[-3] != self.img_size or frames.shape[-2] != self.img_size:
            raise ValueError(f"pixel model trained on {self.img_size}px frames, got {tuple(frames.shape[-3:-1])}")
        return frames_to_tokens(frames, self.patch_size)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (..., N, 3 p^2) -> uint8 frames (..., H, W, 3)."""
        return tokens_to_frames(tokens, self.patch_size, self.img_size, self.img_size)

    @classmethod
    def load(cls, checkpoint: str | Path, device: str | torch.device = "cpu") -> "PixelWorldModel":
        """Rebuild the pixel world model from a ``wm train-pixel`` checkpoint (eval mode, frozen)."""
        from worldmodel.train.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint, map_location="cpu")
        if ckpt.get("kind") != CHECKPOINT_KIND:
            raise ValueError(f"checkpoint {checkpoint}: kind is {ckpt.get('kind')!r}, expected {CHECKPOINT_KIND!r}")
        res = ckpt["config"]["resolved"]
        predictor = ACPredictor(ACPredictorConfig(**res["model"]))
        predictor.load_state_dict(ckpt["model"])
        predictor.to(device).eval().requires_grad_(False)
        manifest = res["manifest"]
        wm = cls(predictor, patch_size=res["patch_size"], img_size=res["img_size"],
                 frame_skip=ckpt["config"]["frame_skip"], action_low=manifest["action_low"],
                 action_high=manifest["action_high"], manifest=manifest)
        return wm.to(device).eval()


def _self_check() -> None:  # pragma: no cover - tiny sanity run: python -m worldmodel.models.pixel_predictor
    x = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    t = frames_to_tokens(x, 16)
    assert t.shape == (2, 16, 768) and torch.equal(tokens_to_frames(t, 16, 64, 64), x)
    print("ok", t.shape)


if __name__ == "__main__":  # pragma: no cover
    _self_check()
