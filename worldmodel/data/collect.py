"""``wm collect``: roll out a policy in an environment and write an episode dataset.

    wm collect env=tworoom episodes=200 steps=100 policy=scripted workers=2 out_dir=data/tworoom
    wm collect env.id=Reacher-v5 'env.kwargs={state_dims: [8, 9], success_threshold: 0.02}' policy=ou ...

The dataset folder is ``dataset`` (default: ``out_dir``): manifest.json + episodes/ (worldmodel.data.rollouts).
Episode ``i`` uses seeds derived from (``seed``, i) only, so the data does not depend on the number of workers
or on interruptions. Re-running the same command resumes: complete episodes are kept, partial files are
removed, and only missing indices are collected (``episodes`` is the dataset's target size). On SIGTERM/SIGUSR1
(:mod:`worldmodel.utils.preempt`) no new episode starts, the ones in flight finish, every finished one is recorded
in the manifest, and ``Preempted`` is raised. ``append=true``
adds ``episodes`` new episodes after the existing ones instead. Workers are spawned processes, each with its
own env and EGL context (nothing GL-related crosses a fork).

Summary: episodes (in the dataset), new_episodes, frames, new_frames, dataset, frames_per_s (new frames per
second of collection wall time), and ``coverage`` over the whole dataset: fraction of a 10x10 grid over the
arena visited by the task's main body (point, fingertip, block), fraction of episodes crossing the door
(TwoRoom), touching the block / moving it more than 0.1 (PushBlock), per-dimension state range.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

import worldmodel.envs as envs
from worldmodel.config import require, setting, to_dict
from worldmodel.contracts.manifest import EpisodeEntry, Manifest
from worldmodel.contracts.records import from_dict
from worldmodel.contracts.summaries import CollectSummary, summary_of
from worldmodel.data.episodes import (
    MANIFEST,
    EpisodeWriter,
    complete_episodes,
    episode_entry,
    load_arrays,
    read_manifest,
    sync_episodes,
    write_manifest,
)
from worldmodel.envs import make_policy, protocol
from worldmodel.envs.config import EnvConfig
from worldmodel.envs.reach_policy import reach_settings
from worldmodel.utils import preempt
from worldmodel.utils.memory import check_fits
from worldmodel.utils.runlock import run_lock


@dataclass
class CollectConfig:
    env: EnvConfig = field(default_factory=EnvConfig)  # which environment (config group configs/env/)
    episodes: int = 100  # target number of episodes in the dataset (with append: number to add)
    steps: int = 100  # env steps per episode (an episode ends earlier if the env terminates)
    policy: str = "scripted"  # random | ou | scripted (noisy goal-directed, our tasks) | reach (env.kwargs.agent_dims)
    workers: int = 2  # parallel collection processes (1: in this process)
    threads: int = 1  # CPU threads of each worker process (OpenMP, torch, llvmpipe): workers x threads fill the cores
    resolution: int = 64  # rendered frame size (square)
    seed: int = 0  # base seed; episode i is seeded from (seed, i)
    append: bool = False  # add `episodes` new episodes to an existing dataset instead of topping it up
    crf: int = 0  # H.264 constant rate factor of the RGB video (0 = lossless)
    progress: bool = True  # tqdm progress bar
    dataset: str = ""  # dataset folder; empty = out_dir
    out_dir: str = "runs/collect"  # summary.json and config.yaml (and the dataset by default)


# env.kwargs stays open: env.kwargs.width=64 or env.kwargs={width: 64} add keys on the command line

COVERAGE_DIMS = {"worldmodel/PointReach-v0": (0, 1), "worldmodel/TwoRoom-v0": (0, 1),  # by env id, never class name
                 "worldmodel/ArmReach-v0": (4, 5), "worldmodel/PushBlock-v0": (2, 3)}
GRID = 10  # coverage grid cells per axis over [-1, 1]^2
STATIC_GREY = 0.5  # a step whose frame differs from the last by less than this mean grey level changed nothing
STATIC_WARN = 0.5  # dataset check: more static steps than this share of all steps is a warning
OUTSIDE_WARN = 0.05  # dataset check: more recorded states with the agent outside its bounds than this share
MOVED_WARN = 0.2  # dataset check: objects moved (by 5% of the bounds) in fewer episodes than this share
WORKER_BYTES = 200e6  # one collection process: Python, MuJoCo, a GL context (measured ~170 MB)

_WORKER: dict = {}


def episode_seeds(seed: int, index: int) -> tuple[int, int]:
    """(env seed, policy seed) of episode ``index``: independent of workers and of resumption."""
    env_seed, policy_seed = np.random.SeedSequence([int(seed), int(index)]).generate_state(2)
    return int(env_seed), int(policy_seed)


def make_env(env_id: str, env_kwargs: dict, resolution: int, steps: int, render: bool = True):

    return envs.make(env_id, resolution=resolution, render=render, max_episode_steps=int(steps), **env_kwargs)


def _init_worker(env_id: str, env_kwargs: dict, resolution: int, steps: int, pooled: bool = False,
                 threads: int = 1) -> None:
    if pooled:  # K workers already fill the cores: `threads` each for GL, OpenMP and torch (set before they start)
        for var in ("LP_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        if "torch" in sys.modules:  # an env package that imported torch before this point
            sys.modules["torch"].set_num_threads(threads)
        preempt.ignore_in_worker()  # the main process decides when to stop; the episode in flight finishes
    _WORKER["env"] = make_env(env_id, env_kwargs, resolution, steps)


def collect_episode(job: dict) -> dict:
    """Roll out and write one episode (runs in a worker, or in the main process when workers=1)."""

    env = _WORKER["env"]
    env_seed, policy_seed = episode_seeds(job["seed"], job["index"])
    _, info = env.reset(seed=env_seed)
    policy = make_policy(job["policy"], env, policy_seed)
    state = np.asarray(info["state"], np.float32)
    policy.reset(state)
    writer = EpisodeWriter(job["root"], job["index"], fps=job["fps"], crf=job["crf"])
    try:
        frame = env.render()
        writer.add_frame(frame)  # frames stream to the encoder while the rollout goes on
        states, actions, rewards, success = [state], [], [], []
        touching = getattr(env.unwrapped, "touching", None)
        touches, static = 0, 0
        for _ in range(job["steps"]):
            action = np.asarray(policy(state), np.float32)
            _, reward, terminated, truncated, info = env.step(action)
            state = np.asarray(info["state"], np.float32)
            last, frame = frame, env.render()
            static += bool(np.abs(frame.astype(np.int16) - last).mean() < STATIC_GREY)
            writer.add_frame(frame)
            states.append(state)
            actions.append(action)
            rewards.append(float(reward))
            success.append(bool(info.get("success", False)))
            touches += bool(touching()) if touching is not None else 0
            if terminated or truncated:
                break
        stats = {"seed": env_seed, "policy_seed": policy_seed, "policy": job["policy"],  # in the npz: a resumed
                 "static_steps": static}
        # collection rebuilds the manifest entry of an episode finished just before a kill from the file alone
        if touching is not None:
            stats["touch_steps"] = touches  # steps with pusher-block contact (PushBlock and PushT coverage)
        return writer.finish(np.stack(actions), np.stack(states), np.asarray(rewards), np.asarray(success),
                             **stats)
    except BaseException:
        writer.abort()
        raise


def _pooled(jobs: list[dict], workers: int, init: tuple, threads: int = 1):
    """Episodes collected by ``workers`` spawned processes, as they finish, at most two per worker in flight.
    After a stop signal no episode starts and those in flight finish (workers leave the signal to this process);
    an episode that a signal to the whole process group broke (its ffmpeg) is lost, its partial files removed."""
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(*init, True, threads))
    todo, clean = iter(jobs), False
    try:
        pending = {pool.submit(collect_episode, job) for job in islice(todo, 2 * workers)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    entry = future.result()
                except Exception:
                    if not preempt.requested():
                        raise
                    continue
                if not preempt.requested():
                    pending |= {pool.submit(collect_episode, job) for job in islice(todo, 1)}
                yield entry
        clean = True
    finally:
        pool.shutdown(wait=clean, cancel_futures=True)
        for child in mp.active_children():  # after an error: no episode in flight is worth waiting for, and no
            child.kill()  # worker may go on writing into the dataset once this command has returned
            child.join()


def coverage(root: Path, entries: list[EpisodeEntry], env_id: str, reach: dict | None = None) -> dict:
    """Coverage statistics over the dataset's episodes (reads the npz state arrays): state ranges, success, the
    share of steps whose frame did not change, and with the env's reach settings (``envs/reach_policy.py``) the share
    of states with the agent outside its bounds and of episodes that moved an object."""

    if not entries:
        return {}
    dims = COVERAGE_DIMS.get(env_id)
    cells: set = set()
    crossed, touched, moved, succ, lo, hi = [], [], [], [], None, None
    static, steps, outside, states_seen, obj_moved = 0, 0, 0, 0, []
    for e in entries:
        z = load_arrays(root, e.id)
        s = z["states"]  # (T+1, S)
        if "static_steps" in z:
            static, steps = static + int(z["static_steps"]), steps + len(s) - 1
        if reach is not None:
            agent = s[:, reach["agent"]]
            outside += int(np.any((agent < reach["low"]) | (agent > reach["high"]), axis=1).sum())
            states_seen += len(s)
            extent = float(np.linalg.norm(reach["high"] - reach["low"]))
            obj_moved += [bool(np.linalg.norm(s[-1, o] - s[0, o]) > 0.05 * extent) for o in reach["objects"]]
        lo = s.min(0) if lo is None else np.minimum(lo, s.min(0))
        hi = s.max(0) if hi is None else np.maximum(hi, s.max(0))
        succ.append(bool(z["success"].any()))
        if dims is not None:
            ij = np.clip(((s[:, list(dims)] + 1.0) / 2.0 * GRID).astype(int), 0, GRID - 1)
            cells.update(map(tuple, ij))
        if env_id == "worldmodel/TwoRoom-v0":
            crossed.append(bool(np.any(np.sign(s[:, 0]) != np.sign(s[0, 0]))))
        if env_id in ("worldmodel/PushBlock-v0", "worldmodel/PushT-v0"):
            touched.append(int(z["touch_steps"]) > 0)
            moved.append(float(np.linalg.norm(s[-1, 2:4] - s[0, 2:4])))
    out = {"success_any": float(np.mean(succ)), "state_min": np.round(lo.astype(float), 3).tolist(),
           "state_max": np.round(hi.astype(float), 3).tolist()}
    if dims is not None:
        out["cells_visited"] = len(cells) / GRID**2
    if crossed:
        out["crossed_door"] = float(np.mean(crossed))
    if touched:
        out["touched_block"] = float(np.mean(touched))
        out["block_moved"] = float(np.mean(np.asarray(moved) > 0.1))
        out["block_displacement_mean"] = float(np.mean(moved))
    if steps:
        out["static_frame_share"] = static / steps
    if states_seen:
        out["agent_outside_bounds"] = outside / states_seen
    if obj_moved:
        out["objects_moved"] = float(np.mean(obj_moved))
    return out


def dataset_warnings(cov: dict) -> list[str]:
    """What makes a dataset a poor teacher, in one line each: frames that barely change, an agent that leaves its
    bounds, objects that are never moved."""
    out = []
    if cov.get("static_frame_share", 0.0) > STATIC_WARN:
        out.append(f"the frame does not change (< {STATIC_GREY} grey levels) in {cov['static_frame_share']:.0%} of "
                   f"recorded steps: the actions barely move anything visible")
    if cov.get("agent_outside_bounds", 0.0) > OUTSIDE_WARN:
        out.append(f"the agent is outside env.kwargs.agent_bounds in {cov['agent_outside_bounds']:.0%} of recorded "
                   f"states (out of view): try policy=reach")
    if "objects_moved" in cov and cov["objects_moved"] < MOVED_WARN:
        out.append(f"objects moved in {cov['objects_moved']:.0%} of episodes: a predictor learns little of them "
                   f"(policy=reach pushes them)")
    return out


def _manifest(cfg, env, state_dim: int, fps: float, entries: list, env_kwargs: dict) -> Manifest:
    """The dataset's manifest: the env's facts and one entry (an ``EpisodeEntry`` or its dict) per episode."""
    entries = sorted((from_dict(EpisodeEntry, e, "episode entry") for e in entries), key=lambda e: e.id)
    try:
        proto = protocol.settings(env)
    except TypeError:
        proto = None
    return Manifest(
        env_id=cfg.env.id, env_kwargs=env_kwargs,
        action_low=np.asarray(env.action_space.low, float).tolist(),
        action_high=np.asarray(env.action_space.high, float).tolist(),
        action_dim=int(np.prod(env.action_space.shape)), state_dim=int(state_dim),
        state_labels=list(getattr(env.unwrapped, "state_labels", [])),
        proprio_dims=list((proto or {}).get("proprio_dims") or []),
        frame_skip=1, fps=fps, resolution=[int(cfg.resolution), int(cfg.resolution)],
        episodes=len(entries), frames=int(sum(e.steps + 1 for e in entries)),
        policy=cfg.policy, seed=int(cfg.seed), video={"codec": "libx264rgb", "crf": int(cfg.crf)},
        protocol=proto, episode_list=entries)


COMPATIBLE = ("env_id", "env_kwargs", "resolution", "action_dim", "state_dim", "action_low", "action_high")


def _check_compatible(old: Manifest, new: Manifest, root: Path) -> None:
    for key in COMPATIBLE:
        if getattr(old, key) != getattr(new, key):
            raise ValueError(f"{root} holds a dataset with {key}={getattr(old, key)!r}, this run has "
                             f"{key}={getattr(new, key)!r}: use another out_dir/dataset")


def run(cfg: CollectConfig) -> CollectSummary:
    """Collect (or resume / append to) the dataset; returns the summary."""
    root = Path(cfg.dataset or cfg.out_dir)
    with run_lock(root, "collect"):  # one writer per dataset too, when it is not out_dir
        return _collect(cfg, root)


def _collect(cfg, root: Path) -> CollectSummary:
    from tqdm import tqdm

    for name, low in (("episodes", 1), ("steps", 1), ("resolution", 8), ("workers", 1), ("threads", 1)):
        require(name, setting(cfg, name), low)
    workers = min(int(cfg.workers), int(cfg.episodes))
    check_fits(f"workers={cfg.workers}", workers * WORKER_BYTES,
               f"{workers} collection processes (about {WORKER_BYTES / 1e6:.0f} MB each)", hint="lower workers")
    if cfg.policy not in ("random", "ou", "scripted", "reach"):
        raise ValueError(f"policy={cfg.policy!r}: expected random, ou, scripted or reach")
    env_kwargs = to_dict(cfg.env.kwargs) if cfg.env.kwargs is not None else {}
    probe = make_env(cfg.env.id, env_kwargs, cfg.resolution, cfg.steps, render=False)
    _, info = probe.reset(seed=0)
    state_dim = int(np.asarray(info["state"]).size)
    fps = float(probe.metadata.get("render_fps") or 20)
    if cfg.policy == "scripted" and envs.task_controller(probe) is None:
        raise ValueError(f"policy=scripted exists only for the worldmodel/* tasks, not {cfg.env.id}; use ou, or "
                         f"reach with env.kwargs.agent_dims")
    reach = reach_settings(probe)  # the agent's bounds for the dataset check; bad settings fail here, not at the end
    if cfg.policy == "reach" and reach is None:
        raise ValueError(f"policy=reach needs env.kwargs.agent_dims (the agent's position dims in {cfg.env.id}'s "
                         f"state)")

    done = complete_episodes(root)  # also removes partial files of an interrupted run
    entries = {i: episode_entry(root, i) for i in done}
    if (root / MANIFEST).exists():
        old = read_manifest(root)
        _check_compatible(old, _manifest(cfg, probe, state_dim, fps, [], env_kwargs), root)
        for e in old.episode_list:  # keep richer entries written by the earlier run
            if e.id in entries:
                entries[e.id] = e
    if cfg.append:
        first = max(entries, default=-1) + 1
        todo = list(range(first, first + cfg.episodes))
    else:
        todo = [i for i in range(cfg.episodes) if i not in entries]
    jobs = [{"index": i, "seed": cfg.seed, "policy": cfg.policy, "steps": cfg.steps, "root": str(root),
             "fps": fps, "crf": cfg.crf} for i in todo]

    unsynced: set[int] = set()  # finished since the last manifest write

    def save():
        sync_episodes(root, unsynced)  # what the manifest lists is on the disk before the manifest is
        unsynced.clear()
        write_manifest(root, _manifest(cfg, probe, state_dim, fps, list(entries.values()), env_kwargs))

    save()
    new_frames, t0, last_save = 0, time.time(), time.time()
    bar = tqdm(total=len(jobs), desc=f"collect {cfg.env.id}", disable=not cfg.progress or not jobs,
               dynamic_ncols=True)
    init = (cfg.env.id, env_kwargs, int(cfg.resolution), int(cfg.steps))
    try:
        if cfg.workers <= 1 or len(jobs) <= 1:
            _init_worker(*init)
            results = (collect_episode(job) for job in jobs if not preempt.requested())
        else:
            results = _pooled(jobs, min(cfg.workers, len(jobs)), init, int(cfg.threads))
        for entry in results:
            entries[entry["id"]] = entry
            unsynced.add(entry["id"])
            new_frames += entry["steps"] + 1
            bar.update(1)
            if time.time() - last_save > 1.0:
                save()
                last_save = time.time()
    finally:
        bar.close()
        if "env" in _WORKER:
            _WORKER.pop("env").close()
        for i in complete_episodes(root, clean=False):  # also those finished but not yet handed back when stopped
            if i not in entries:
                entries[i] = episode_entry(root, i)
                unsynced.add(i)
        save()  # whatever completed is recorded, also when interrupted
    preempt.check(f"collect: {len(entries)} finished episodes kept in {root}")
    seconds = time.time() - t0
    manifest = read_manifest(root)
    cov = coverage(root, manifest.episode_list, cfg.env.id, reach)
    for warning in dataset_warnings(cov):
        print(f"[collect] warning: {warning}")
    summary = {
        "episodes": manifest.episodes, "new_episodes": len(jobs), "frames": manifest.frames,
        "new_frames": new_frames, "dataset": str(root), "frames_per_s": round(new_frames / max(seconds, 1e-9), 1),
        "collect_seconds": round(seconds, 2), "env_id": cfg.env.id, "policy": cfg.policy,
        "workers": int(cfg.workers), "steps": int(cfg.steps), "resolution": int(cfg.resolution),
        "coverage": cov, "warnings": dataset_warnings(cov),
    }
    probe.close()
    summary = summary_of("collect", summary, f"{root}: collect summary")
    print(f"[collect] {summary.new_episodes} new episodes, {new_frames} frames in {seconds:.1f}s "
          f"({summary.frames_per_s} frames/s); dataset {root}: {summary.episodes} episodes")
    return summary
