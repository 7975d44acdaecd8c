"""The pixel-space baseline: the latent model's action-conditioned predictor, run on pixel patches.

Tokens. A uint8 frame (H, W, 3) is normalized exactly like every encoder input
(:func:`worldmodel.data.video.normalize_frames`, ImageNet mean/std), area-resized to ``img_size`` (the pixel
model's working resolution) and cut into non-overlapping ``p x p`` patches, each flattened channel-major to a
token of size ``D_pix = 3 p^2``: (img/p)^2 tokens per frame. These tokens take the place of the encoder
latents: the predictor is the very same :class:`~worldmodel.models.ac_predictor.ACPredictor` (block-causal,
3D RoPE, action and state tokens, key/value-cached rollout) built from the same config, so architecture,
losses (``worldmodel.train.ac_losses.ac_losses``) and rollout code are shared.

Fairness (decided): the token grid is the latent model's (pooled) grid, and the working resolution is the
largest one, up to the dataset's, whose patch tokens are no wider than the latent tokens
(:func:`pixel_geometry`). With the cpu predictor (vit_tiny width 192, 4x4 pooled grid) that is 32 px frames in
8 px patches: tokens of exactly the latent shape (16 x 192), hence the same parameter count; at the gpu scale
(ViT-L width 1024) it is the native 64 px in 16 px patches (768 wide). Every width-dependent layer (in/out
projections, the optional global head) scales with the token width, so matching widths is what keeps the
parameter counts within +-20% (:func:`parameter_counts`, asserted in tests/test_pixel.py). Predicted frames are
decoded at the working resolution and resized back to the dataset's (bilinear) for anything that reads frames.

Planning with it needs nothing special: its "latents" are normalized pixel patches, so the planner's energy
(distance averaged over tokens between the predicted last step and the encoded goal) is the pixel distance
between the predicted last frame and the goal image at the working resolution; with ``energy.state_weight`` it
gets the same state term as the latent model, its goal-state probe reading the goal image's pixel tokens.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.contracts.manifest import Manifest
from worldmodel.data.video import IMAGENET_MEAN, IMAGENET_STD, normalize_frames
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.world_model import PredictorWorldModel
from worldmodel.utils.checkpoint import load_checkpoint, load_weights

CHECKPOINT_KIND = "train_pixel"


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """Images (..., 3, H, W) -> patch tokens (..., (H/p)*(W/p), 3*p*p), row-major patch order."""
    *lead, C, H, W = x.shape
    if H % p or W % p:
        raise ValueError(f"patch size {p} must divide the frame size {H}x{W}")
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


def frames_to_tokens(frames: torch.Tensor, p: int, size: int | None = None) -> torch.Tensor:
    """uint8 (or 0..255 float) frames (..., H, W, 3) -> normalized pixel-patch tokens (..., N, 3*p*p),
    area-resized to ``size`` x ``size`` first when given and different."""
    x = normalize_frames(frames)  # (..., 3, H, W)
    if size is not None and x.shape[-1] != size:
        lead = x.shape[:-3]
        x = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(size, size), mode="area")
        x = x.reshape(*lead, 3, size, size)
    return patchify(x, p)


def tokens_to_frames(tokens: torch.Tensor, p: int, H: int, W: int, out_size: int | None = None) -> torch.Tensor:
    """Normalized pixel-patch tokens (..., N, 3*p*p) of H x W images -> uint8 frames (..., H', W', 3) (clamped
    to 0..255), bilinearly resized to ``out_size`` x ``out_size`` when given and different."""
    x = unpatchify(tokens.float(), p, H, W)  # (..., 3, H, W)
    if out_size is not None and out_size != H:
        lead = x.shape[:-3]
        x = F.interpolate(x.reshape(-1, 3, H, W), size=(out_size, out_size), mode="bilinear", align_corners=False)
        x = x.reshape(*lead, 3, out_size, out_size)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    x = (x * std + mean).mul(255.0).round().clamp(0, 255)
    return x.to(torch.uint8).movedim(-3, -1)  # (..., H', W', 3)


def pixel_geometry(frame_size: int, grid: int, token_dim: int, img_size: int = 0) -> tuple[int, int]:
    """(working resolution, patch size) for a ``grid`` x ``grid`` token grid: ``img_size`` if given, else the
    largest resolution <= ``frame_size`` whose 3 p^2-wide tokens are no wider than ``token_dim``."""
    if img_size <= 0:
        p = max(1, int(math.isqrt(max(token_dim, 3) // 3)))
        img_size = min(frame_size, grid * p)
    if img_size % grid:
        raise ValueError(f"a {grid}x{grid} token grid does not tile {img_size}px frames")
    return img_size, img_size // grid


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


class PixelWorldModel(PredictorWorldModel):
    """World-model protocol on pixels: ``encode`` = normalized pixel patches, ``rollout`` = the predictor's
    cached path (shared), ``decode`` = predicted tokens back to uint8 frames (for drift's probe through the
    frozen encoder and for pictures; :class:`~worldmodel.models.protocol.PixelSpace`)."""

    def __init__(self, predictor: ACPredictor, patch_size: int, img_size: int, frame_size: int, frame_skip: int,
                 action_low, action_high, manifest: Manifest | None = None, state_dims: list[int] | None = None):
        super().__init__(predictor, frame_skip, action_low, action_high, manifest, state_dims)
        self.patch_size, self.img_size, self.frame_size = int(patch_size), int(img_size), int(frame_size)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) at the dataset resolution -> pixel-patch tokens (B, N, 3 p^2)."""
        frames = torch.as_tensor(frames).to(self.device)
        if frames.shape[-3] != self.frame_size or frames.shape[-2] != self.frame_size:
            raise ValueError(f"pixel model trained on {self.frame_size}px frames, got {tuple(frames.shape[-3:-1])}")
        return frames_to_tokens(frames, self.patch_size, self.img_size)

    def encode_fine(self, frames: torch.Tensor) -> torch.Tensor:
        """The planner's goal-state probe input: the pixel tokens themselves (B, N, 3 p^2), the model's finest."""
        return self.encode(frames)

    def pool_fine(self, z_fine: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Identity: the pixel model's tokens are not pooled."""
        return z_fine

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (..., N, 3 p^2) -> uint8 frames (..., H, W, 3) at the dataset resolution."""
        return tokens_to_frames(tokens, self.patch_size, self.img_size, self.img_size, out_size=self.frame_size)

    @classmethod
    def load(cls, checkpoint: str | Path, device: str | torch.device = "cpu") -> "PixelWorldModel":
        """Rebuild the pixel world model from a ``wm train-pixel`` checkpoint (eval mode, frozen)."""
        ckpt = load_checkpoint(checkpoint, map_location="cpu")
        meta = CheckpointMeta.of(ckpt, str(checkpoint)).expect(CHECKPOINT_KIND, str(checkpoint))
        res = meta.record(str(checkpoint))
        predictor = ACPredictor(ACPredictorConfig(**res.model))
        load_weights(predictor, ckpt["model"], checkpoint, "predictor")
        predictor.to(device).eval().requires_grad_(False)
        manifest = res.manifest
        wm = cls(predictor, patch_size=res.patch_size, img_size=res.img_size, frame_size=res.frame_size,
                 frame_skip=meta.frame_skip, action_low=manifest.action_low, action_high=manifest.action_high,
                 manifest=manifest, state_dims=res.state_dims)
        return wm.to(device).eval()

