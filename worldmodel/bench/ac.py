"""``wm bench ac``: latent rollout speed at a CEM-sized batch, with and without the key/value cache.

The predictor is built from the train-ac config of ``command_preset`` (random weights: speed does not depend
on them), on the encoder geometry of the pretrain config (width, 64 px / patch 8 grid, then ``model.pool``).
Batch = ``batch`` (default 512 sequences, a CEM population over a few episodes), horizon = the plan preset's
``planner.horizon``. Reports rollout steps/s (sequences x steps / second) for both paths and their ratio.
"""
from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from worldmodel.commands import compose_config
from worldmodel.config import to_dict
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.video_vit import VideoViTConfig
from worldmodel.utils.device import resolve_device


def _compose(command: str, overrides: list[str]):

    try:
        return compose_config(command, overrides)
    except Exception:  # that command's module or config is not available: use defaults
        return None


def build_predictor(preset: str, overrides: list[str], action_dim: int = 2, state_dim: int = 4):
    """A predictor shaped like the ``preset`` train-ac run (action/state sizes of PointReach-like envs)."""

    ac = _compose("train-ac", [f"preset={preset}", *overrides])
    pre = _compose("pretrain", [f"preset={preset}"])
    enc = VideoViTConfig(**{k: v for k, v in to_dict(pre.model).items() if k in VideoViTConfig.__dataclass_fields__}) \
        if pre is not None and "model" in pre else VideoViTConfig()
    m = ACPredictorConfig(**to_dict(ac.model))
    grid = enc.img_size // enc.patch_size // m.pool
    m = dataclasses.replace(m, embed_dim=enc.embed_dim, grid_h=grid, grid_w=grid,
                            action_dim=ac.frame_skip * action_dim, state_dim=state_dim if ac.use_state else 0)
    return ACPredictor(m).eval()


@torch.no_grad()
def time_rollout(model: ACPredictor, batch: int, horizon: int, use_cache: bool, repeats: int, warmup: int,
                 device: torch.device) -> float:
    """Median seconds of one rollout of ``horizon`` steps for ``batch`` sequences."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(batch, 1, model.num_patches, cfg.embed_dim, generator=g).to(device)
    s0 = torch.randn(batch, 1, cfg.state_dim, generator=g).to(device) if cfg.state_dim else None
    actions = torch.rand(batch, horizon, cfg.action_dim, generator=g).to(device) * 2 - 1
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        model.rollout(z0, actions, s0, use_cache=use_cache)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(cfg) -> dict:
    """Benchmark cached vs. full-recompute rollouts; prints and returns steps/s and the ratio."""

    device = resolve_device("auto")
    model = build_predictor(cfg.command_preset, list(cfg.overrides)).to(device)
    plan = _compose("plan", [f"preset={cfg.command_preset}"])
    horizon = int(plan.planner.horizon) if plan is not None and "planner" in plan else 8
    batch = cfg.batch if cfg.batch > 0 else (64 if cfg.command_preset == "smoke" else 512)
    res = {}
    for name, use_cache in (("cached", True), ("recompute", False)):
        sec = time_rollout(model, batch, horizon, use_cache, cfg.repeats, cfg.warmup, device)
        res[name] = {"seconds_per_rollout": round(sec, 5), "steps_per_s": round(batch * horizon / sec, 1)}
    ratio = res["cached"]["steps_per_s"] / res["recompute"]["steps_per_s"]
    print(f"[bench ac] batch {batch} x horizon {horizon}, {model.num_patches} tokens/frame, device {device}")
    for name, r in res.items():
        print(f"  {name:>9}: {r['steps_per_s']:>10.1f} rollout steps/s  ({r['seconds_per_rollout']:.4f} s per rollout)")
    print(f"  cached / recompute speed ratio: {ratio:.2f}x")
    return {"batch": batch, "horizon": horizon, "tokens_per_frame": model.num_patches, "device": str(device),
            "steps_per_s_cached": res["cached"]["steps_per_s"],
            "steps_per_s_recompute": res["recompute"]["steps_per_s"],
            "speedup": round(ratio, 3)}
