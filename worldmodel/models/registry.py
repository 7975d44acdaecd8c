"""The one loader registry: a checkpoint's ``kind`` -> the world-model class that loads it."""
from __future__ import annotations

from pathlib import Path

import torch

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.models.pixel_predictor import PixelWorldModel
from worldmodel.models.world_model import LatentWorldModel
from worldmodel.utils.checkpoint import load_checkpoint

# checkpoint kind -> (short name used in summaries and plots, class with ``load(path, device)``)
LOADERS: dict[str, tuple[str, type]] = {
    "train_ac": ("latent", LatentWorldModel),
    "train_pixel": ("pixel", PixelWorldModel),
}


def load_world_model(checkpoint: str | Path, device: str | torch.device = "cpu", kind: str = "auto"):
    """Load the world model in ``checkpoint``; ``kind`` auto reads the checkpoint's field.

    Returns (model, kind); the model follows :class:`~worldmodel.models.protocol.WorldModel`.
    """
    if kind == "auto":
        kind = CheckpointMeta.of(load_checkpoint(checkpoint), str(checkpoint)).kind
    if kind not in LOADERS:
        raise ValueError(f"checkpoint {checkpoint}: kind {kind!r} is not a world model; expected one of "
                         f"{sorted(LOADERS)}")
    return LOADERS[kind][1].load(checkpoint, device), kind


def short_name(kind: str) -> str:
    """'train_ac' -> 'latent', 'train_pixel' -> 'pixel' (summary keys and plot labels)."""
    return LOADERS[kind][0]
