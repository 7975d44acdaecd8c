"""Goal energies: how far predicted latents are from the goal frame's latent.

Shapes: predicted latents ``z`` (B, H, N, D) (H planned steps, N tokens per frame, D width), goal latent ``goal``
(B, N, D). The energy is a per-token distance averaged over tokens:
    l1:     mean_d |z - g|            (the default, as the predictor's training loss)
    l2:     ||z - g||_2 over d
    cosine: 1 - cos(z, g) over d
``steps`` picks which predicted steps count: ``last`` (default) scores the last one; ``all`` a weighted mean with
w_h ∝ (h + 1) ** step_weight_power (normalized to sum 1; 0 is uniform, larger powers favour late steps), which
rewards getting close early; ``min`` the closest step, so a long plan that passes through the goal is not
penalized for moving on (success is checked at every env step, so passing through counts).

``probe_weight > 0`` adds a learned linear metric on the same latent difference (``worldmodel.planning.probe``):
    energy_h = d(z_h, g) / latent_scale + probe_weight * mean_k |W^T (z_h - g)|_k
which keeps a slope where the plain token distance is flat (bodies far from their goal positions), and
``state_weight > 0`` adds ``state_weight * mean_k w_k |s_hat_h - probe(g)|_k`` for models that predict states,
where ``w_k`` is ``criterion_weight`` times larger on the state dims the env's success criterion reads
(``criterion_dims``; e.g. PushBlock's block position, not the pusher's) and normalized to mean 1.

``temporal_weight > 0`` adds ``temporal_weight * |M z_h - M g|_2``, a label-free metric fit on the training
episodes' latents so that distances count env steps between frames (``worldmodel.planning.temporal``); it reads
no state, so it is a pure latent energy, and at weight 1 it dominates the token distance (env steps vs ~0.1).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
import torch.nn.functional as F


class Metric(StrEnum):
    """Per-token distance of the energy."""
    l1 = "l1"
    l2 = "l2"
    cosine = "cosine"


class StepMode(StrEnum):
    """Which predicted steps the energy scores."""
    last = "last"
    all = "all"
    min = "min"


METRICS = tuple(m.value for m in Metric)
STEP_MODES = tuple(m.value for m in StepMode)


@dataclass
class EnergyConfig:
    """Settings of the planning energy (``energy.*`` in the plan config)."""

    metric: Metric = Metric.l1  # per-token distance: l1 | l2 | cosine
    steps: StepMode = StepMode.last  # which predicted steps are scored: last | all (weighted mean) | min (closest step)
    step_weight_power: float = 1.0  # steps=all: weight of step h is proportional to (h + 1) ** power
    probe_weight: float = 0.0  # weight of the learned latent->state metric term (0: plain latent distance)
    state_weight: float = 0.0  # weight of |predicted state - state read from the goal latent| (needs the probe)
    probe_episodes: int = 40  # training-dataset episodes whose frames fit the probe
    probe_stride: int = 4  # every k-th frame of those episodes
    probe_min_r2: float = 0.5  # state dims the probe predicts with a lower held-out R^2 are left out
    criterion_weight: float = 1.0  # state term: weight of the dims the env's success criterion reads vs the others
    # state_weight: read the goal state from the goal frame's unpooled latents (if the model has them)
    goal_fine: bool = True
    temporal_weight: float = 0.0  # weight of the learned temporal-distance metric on latents (env steps; no labels)
    temporal_dim: int = 32  # temporal metric: output width of its linear map
    temporal_max_gap: int = 30  # temporal metric: largest env-step gap of the frame pairs it is fit on
    temporal_steps: int = 600  # temporal metric: Adam steps of its fit (512 pairs each)


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
    """Weights over the H planned steps (H,), summing to 1 (one-hot on the last step unless ``steps=all``)."""
    if cfg.steps != "all":
        w = torch.zeros(horizon, device=device)
        w[-1] = 1.0
        return w
    w = torch.arange(1, horizon + 1, device=device, dtype=torch.float32) ** cfg.step_weight_power
    return w / w.sum()


def uses_probe(cfg: EnergyConfig) -> bool:
    """Whether the energy needs a fitted ``LatentProbe``."""
    return cfg.probe_weight > 0 or cfg.state_weight > 0


def goal_energy(z: torch.Tensor, goal: torch.Tensor, cfg: EnergyConfig, probe=None,
                states: torch.Tensor | None = None, goal_state: torch.Tensor | None = None,
                temporal=None) -> torch.Tensor:
    """Energy of predicted latents z (B, H, N, D) against the goal latent (B, N, D) -> (B,).

    ``probe``: a ``LatentProbe``, needed when ``uses_probe(cfg)``; ``states``: (B, H, S) predicted states, needed
    when ``cfg.state_weight > 0`` (see the module docstring); ``goal_state``: (B, K) standardized goal state
    already read from the goal frame (default: the probe reads it from ``goal``); ``temporal``: a
    ``TemporalMetric``, needed when ``cfg.temporal_weight > 0``.
    """
    if cfg.steps not in STEP_MODES:
        raise ValueError(f"unknown energy.steps {cfg.steps!r}; expected one of {STEP_MODES}")
    if cfg.steps == "last":
        z = z[:, -1:]  # only the last step is scored
        states = None if states is None else states[:, -1:]
    z = z.float()  # (B, H', N, D): bf16 rollouts are scored in float32
    d = token_distance(z, goal, cfg.metric)  # (B, H')
    if uses_probe(cfg):
        if probe is None:
            raise ValueError("energy.probe_weight/state_weight > 0 needs a fitted probe (planning.probe.fit_probe)")
        d = d / probe.latent_scale + cfg.probe_weight * probe.distance(z, goal)  # (B, H')
    if cfg.state_weight > 0:
        if states is None:
            raise ValueError("energy.state_weight > 0 needs a world model that predicts states (Rollout.states)")
        d = d + cfg.state_weight * probe.state_distance(states, goal, goal_state)  # (B, H')
    if cfg.temporal_weight > 0:
        if temporal is None:
            raise ValueError("energy.temporal_weight > 0 needs a fitted temporal metric (planning.temporal)")
        d = d + cfg.temporal_weight * temporal.distance(z, goal)  # (B, H')
    if cfg.steps == "last":
        return d[:, 0]  # (B,)
    if cfg.steps == "min":
        return d.min(dim=1).values  # (B,)
    w = step_weights(z.shape[1], cfg, z.device).to(d.dtype)  # (H,)
    return (d * w).sum(-1)  # (B,)
