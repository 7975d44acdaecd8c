"""Goal energies: how far predicted latents are from the goal frame's latent.

Shapes: predicted latents ``z`` (B, H, N, D) (H planned steps, N tokens per frame, D width), goal latent ``goal``
(B, N, D). The energy is a per-token distance averaged over tokens:
    l1:     mean_d |z - g|            (the default, as the predictor's training loss)
    l2:     ||z - g||_2 over d
    cosine: 1 - cos(z, g) over d
By default only the last predicted step is scored; ``all_steps`` scores every step with weights
w_h ∝ (h + 1) ** step_weight_power (normalized to sum 1), so 0 is uniform and larger powers favour late steps.
Scoring all steps rewards getting close early, which smooths the landscape for long horizons.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

METRICS = ("l1", "l2", "cosine")


@dataclass
class EnergyConfig:
    """Settings of the planning energy (``energy.*`` in the plan config)."""

    metric: str = "l1"  # per-token distance: l1 | l2 | cosine
    all_steps: bool = False  # score every planned step instead of only the last one
    step_weight_power: float = 1.0  # all_steps: weight of step h is proportional to (h + 1) ** power


def token_distance(z: torch.Tensor, goal: torch.Tensor, metric: str = "l1") -> torch.Tensor:
    """Distance per step averaged over tokens: z (B, H, N, D), goal (B, N, D) -> (B, H)."""
    g = goal[:, None]  # (B, 1, N, D)
    if metric == "l1":
        d = (z - g).abs().mean(-1)  # (B, H, N)
    elif metric == "l2":
        d = (z - g).pow(2).sum(-1).clamp_min(1e-12).sqrt()  # (B, H, N)
    elif metric == "cosine":
        d = 1 - F.cosine_similarity(z, g.expand_as(z), dim=-1)  # (B, H, N)
    else:
        raise ValueError(f"unknown energy metric {metric!r}; expected one of {METRICS}")
    return d.mean(-1)  # (B, H)


def step_weights(horizon: int, cfg: EnergyConfig, device=None) -> torch.Tensor:
    """Weights over the H planned steps (H,), summing to 1 (one-hot on the last step unless ``all_steps``)."""
    if not cfg.all_steps:
        w = torch.zeros(horizon, device=device)
        w[-1] = 1.0
        return w
    w = torch.arange(1, horizon + 1, device=device, dtype=torch.float32) ** cfg.step_weight_power
    return w / w.sum()


def goal_energy(z: torch.Tensor, goal: torch.Tensor, cfg: EnergyConfig) -> torch.Tensor:
    """Energy of predicted latents z (B, H, N, D) against the goal latent (B, N, D) -> (B,)."""
    if not cfg.all_steps:
        return token_distance(z[:, -1:], goal, cfg.metric)[:, 0]  # (B,) only the last step is scored
    w = step_weights(z.shape[1], cfg, z.device).to(z.dtype)  # (H,)
    return (token_distance(z, goal, cfg.metric) * w).sum(-1)  # (B,)
