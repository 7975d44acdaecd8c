"""A learned linear metric on latents for the planning energy (``energy.probe_weight > 0``).

Why: with a small frozen encoder, the L1 distance between two frames' latents is nearly flat once the moving
body no longer overlaps its goal position (measured on PointReach: the same ~0.02 from 0.3 to 2 units away),
so a planner whose predicted end states are all "far" ranks them by noise. A ridge probe from latents to the
simulator state, fit on frames of the world model's own training dataset encoded by the model itself,
measures the same difference ``z_pred - z_goal`` along the directions that carry the state:

    probe term = mean_k |((z_pred - z_goal).flatten() @ W)_k|        (standardized state units)

over the state dims k whose held-out R^2 is at least ``probe_min_r2`` (W is linear, so this is a distance
between the two latents, not between states). ``state_weight > 0`` adds, for models that predict future states
(``last_states`` after ``rollout``, the AC predictor's state head), the distance between the predicted state and
the state the probe reads from the goal latent: a slope even where predicted latents barely move. The latent term is divided by ``latent_scale`` (the mean latent
distance between random frame pairs of the dataset) so both terms are unitless. The goal is still given only
as an image; states are used only to fit W, from the same data the world model was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class LatentProbe:
    """Linear map from flattened latents to standardized states, restricted to well-predicted dims."""

    weight: torch.Tensor  # (N * D, K) standardized-state coefficients of the kept dims
    x_mean: torch.Tensor  # (N * D,) mean flattened latent of the fit
    y_mean: torch.Tensor  # (K,) state mean of the kept dims
    y_std: torch.Tensor  # (K,) state std of the kept dims
    dims: list[int]  # the K kept state dims
    r2: list[float]  # held-out R^2 of every state dim
    latent_scale: float  # mean per-token metric distance between random frame pairs

    def distance(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """z (B, H, N, D), goal (B, N, D) -> (B, H) mean |W^T (z - goal)| over kept dims."""
        diff = (z - goal[:, None]).flatten(-2).float()  # (B, H, N*D)
        return (diff @ self.weight.to(diff.device)).abs().mean(-1)  # (B, H)

    def goal_state(self, goal: torch.Tensor) -> torch.Tensor:
        """Standardized state read from latents: goal (B, N, D) -> (B, K)."""
        x = goal.flatten(-2).float() - self.x_mean.to(goal.device)  # (B, N*D)
        return x @ self.weight.to(goal.device)  # (B, K)

    def state_distance(self, states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Predicted states (B, H, S) (simulator units) vs the state read from the goal latent (B, N, D)
        -> (B, H) mean standardized |difference| over kept dims."""
        s = (states[..., self.dims].float() - self.y_mean.to(states.device)) / self.y_std.to(states.device)
        return (s - self.goal_state(goal)[:, None]).abs().mean(-1)  # (B, H)


def dataset_of(checkpoint: str) -> str:
    """The training dataset recorded in a world-model checkpoint's config ('' if none)."""
    from worldmodel.train.checkpoint import load_checkpoint

    cfg = load_checkpoint(checkpoint).get("config", {})
    return str(cfg.get("resolved", {}).get("dataset") or cfg.get("dataset") or "")


@torch.no_grad()
def fit_probe(model, dataset: str | Path, episodes: int = 40, stride: int = 4, min_r2: float = 0.5,
              metric: str = "l1", batch: int = 128, seed: int = 0) -> LatentProbe:
    """Encode every ``stride``-th frame of ``episodes`` dataset episodes with ``model.encode`` and fit a ridge
    probe latents -> states (the drift evaluation's ``RidgeProbe``, lambda chosen on a held-out fifth)."""
    from worldmodel.data.rollouts import load_episode, read_manifest
    from worldmodel.evaluation.drift import RidgeProbe
    from worldmodel.planning.energy import token_distance

    manifest = read_manifest(dataset)
    ids = sorted(int(e["id"]) for e in manifest["episode_list"])
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(ids, size=min(episodes, len(ids)), replace=False).tolist())
    frames, states = [], []
    for i in pick:
        ep = load_episode(dataset, i, manifest)
        frames.append(ep["frames"][::stride])
        states.append(ep["states"][::stride])
    frames_np, states_t = np.concatenate(frames), torch.as_tensor(np.concatenate(states), dtype=torch.float32)
    z = torch.cat([model.encode(torch.from_numpy(frames_np[i:i + batch])).float().cpu()
                   for i in range(0, len(frames_np), batch)])  # (n, N, D)
    probe = RidgeProbe(z, states_t, seed=seed)
    r2 = probe.r2.tolist()
    dims = [k for k, v in enumerate(r2) if v >= min_r2] or [int(np.argmax(r2))]
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))
    scale = token_distance(z[:, None], z[perm], metric).mean().item()  # (n, 1) -> scalar
    return LatentProbe(weight=probe.w[:, dims].contiguous(), x_mean=probe.x_mean, y_mean=probe.y_mean[dims],
                       y_std=probe.y_std[dims], dims=dims, r2=[round(v, 4) for v in r2], latent_scale=max(scale, 1e-8))
