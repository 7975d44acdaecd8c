"""A label-free temporal-distance metric on latents: the planning energy's default term (``energy.temporal_weight``).

Why: the token-wise distance between two frames' latents is nearly flat once a small body has left its goal's
patches (Spearman ρ 0.46-0.65 against the true distance on the main job's tasks, for a pretrained and a
random-init encoder alike), although a linear read-out finds the body's position in the same tokens. A metric
learned on the latents of the world model's own training episodes, so that the distance between two frames of one
episode matches the number of env steps between them, gives the slope back (ρ 0.78-0.87, lab note
``docs/experiments/2026-12-07-encoder-screen.md``) and needs no state label: only frames and their order in time,
which every recording has. It is the "temporal distance within episodes" of value-guided / quasimetric planners.

Model: a linear map M (N * D -> ``dim``) of standardized flattened latents,
    d(z_a, z_b) = || M ((z_a - z_b) / sd) ||_2        (in env steps),
fit with Adam on random pairs (a, b) of frames of one episode at most ``max_gap`` env steps apart, loss
(d - Δt)² / (Δt + 1), Δt = |step_a - step_b| (the weight keeps near pairs as precise as far ones in relative
terms). Being linear, d is a distance between the latents (a seminorm), applied the same way to predicted latents
and to the goal image's latent. Fitting takes seconds on the cpu preset's planner frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr


@dataclass(frozen=True)
class TemporalMetric:
    """A fitted temporal-distance metric on flattened latents (see the module docstring); immutable."""

    weight: torch.Tensor  # (N * D, dim) the map M, applied to latents divided by ``scale``
    scale: torch.Tensor  # (N * D,) per-coordinate std of the fit's latents
    fit_loss: float  # the fit's final weighted squared error (env steps²)
    held_out_corr: float  # Spearman ρ between d and Δt on pairs of held-out episodes

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (..., N, D) -> metric coordinates (..., dim): d(a, b) = |embed(a) - embed(b)|."""
        x = z.flatten(-2).float() / self.scale.to(z.device)  # (..., N*D)
        return x @ self.weight.to(z.device)  # (..., dim)

    def distance(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Predicted latents z (B, H, N, D) vs the goal latent (B, N, D) -> (B, H) distance in env steps."""
        return (self.embed(z) - self.embed(goal)[:, None]).norm(dim=-1)  # (B, H)


def _pair_sampler(episode: np.ndarray, step: np.ndarray, max_gap: int):
    """A sampler ``(n, rng) -> (a, b)`` of ``n`` random index pairs of frames of one episode at most ``max_gap`` env
    steps apart (the frames' order is sorted once here, not per batch)."""
    order = np.lexsort((step, episode))  # frames sorted by episode, then step
    ep_sorted = episode[order]
    starts = np.searchsorted(ep_sorted, ep_sorted, side="left")  # (n_frames,) first frame of each frame's episode
    ends = np.searchsorted(ep_sorted, ep_sorted, side="right")  # (n_frames,) one past its last frame
    same = np.diff(ep_sorted) == 0
    stride = max(int(np.median(np.diff(step[order])[same])) if same.any() else 1, 1)  # env steps between frames
    reach = max(max_gap // stride, 1)  # partners within this many positions of the sorted order

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        i = rng.integers(0, len(order), n)  # positions in ``order``
        lo, hi = np.maximum(starts[i], i - reach), np.minimum(ends[i] - 1, i + reach)
        j = lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64)
        return order[i], order[j]

    return sample


def fit_temporal_metric(z: torch.Tensor, episode: np.ndarray, step: np.ndarray, dim: int = 32, max_gap: int = 30,
                        steps: int = 600, batch: int = 512, lr: float = 1e-3, seed: int = 0) -> TemporalMetric:
    """Fit the metric on encoded frames: z (n, N, D) latents, ``episode`` (n,) and ``step`` (n,) each frame's
    episode id and env step. No state is read. A fifth of the episodes is held out to report ``held_out_corr``.

    Raises ValueError when no episode has two frames (no pair to learn from)."""
    episode, step = np.asarray(episode), np.asarray(step)
    ids = np.unique(episode)
    if len(episode) < 2 or all((episode == e).sum() < 2 for e in ids):
        raise ValueError("the temporal metric needs episodes with at least two frames each; got "
                         f"{len(episode)} frames in {len(ids)} episodes")
    rng = np.random.default_rng(seed)
    held = set(rng.choice(ids, size=len(ids) // 5, replace=False).tolist()) if len(ids) >= 5 else set()
    train = np.array([e not in held for e in episode])
    x = z.flatten(1).float()  # (n, N*D)
    scale = x[torch.from_numpy(train)].std(0) + 1e-6  # (N*D,)
    x = x / scale
    tr_idx = np.flatnonzero(train)
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(x.shape[1], dim, generator=gen) / np.sqrt(x.shape[1])).requires_grad_()  # (N*D, dim)
    opt = torch.optim.Adam([weight], lr=lr)
    loss = torch.zeros(())
    sample = _pair_sampler(episode[tr_idx], step[tr_idx], max_gap)
    with torch.enable_grad():
        for _ in range(steps):
            a, b = sample(batch, rng)
            a, b = tr_idx[a], tr_idx[b]
            gap = torch.from_numpy(np.abs(step[a] - step[b])).float()  # (batch,) env steps
            d = ((x[a] - x[b]) @ weight).norm(dim=-1)  # (batch,)
            loss = ((d - gap) ** 2 / (gap + 1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    metric = TemporalMetric(weight.detach(), scale, float(loss.detach()), float("nan"))
    if held:
        te_idx = np.flatnonzero(~train)
        a, b = _pair_sampler(episode[te_idx], step[te_idx], max_gap)(2048, rng)
        a, b = te_idx[a], te_idx[b]
        with torch.no_grad():
            d = (metric.embed(z[a]) - metric.embed(z[b])).norm(dim=-1).numpy()  # (2048,)
        metric = TemporalMetric(metric.weight, scale, metric.fit_loss, round(float(
            spearmanr(d, np.abs(step[a] - step[b])).statistic), 4))
    return metric
