"""The energy landscape ranks frames by their true distance to the goal when the latent encodes position smoothly,
not when it is noise, and less well when the code is local (a token-wise distance goes flat once the body has left
the goal's patches)."""
from __future__ import annotations

import torch

from worldmodel.evaluation.landscape import energy_landscape

GRID = torch.stack(torch.meshgrid(torch.linspace(0, 1, 4), torch.linspace(0, 1, 4), indexing="ij"), -1).reshape(16, 2)


def _episodes(n: int = 4, T: int = 40) -> list[torch.Tensor]:
    """Points moving on straight noisy lines across the unit square (T, 2)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        a, b = torch.rand(2, generator=g), torch.rand(2, generator=g)
        t = torch.linspace(0, 1, T)[:, None]
        out.append((a + (b - a) * t + 0.01 * torch.randn(T, 2, generator=g)).clamp(0, 1))
    return out


def _code(states: torch.Tensor, width: float) -> torch.Tensor:
    """Token i fires exp(-|p - c_i|^2 / width^2) at the point p: latents (T, 16 tokens, 4 channels)."""
    act = torch.exp(-((states[:, None] - GRID[None]) ** 2).sum(-1) / width**2)  # (T, 16)
    return act[..., None] * torch.tensor([1.0, -0.5, 0.25, 2.0])  # (T, 16, 4)


def test_a_smooth_position_code_ranks_frames_by_distance():
    states = _episodes()
    smooth = energy_landscape([_code(s, 0.8) for s in states], states, dims=[0, 1])
    assert smooth["rank_corr"] > 0.9 and smooth["rank_corr_steps"] > 0.9
    local = energy_landscape([_code(s, 0.12) for s in states], states, dims=[0, 1])
    assert local["rank_corr"] < smooth["rank_corr"] - 0.1  # flat once far from the goal's tokens
    g = torch.Generator().manual_seed(1)
    noise = energy_landscape([torch.randn(len(s), 16, 4, generator=g) for s in states], states, dims=[0, 1])
    assert abs(noise["rank_corr"]) < 0.2
    assert smooth["goals"] == 8 and smooth["candidates"] == 80


def test_dims_pick_the_true_distance():
    """A code of x alone ranks by distance over x, not over y."""
    states = _episodes()
    x_only = [_code(torch.stack([s[:, 0], torch.zeros(len(s))], -1), 0.8) for s in states]
    assert energy_landscape(x_only, states, dims=[0])["rank_corr"] > 0.9
    assert energy_landscape(x_only, states, dims=[1])["rank_corr"] < 0.5
