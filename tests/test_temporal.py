"""The label-free temporal-distance metric (planning/temporal.py): it learns distances that track where the body is,
from frame order alone, and the planner's energy uses it without reading any state."""
import numpy as np
import torch
from scipy.stats import spearmanr

from worldmodel.planning.energy import EnergyConfig, goal_energy, token_distance
from worldmodel.planning.temporal import fit_temporal_metric


def _walks(episodes: int, T: int, seed: int):
    """Latents (E*T, 4, 8) of 2-D walks: the position enters two of 32 coordinates weakly, the other 30 are loud
    per-frame noise; returns latents, positions (E*T, 2), episode ids and steps."""
    rng = np.random.default_rng(seed)
    vel = rng.normal(size=(episodes, T, 2)) * 0.05
    for t in range(1, T):  # smooth velocities (an OU-like policy)
        vel[:, t] = 0.8 * vel[:, t - 1] + 0.2 * vel[:, t]
    pos = np.cumsum(vel, axis=1) + rng.uniform(-1, 1, size=(episodes, 1, 2))  # (E, T, 2)
    z = rng.normal(size=(episodes, T, 32)) * 1.0  # noise
    z[..., :2] = pos * 0.5
    ep = np.repeat(np.arange(episodes), T)
    step = np.tile(np.arange(T), episodes)
    return torch.tensor(z.reshape(-1, 4, 8), dtype=torch.float32), pos.reshape(-1, 2), ep, step


def test_temporal_metric_tracks_position_where_token_distance_is_noise():
    # (lr 1e-2 here: 32 coordinates converge fast; the default 1e-3 x 600 steps stops early on 3072-wide latents)
    z, _, ep, step = _walks(60, 60, seed=0)
    metric = fit_temporal_metric(z, ep, step, dim=8, max_gap=30, steps=400, lr=1e-2)
    zt, pos, _, _ = _walks(10, 60, seed=1)  # held-out episodes
    rho_metric, rho_l1 = [], []
    for g in range(0, len(zt), 37):
        true = np.linalg.norm(pos - pos[g], axis=1)
        goal = zt[g][None].expand(len(zt), -1, -1)
        rho_metric.append(spearmanr(metric.distance(zt[:, None], goal)[:, 0], true).statistic)
        rho_l1.append(spearmanr(token_distance(zt[:, None], goal)[:, 0], true).statistic)
    assert np.mean(rho_metric) > 0.8, np.mean(rho_metric)
    assert np.mean(rho_metric) > np.mean(rho_l1) + 0.4, (np.mean(rho_metric), np.mean(rho_l1))
    assert metric.held_out_corr > 0.3  # vs steps apart: a walk wanders, so distance tracks steps loosely


def test_temporal_metric_is_a_distance_in_env_steps():
    z, _, ep, step = _walks(40, 40, seed=2)
    metric = fit_temporal_metric(z, ep, step, dim=8, max_gap=20, steps=300, lr=1e-2)
    a, b = z[:5], z[5:10]
    d_ab = metric.distance(a[:, None], b)[:, 0]
    assert torch.allclose(d_ab, metric.distance(b[:, None], a)[:, 0], atol=1e-5)  # symmetric
    assert torch.allclose(metric.distance(a[:, None], a)[:, 0], torch.zeros(5), atol=1e-5)  # zero on itself
    # distances are of the order of the steps between frames of one episode, and grow with them
    i = np.flatnonzero((ep < 10) & (step < 20))
    d5, d20 = (metric.distance(z[i][:, None], z[i + k])[:, 0].mean() for k in (5, 20))
    assert 2 < d5 < d20 < 40, (d5, d20)


def test_temporal_energy_needs_its_metric_and_orders_plans():
    z, _, ep, step = _walks(30, 40, seed=3)
    metric = fit_temporal_metric(z, ep, step, dim=8, max_gap=20, steps=200, lr=1e-2)
    goal = z[:1]  # (1, N, D)
    near, far = z[1], z[39]  # one step and 39 steps after the goal frame, same episode
    cfg = EnergyConfig(temporal_weight=1.0)
    e = goal_energy(torch.stack([near, far])[None].transpose(0, 1), goal.expand(2, -1, -1), cfg, temporal=metric)
    assert e[0] < e[1]
    try:
        goal_energy(z[None, :1], goal, cfg)
    except ValueError as err:
        assert "temporal" in str(err)
    else:
        raise AssertionError("a temporal energy without its metric must fail")


def test_fit_refuses_single_frame_episodes():
    z = torch.zeros(3, 4, 8)
    try:
        fit_temporal_metric(z, np.array([0, 1, 2]), np.array([0, 0, 0]))
    except ValueError as err:
        assert "two frames" in str(err)
    else:
        raise AssertionError("no pair to learn from must fail")
