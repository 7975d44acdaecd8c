"""Energy landscape: does the planner's latent distance to a goal frame track how far the goal really is?

On held-out episodes, for goal frames g (evenly spaced frames of every held-out episode) and candidate frames x (every
``stride``-th frame of all held-out episodes), compare the planner's energy ``d(z_x, z_g)`` (mean over tokens of the
per-token distance, :func:`worldmodel.planning.energy.token_distance`) with the true distance ``||s_x - s_g||`` over
the env's success-criterion dims (evaluation only: no state reaches a model here). Per goal, Spearman's rank
correlation over the candidates; reported as the mean over goals (``rank_corr``), with ``rank_corr_steps``: within
the goal's own episode, the correlation of the energy with the number of steps between frame and goal (frames before
the goal). A token-wise distance that is flat once the body has left the goal's patches gives a low correlation;
it is the cheap predictor of how far latent-energy planning can get. ``temporal_landscape`` measures the same for the
planner's default energy, the temporal metric fit on the training episodes.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from scipy.stats import spearmanr

import worldmodel.envs as envs
from worldmodel.contracts.manifest import Manifest
from worldmodel.envs import protocol
from worldmodel.planning.energy import token_distance
from worldmodel.planning.temporal import fit_temporal_metric


def criterion_dims(manifest: Manifest) -> list[int] | None:
    """The state dims the dataset's env judges success on, None when the env cannot say (every dim then)."""
    try:
        env = envs.make(manifest.env_id, render=False, **manifest.env_kwargs)
    except (gym.error.Error, KeyError, ValueError):  # an env not registered here (a converted dataset): every dim
        return None
    try:
        dims = protocol.defaults(env).get("criterion_dims")
    finally:
        env.close()
    return None if dims is None else [int(d) for d in dims]


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho, None when either side is constant (undefined)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def energy_landscape(latents: list[torch.Tensor], states: list[torch.Tensor], dims: list[int] | None,
                     metric: str = "l1", goals_per_episode: int = 2, stride: int = 2,
                     max_candidates: int = 2000) -> dict:
    """Rank correlations between latent energy and true distance to goal frames.

    Args:
        latents: per held-out episode, latents (T, N, D) as the planner encodes frames (one entry per frame).
        states: per episode, simulator states (T, S) (evaluation only).
        dims: state dims of the true distance (the success criterion's); None: every dim, standardized.
        metric: the energy's per-token distance (l1 | l2 | cosine).
        goals_per_episode: goal frames per episode (evenly spaced, the last frame included).
        stride: every stride-th frame of every episode is a candidate.
        max_candidates: candidates kept (evenly subsampled) per goal.
    Returns:
        {"rank_corr", "rank_corr_steps", "goals", "candidates"}: means over goals (None when undefined).
    """
    cand_z = torch.cat([z[::stride] for z in latents]).float()  # (C, N, D)
    cand_s = torch.cat([s[::stride] for s in states]).double()  # (C, S)
    if len(cand_z) > max_candidates:
        keep = torch.linspace(0, len(cand_z) - 1, max_candidates).long()
        cand_z, cand_s = cand_z[keep], cand_s[keep]
    scale = cand_s.std(0).clamp_min(1e-8) if dims is None else None
    pick = (lambda s: s / scale) if dims is None else (lambda s: s[..., dims])  # noqa: E731
    rho, rho_steps = [], []
    for z, s in zip(latents, states):
        T = len(z)
        for t in np.unique(np.linspace(T // 2, T - 1, goals_per_episode).round().astype(int)):
            goal = z[t].float()  # (N, D)
            energy = token_distance(cand_z[:, None], goal[None].expand(len(cand_z), -1, -1), metric)[:, 0]  # (C,)
            true = (pick(cand_s) - pick(s[t].double())).norm(dim=-1)  # (C,)
            rho.append(_spearman(energy.numpy(), true.numpy()))
            before = torch.arange(0, t, stride)
            if len(before) >= 3:
                e_own = token_distance(z[before].float()[:, None], goal[None].expand(len(before), -1, -1), metric)[:, 0]
                rho_steps.append(_spearman(e_own.numpy(), (t - before).numpy().astype(float)))
    mean = lambda xs: (round(float(np.mean([x for x in xs if x is not None])), 4)  # noqa: E731
                       if any(x is not None for x in xs) else None)
    return {"rank_corr": mean(rho), "rank_corr_steps": mean(rho_steps), "goals": len(rho), "candidates": len(cand_z)}


def temporal_landscape(train: list[torch.Tensor], latents: list[torch.Tensor], states: list[torch.Tensor],
                       dims: list[int] | None, stride: int = 2, max_gap: int = 30, seed: int = 0) -> dict:
    """``energy_landscape`` of the planner's temporal metric (``worldmodel.planning.temporal``), fit as ``wm plan``
    fits it: on every ``stride``-th frame of the training episodes' latents ``train`` (each (T, N, D)), no label."""
    z = torch.cat([x[::stride] for x in train]).float()  # (n, N, D)
    episode = np.concatenate([np.full(len(x[::stride]), i) for i, x in enumerate(train)])
    step = np.concatenate([np.arange(0, len(x), stride) for x in train])
    metric = fit_temporal_metric(z, episode, step, max_gap=max_gap, seed=seed)
    return energy_landscape([metric.embed(x.float())[:, None] for x in latents], states, dims, "l2")
