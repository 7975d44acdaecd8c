"""The grid probe reads where things are from a token grid that keeps positions, and cannot from pooled tokens."""
from __future__ import annotations

import torch

from worldmodel.evaluation.encoder_probe import grid_probe_r2


class Pixels:
    """A stand-in encoder: every pixel a token (n, H*W, 3), or their mean when ``pooled``."""

    def __init__(self, pooled: bool):
        self.pooled = pooled

    def encode_images(self, frames: torch.Tensor) -> torch.Tensor:
        tokens = frames.float().flatten(1, 2) / 255  # (n, H*W, 3)
        return tokens.mean(1, keepdim=True) if self.pooled else tokens


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 frames with one bright pixel at (x, y); states (x, y, constant)."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 8, (n, 2), generator=g)
    frames = torch.zeros(n, 8, 8, 3, dtype=torch.uint8)
    frames[torch.arange(n), xy[:, 1], xy[:, 0]] = 255
    return frames, torch.cat([xy.float(), torch.ones(n, 1)], 1)


def test_a_token_grid_shows_position_and_pooled_tokens_do_not():
    data = {"train": _data(300, 0), "test": _data(100, 1), "labels": ["x", "y", "const"]}
    grid = grid_probe_r2(Pixels(pooled=False), data)
    pooled = grid_probe_r2(Pixels(pooled=True), data)
    assert grid["x"] > 0.95 and grid["y"] > 0.95
    assert pooled["x"] < 0.1 and pooled["y"] < 0.1
    assert grid["const"] is None  # nothing to predict on a constant dim
