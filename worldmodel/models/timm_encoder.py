"""timm image backbones as frozen frame encoders (the DINO-WM recipe: frozen DINOv2 patch features).

``encoder=timm:<model name>`` with ``encoder_weights=<local file>``: the backbone is built by timm without
downloading (``pretrained_cfg_overlay={"file": ...}``, so timm's own checkpoint filter adapts the weights, e.g.
resamples a ViT's position table to ``img_size``). Frames are resized to the backbone's input size, normalized with
its own mean/std, and encoded by ``forward_features``; the latents are its patch tokens without the prefix tokens
(class and register tokens), on the backbone's grid. ``encoder=timm:hf-hub:<org>/<name>[@revision]`` takes a timm
model repository on the Hugging Face hub instead (its ``config.json`` names the architecture, its weights file is
read from the hub's cache: :func:`from_hub`).
"""
from __future__ import annotations

import json
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from worldmodel.data import hub

HUB_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # what timm pushes to the hub, newest first


def from_hub(spec: str) -> tuple[str, Path]:
    """(timm model name, local weights file) of a timm repository on the hub, ``hf-hub:<org>/<name>[@rev]``."""
    config = json.loads(hub.model_file(spec, "config.json").read_text())
    if "architecture" not in config:
        raise ValueError(f"encoder=timm:{spec}: its config.json names no architecture (not a timm model repository)")
    tag = (config.get("pretrained_cfg") or {}).get("tag")
    name = f"{config['architecture']}.{tag}" if tag else config["architecture"]
    return name, hub.first_model_file(spec, HUB_WEIGHTS)


class TimmFrameEncoder(nn.Module):
    """Frame-encoder interface (:mod:`worldmodel.models.encoders`) over a timm backbone.

    Args:
        name: timm model name (e.g. ``vit_small_patch14_dinov2.lvd142m``).
        img_size: input size frames are resized to (0: the model's default).
        weights: a local weights file (``.pth``, ``.bin``, ``.safetensors``) read through timm; None: random init.
        model_kwargs: further architecture settings for ``timm.create_model`` (e.g. ``reg_tokens``).
    """

    def __init__(self, name: str, img_size: int = 0, weights: str | Path | None = None,
                 model_kwargs: dict | None = None):
        super().__init__()
        kwargs = {**(model_kwargs or {}), "num_classes": 0}
        if img_size:
            kwargs["img_size"] = int(img_size)
        if weights is not None and not Path(weights).is_file():
            raise FileNotFoundError(f"encoder_weights {weights}: no such file")
        try:
            if weights is None:
                self.model = timm.create_model(name, pretrained=False, **kwargs)
            else:
                self.model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(weights)},
                                               **kwargs)
        except RuntimeError as e:  # unknown name, or weights that do not fit it
            raise ValueError(f"encoder=timm:{name}: {str(e).splitlines()[0]}") from e
        self.name = name
        cfg = self.model.pretrained_cfg
        size = img_size or int(cfg.get("input_size", (3, 224, 224))[-1])
        self.img_size = size
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1))
        self.num_prefix = int(getattr(self.model, "num_prefix_tokens", 0))
        self.embed_dim = int(self.model.num_features)
        self.model.eval().requires_grad_(False)

    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) patch grid of a frame (every frame is resized to ``img_size`` first)."""
        gh, gw = self.model.patch_embed.grid_size
        return int(gh), int(gw)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 3, img_size, img_size) -> patch tokens (B, h*w, D): ``forward_features``
        without the prefix tokens."""
        return self.model.forward_features(x)[:, self.num_prefix:]

    @torch.no_grad()
    def encode_images(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> patch tokens (B, h*w, D)."""
        x = frames.to(self.mean.device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False,
                              antialias=True)
        return self.tokens((x - self.mean) / self.std).float()
