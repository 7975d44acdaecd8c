"""``wm bench plan``: seconds per replanning step, cached rollout vs. full recompute, as a ratio.

One replanning step = what ``wm plan`` does between two env steps for all its episodes at once: encode the
current frames, run the optimizer (``planner.iterations`` energy calls of episodes x samples rollouts over
``planner.horizon`` steps), shift the warm start. The world model is shaped like the ``command_preset`` runs
(encoder from the pretrain config, predictor from the train-ac config, via ``worldmodel.bench.ac``) with random
weights: speed does not depend on them. Episodes, planner and energy come from the plan config of the same
preset (``overrides`` go to it, e.g. ``overrides=[planner.samples=32]``). The only difference between the two
variants is ``rollout(..., use_cache=False)``.
"""
from __future__ import annotations

import statistics

import numpy as np
import torch

from worldmodel.bench.ac import _compose, build_predictor
from worldmodel.commands import compose_config
from worldmodel.config import to_dict
from worldmodel.models.video_vit import VideoViT, VideoViTConfig
from worldmodel.models.world_model import LatentWorldModel
from worldmodel.planning.energy import EnergyConfig, uses_probe
from worldmodel.planning.mpc import Goals, PlannerController, PlanSettings
from worldmodel.planning.optimizers import planner_settings
from worldmodel.planning.probe import LatentProbe
from worldmodel.planning.temporal import TemporalMetric
from worldmodel.utils.device import resolve_device


class FullRecompute:
    """Wraps a world model so that ``rollout`` recomputes the whole sequence every step (no KV cache)."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def rollout(self, z0, state0, actions):
        return self._model.rollout(z0, state0, actions, use_cache=False)


def build_world_model(preset: str, device, action_dim: int = 2, state_dim: int = 4):
    """A LatentWorldModel with random weights shaped like the ``preset`` encoder + predictor."""

    pre = _compose("pretrain", [f"preset={preset}"])
    fields = VideoViTConfig.__dataclass_fields__
    enc_cfg = VideoViTConfig(**{k: v for k, v in to_dict(pre.model).items() if k in fields}) \
        if pre is not None and "model" in pre else VideoViTConfig()
    encoder = VideoViT(enc_cfg).eval().requires_grad_(False)
    predictor = build_predictor(preset, [], action_dim=action_dim, state_dim=state_dim).requires_grad_(False)
    ac = _compose("train-ac", [f"preset={preset}"])
    frame_skip = int(ac.frame_skip) if ac is not None else 1
    predictor.set_normalization(-torch.ones(frame_skip * action_dim), torch.ones(frame_skip * action_dim),
                                torch.zeros(state_dim), torch.ones(state_dim))
    wm = LatentWorldModel(encoder, predictor, pool=predictor.cfg.pool, frame_skip=frame_skip,
                          action_low=-np.ones(action_dim), action_high=np.ones(action_dim))
    return wm.to(device).eval(), enc_cfg.img_size


def time_replanning(model, plan_cfg, img_size: int, repeats: int, warmup: int) -> tuple[float, str]:
    """Median seconds of one batched replanning step for ``plan_cfg.episodes`` episodes, and the rollouts' dtype."""
    E = int(plan_cfg.episodes)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (E, img_size, img_size, 3), dtype=np.uint8)  # (E, H, W, 3)
    states = rng.standard_normal((E, model.state_dim)).astype(np.float32)  # (E, S)
    A = model.action_dim
    energy = EnergyConfig(**to_dict(plan_cfg.energy))
    ND = model.tokens_per_frame * model.predictor.cfg.embed_dim  # flattened latent width
    probe = None
    if uses_probe(energy):  # a probe of the right shapes (its values do not change the cost)
        K = model.state_dim
        probe = LatentProbe(weight=torch.randn(ND, K) / ND ** 0.5, x_mean=torch.zeros(ND), y_mean=torch.zeros(K),
                            y_std=torch.ones(K), dims=list(range(K)), r2=[1.0] * K, latent_scale=1.0)
    temporal = None
    if energy.temporal_weight > 0:  # a metric of the right shapes (its values do not change the cost)
        temporal = TemporalMetric(torch.randn(ND, energy.temporal_dim) / ND ** 0.5, torch.ones(ND), 0.0, float("nan"))
    goals = Goals(frames[::-1].copy(), list(range(E)), -np.ones(A, np.float32), np.ones(A, np.float32))
    settings = PlanSettings(planner_settings(to_dict(plan_cfg.planner)), energy, int(plan_cfg.execute_steps),
                            int(plan_cfg.max_batch), str(plan_cfg.precision))
    ctrl = PlannerController(model, goals, settings, probe, temporal=temporal)
    active = np.arange(E)
    for _ in range(warmup + repeats):
        ctrl(active, frames, states)
    return statistics.median(t for t, _ in ctrl.plan_seconds[warmup:]), ctrl.rollout_dtype_name


def run(cfg) -> dict:
    """Time a replanning step with and without the KV cache; prints and returns both and their ratio."""

    plan_cfg = compose_config("plan", [f"preset={cfg.command_preset}", *cfg.overrides])
    device = resolve_device(plan_cfg.device)
    if plan_cfg.threads > 0:
        torch.set_num_threads(int(plan_cfg.threads))
    model, img_size = build_world_model(cfg.command_preset, device)
    res = {}
    for name, wm in (("cached", model), ("recompute", FullRecompute(model))):
        res[name], dtype = time_replanning(wm, plan_cfg, img_size, cfg.repeats, cfg.warmup)
    ratio = res["recompute"] / res["cached"]
    p = plan_cfg.planner
    print(f"[bench plan] {plan_cfg.episodes} episodes x {p.samples} samples x {p.iterations} iterations, "
          f"horizon {p.horizon}, {model.tokens_per_frame} tokens/frame, max_batch {plan_cfg.max_batch}, "
          f"rollouts in {dtype}, device {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  cached:    {res['cached']:.3f} s per replanning step")
    print(f"  recompute: {res['recompute']:.3f} s per replanning step")
    print(f"  recompute / cached: {ratio:.2f}x")
    return {"episodes": int(plan_cfg.episodes), "planner": to_dict(p), "tokens_per_frame": model.tokens_per_frame,
            "device": str(device), "threads": torch.get_num_threads(),
            "seconds_per_plan_cached": round(res["cached"], 4),
            "seconds_per_plan_recompute": round(res["recompute"], 4), "speedup": round(ratio, 3)}
