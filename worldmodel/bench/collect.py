"""``wm bench collect``: collection throughput against the bare simulator.

Two numbers, measured in one run on the same env and resolution:

- ``bare_frames_per_s``: a single-process loop of raw MuJoCo (``mj_step`` x frame_skip with random controls,
  then ``mujoco.Renderer`` update + render from the task camera), no gymnasium, no policy, no encoding;
  median over ``repeats`` timed runs after ``warmup`` untimed ones.
- ``collect_frames_per_s``: ``wm collect`` (the ``command_preset`` config plus ``overrides``) with
  ``workers`` processes into a temporary dataset: env wrappers, policy, rendering, lossless H.264 encoding,
  npz + manifest writes and the worker start-up, i.e. end-to-end frames on disk per second.

``ratio`` = collect / bare: above 1 means the workers more than pay for the overheads.
"""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import worldmodel.envs as envs
from worldmodel.commands import compose_config
from worldmodel.config import settings
from worldmodel.data import collect


def bare_frames_per_s(env_id: str, resolution: int, frames: int, repeats: int, warmup: int) -> float:
    """Frames/s of raw MuJoCo step + render for ``env_id`` (a MujocoEnv: ours or gymnasium's)."""
    import mujoco


    env = envs.make(env_id, resolution=resolution, render=False)
    base = env.unwrapped
    if not hasattr(base, "fullpath"):
        raise ValueError(f"{env_id} is not a MuJoCo env; the bare loop needs its XML")
    model = mujoco.MjModel.from_xml_path(base.fullpath)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, resolution)
    model.vis.global_.offheight = max(model.vis.global_.offheight, resolution)
    data = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, resolution, resolution)
    camera = "top" if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "top") >= 0 else -1
    low, high = model.actuator_ctrlrange.T
    ctrl = np.random.default_rng(0).uniform(low, high, (frames, model.nu))
    times = []
    for r in range(warmup + repeats):
        mujoco.mj_resetData(model, data)
        t0 = time.perf_counter()
        for i in range(frames):
            data.ctrl[:] = ctrl[i]
            mujoco.mj_step(model, data, nstep=base.frame_skip)
            renderer.update_scene(data, camera=camera)
            renderer.render()
        if r >= warmup:
            times.append(time.perf_counter() - t0)
    renderer.close()
    env.close()
    return frames / statistics.median(times)


def run(cfg) -> dict:
    """Benchmark ``wm collect`` with ``cfg.workers`` workers against the bare loop; prints the ratio."""

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_collect_", dir=out))
    try:
        ccfg = compose_config("collect", [f"preset={cfg.command_preset}", *cfg.overrides,
                                          f"workers={cfg.workers}", f"out_dir={tmp}", "progress=false"])
        summary = collect.run(settings(ccfg))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    frames = int(min(max(summary.new_frames, 200), 3000))
    bare = bare_frames_per_s(ccfg.env.id, int(ccfg.resolution), frames, max(1, cfg.repeats), cfg.warmup)
    coll = float(summary.frames_per_s)
    result = {
        "env_id": ccfg.env.id, "resolution": int(ccfg.resolution), "workers": int(cfg.workers),
        "policy": ccfg.policy, "episodes": int(ccfg.episodes), "steps": int(ccfg.steps),
        "collect_frames_per_s": coll, "bare_frames_per_s": round(bare, 1), "bare_frames": frames,
        "ratio": round(coll / bare, 3),
    }
    print(f"{'variant':40s} {'frames/s':>10s}")
    print(f"{'bare MuJoCo step+render, 1 process':40s} {bare:10.1f}")
    print(f"{f'wm collect, {cfg.workers} workers (end to end)':40s} {coll:10.1f}")
    print(f"ratio collect/bare: {result['ratio']:.3f}")
    return result
