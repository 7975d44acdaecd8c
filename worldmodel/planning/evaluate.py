"""``wm plan``: goal-reaching evaluation of a world model with CEM/MPC, beside random and zero actions.

Goal protocol (ARCHITECTURE.md), per episode i with seed s_i = seed + i: ``make_goal(env, s_i, goal_offset)``
gives the goal frame and state (the env's goal policy rolled ``goal_offset`` steps from ``reset(seed=s_i)``);
then the env is reset with s_i again and the controller gets ``budget`` env steps; success is the env's state
criterion (``envs.protocol.is_success``) at any step. The planner, random actions and zero actions run on the
same seeds and goals, so their rows compare episode by episode. Random actions are drawn per predictor step
and held for ``action_repeat`` env steps, like the planner's.

The model comes from ``checkpoint``; its ``kind`` picks the loader (``LOADERS``: "train_ac" ->
LatentWorldModel, "train_pixel" -> PixelWorldModel), or set ``model_kind``. With no checkpoint and
``train_overrides`` set (the smoke preset) a tiny model is trained first with ``wm train-ac``, so
``wm plan preset=smoke`` works on a fresh checkout. The env defaults to the one the model was trained on.

With ``subgoals.enabled`` the planner aims at roadmap subgoals where the way to the goal is not straight
(``worldmodel/planning/subgoals.py``); the roadmap is built from the frames the energy's probe is fit on.

Summary: ``success_rate`` (+ ``success_ci95``, the 95% Wilson interval), ``final_distance`` (the criterion's
distance at the last step), ``env_steps`` (mean env steps used; ``env_steps_to_success`` over successes), the
same with ``_random`` and ``_zero`` suffixes, ``seconds_per_plan`` (one batched replanning step for all active
episodes; ``seconds_per_plan_full_batch`` when all ``episodes`` were active, ``..._per_episode`` divided by
them), ``subgoal_fraction`` (episode-plans aimed at a subgoal), ``episodes``, ``gifs``, ``per_episode`` rows,
and ``protocol``: every setting that defines the result.
"""
from __future__ import annotations

import importlib
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from worldmodel.config import register_schema
from worldmodel.planning.energy import EnergyConfig, uses_probe
from worldmodel.planning.mpc import (EpisodeStats, PlannerController, random_controller, run_episodes,
                                     zero_controller)
from worldmodel.planning.optimizers import PlannerConfig
from worldmodel.planning.subgoals import SubgoalConfig
from worldmodel.train.core import resolve_device

os.environ.setdefault("MUJOCO_GL", "egl")

# checkpoint kind -> "module:Class" whose ``load(path, device)`` returns a world-model-protocol object
LOADERS: dict[str, str] = {
    "train_ac": "worldmodel.models.world_model:LatentWorldModel",
    "train_pixel": "worldmodel.models.pixel_predictor:PixelWorldModel",
}


@dataclass
class PlanConfig:
    """``wm plan`` settings; ``planner`` is a config group (configs/planner/*.yaml)."""

    out_dir: str = "runs/plan"  # where summary.json and gifs/ go
    checkpoint: str = ""  # world-model checkpoint; empty: train one with train_overrides (smoke) or fail
    model_kind: str = "auto"  # loader key of LOADERS, or auto (the checkpoint's kind field)
    train_overrides: list[str] = field(default_factory=list)  # wm train-ac overrides used when no checkpoint
    env: str = ""  # gymnasium id or a configs/env/ name (pointreach, ...); empty: the model's training env
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for envs.make
    resolution: int = 0  # rendered frame size; 0: the model's training resolution
    episodes: int = 50  # evaluation episodes (all planned in one batch)
    seed: int = 100_000  # episode i uses seed + i (away from collection seeds)
    goal_offset: int = 0  # goal-policy env steps from the start to the goal (0: the env's protocol default)
    budget: int = 0  # env steps allowed per episode (0: the env's protocol default)
    execute_steps: int = 1  # planned predictor steps executed before replanning
    max_batch: int = 0  # most rollouts per model call (0: all episodes x samples at once)
    probe_dataset: str = ""  # dataset fitting the energy's latent probe (energy.probe_weight > 0; "": the model's)
    baselines: bool = True  # also run random and zero actions on the same seeds and goals
    gifs: int = 3  # episodes saved as GIFs (observation beside goal)
    gif_fps: int = 10  # GIF frame rate
    device: str = "auto"  # auto | cpu | cuda[:i]
    threads: int = 0  # torch CPU threads (0: torch's default); 1 avoids OpenMP spin-waits on a busy machine
    planner: PlannerConfig = field(default_factory=PlannerConfig)  # the optimizer (planner= group)
    energy: EnergyConfig = field(default_factory=EnergyConfig)  # the planning energy
    subgoals: SubgoalConfig = field(default_factory=SubgoalConfig)  # roadmap subgoals (planning/subgoals.py)


register_schema("plan", PlanConfig)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (well-behaved at 0% and 100%)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def load_world_model(checkpoint: str, kind: str = "auto", device: str | torch.device = "cpu"):
    """Load any world-model-protocol object from a checkpoint; ``kind`` auto reads the checkpoint's field."""
    if kind == "auto":
        from worldmodel.train.checkpoint import load_checkpoint

        kind = load_checkpoint(checkpoint).get("kind", "")
    if kind not in LOADERS:
        raise ValueError(f"checkpoint {checkpoint}: no world-model loader for kind {kind!r}; known {sorted(LOADERS)}")
    module, cls = LOADERS[kind].split(":")
    return getattr(importlib.import_module(module), cls).load(checkpoint, device), kind


def resolve_env(name: str) -> tuple[str, dict]:
    """A configs/env/<name>.yaml entry (its id and kwargs) or a plain gymnasium id with no extra kwargs."""
    from worldmodel.config import CONFIG_DIR

    path = Path(CONFIG_DIR) / "env" / f"{name}.yaml"
    if "/" not in name and path.is_file():
        node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        return str(node["id"]), dict(node.get("kwargs") or {})
    return name, {}


def ensure_model(cfg, device):
    """(model, kind, checkpoint): ``cfg.checkpoint``, or one trained with ``train_overrides`` into
    ``out_dir/train_ac`` (reused by later runs into the same out_dir while it still loads)."""
    if cfg.checkpoint:
        return (*load_world_model(str(cfg.checkpoint), cfg.model_kind, device), str(cfg.checkpoint))
    if not cfg.train_overrides:
        raise ValueError("wm plan: set checkpoint=PATH (a wm train-ac or train-pixel checkpoint)")
    from worldmodel.cli import run_command

    out = Path(cfg.out_dir) / "train_ac"
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        try:
            return (*load_world_model(str(ckpt), cfg.model_kind, device), str(ckpt))
        except (RuntimeError, ValueError, KeyError, FileNotFoundError) as e:  # built by older code: rebuild
            print(f"[wm plan] rebuilding {out} from scratch: {type(e).__name__}: {str(e).splitlines()[0]}")
            shutil.rmtree(out)  # its bootstrap encoder/dataset are stale too
    summary = run_command("train-ac", list(cfg.train_overrides) + [f"out_dir={out}"])
    ckpt = Path(summary.get("checkpoint", ckpt))
    return (*load_world_model(str(ckpt), cfg.model_kind, device), str(ckpt))


def _stats_summary(stats: EpisodeStats, suffix: str) -> dict:
    n, k = len(stats.success), int(stats.success.sum())
    lo, hi = wilson_interval(k, n)
    return {f"success_rate{suffix}": k / max(n, 1), f"success_ci95{suffix}": [lo, hi],
            f"final_distance{suffix}": float(stats.final_distance.mean()),
            f"env_steps{suffix}": float(stats.steps.mean())}


def save_gifs(stats: EpisodeStats, goal_frames: np.ndarray, out_dir: Path, fps: int) -> list[str]:
    """One GIF per recorded episode: each observation beside the goal frame."""
    import imageio.v2 as imageio

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for e, frames in sorted(stats.frames.items()):
        goal = goal_frames[e]
        gap = np.full((goal.shape[0], 2, 3), 255, np.uint8)
        tiles = [np.concatenate([f, gap, goal], axis=1) for f in frames]
        tag = "success" if stats.success[e] else "fail"
        path = out_dir / f"episode_{e:03d}_{tag}.gif"
        imageio.mimsave(path, tiles, duration=1.0 / fps, loop=0)
        paths.append(str(path))
    return paths


@dataclass
class GoalEpisodes:
    """E envs with their seeds and protocol goals (``envs.protocol``), shared by the planner and baselines."""

    envs: list
    seeds: list[int]
    goal_frames: np.ndarray  # (E, H, W, 3) uint8
    goal_states: np.ndarray  # (E, S)
    low: np.ndarray  # (A,) action bounds
    high: np.ndarray  # (A,)
    goal_offset: int
    budget: int
    settings: dict  # envs.protocol.settings (criterion, tolerance, defaults) for the summary

    def run(self, controller, action_repeat: int, record: tuple[int, ...] = ()) -> EpisodeStats:
        """Closed-loop episodes from each goal's start (``protocol.start``: reset(seed) + set_goal)."""
        from envs import protocol

        goals = [protocol.Goal(f, s, seed) for f, s, seed in zip(self.goal_frames, self.goal_states, self.seeds)]
        return run_episodes(self.envs, self.seeds, self.goal_states, controller, self.budget, action_repeat,
                            protocol.is_success, protocol.state_distance, record=record,
                            reset=lambda e: protocol.start(self.envs[e], goals[e])[1])

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_goal_episodes(env_id: str, env_kwargs: dict, resolution: int, episodes: int, seed: int,
                       goal_offset: int = 0, budget: int = 0) -> GoalEpisodes:
    """Build the envs and goals of episodes seed .. seed + episodes - 1 (0 offset/budget: the env's defaults)."""
    import envs
    from envs import protocol

    seeds = [int(seed) + i for i in range(int(episodes))]
    env_list = [envs.make(env_id, resolution=resolution, render=True, **env_kwargs) for _ in seeds]
    defaults = protocol.defaults(env_list[0])
    goal_offset = int(goal_offset or defaults["goal_offset"])
    budget = int(budget or defaults["budget"])
    goals = [protocol.make_goal(env, s, goal_offset) for env, s in zip(env_list, seeds)]
    return GoalEpisodes(
        envs=env_list, seeds=seeds, goal_frames=np.stack([g.frame for g in goals]),
        goal_states=np.stack([np.asarray(g.state, np.float32) for g in goals]),
        low=np.asarray(env_list[0].action_space.low, np.float32),
        high=np.asarray(env_list[0].action_space.high, np.float32), goal_offset=goal_offset, budget=budget,
        settings={**protocol.settings(env_list[0], goal_offset, budget), "env_defaults": dict(defaults)})


def timing_summary(plan_seconds: list[tuple[float, int]], episodes: int) -> dict:
    """Seconds per batched replanning step (all active episodes at once), at full batch, and per episode."""
    times = np.array([t for t, _ in plan_seconds])
    batch = np.array([n for _, n in plan_seconds])
    full = batch == episodes
    return {"seconds_per_plan": float(times.mean()) if len(times) else 0.0,
            "seconds_per_plan_full_batch": float(times[full].mean()) if full.any() else None,
            "seconds_per_plan_per_episode": float(times.sum() / max(batch.sum(), 1)),
            "plan_calls": int(len(times))}


def run(cfg) -> dict:
    """Evaluate planning on ``cfg.episodes`` goal-reaching episodes; returns the summary dict."""
    out_dir = Path(cfg.out_dir)
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(int(cfg.threads))
    model, kind, checkpoint = ensure_model(cfg, device)
    manifest = dict(getattr(model, "manifest", {}) or {})
    env_id, env_kwargs = resolve_env(cfg.env) if cfg.env else (manifest.get("env_id"), manifest.get("env_kwargs"))
    if not env_id:
        raise ValueError(f"wm plan: the checkpoint {checkpoint} does not name its env; set env=ID")
    env_kwargs = {**(env_kwargs or {}), **OmegaConf.to_container(cfg.env_kwargs, resolve=True)}
    res = manifest.get("resolution", 64)  # int, or [H, W] (square frames)
    resolution = int(cfg.resolution or (res[0] if isinstance(res, (list, tuple)) else res))
    planner = PlannerConfig(**OmegaConf.to_container(cfg.planner, resolve=True))
    energy = EnergyConfig(**OmegaConf.to_container(cfg.energy, resolve=True))
    action_repeat = int(getattr(model, "frame_skip", 1))

    subgoals = SubgoalConfig(**OmegaConf.to_container(cfg.subgoals, resolve=True))
    probe, probe_info, graph = None, None, None  # fitted before any env exists (MuJoCo's EGL + late imports crash)
    if uses_probe(energy) or subgoals.enabled:
        from worldmodel.planning.probe import dataset_of, encode_frames, fit_probe

        dataset = cfg.probe_dataset or dataset_of(checkpoint)
        fine = energy.goal_fine and (energy.state_weight > 0 or subgoals.enabled)
        frames = encode_frames(model, dataset, energy.probe_episodes, energy.probe_stride, fine=fine)
        probe = fit_probe(model, dataset, min_r2=energy.probe_min_r2, metric=energy.metric, fine=fine, frames=frames)
        probe_info = {"dataset": dataset, "dims": probe.dims, "r2": probe.r2, "latent_scale": probe.latent_scale,
                      "goal_r2": probe.goal_r2}
        if subgoals.enabled:
            from worldmodel.planning.subgoals import SubgoalGraph

            graph = SubgoalGraph.build(frames, probe, subgoals, energy.probe_stride)
            probe_info["graph"] = {"nodes": len(graph.x), "edges": graph.edges, "speed": graph.speed}
    E = int(cfg.episodes)
    eps = make_goal_episodes(env_id, env_kwargs, resolution, E, cfg.seed, cfg.goal_offset, cfg.budget)
    criterion_dims = eps.settings.get("criterion_dims")  # None: the criterion reads every state dim
    if probe is not None and energy.criterion_weight != 1.0 and criterion_dims is not None:
        probe.weight_dims(criterion_dims, energy.criterion_weight)
        probe_info["dim_weights"] = [round(w, 4) for w in probe.dim_weights.tolist()]
    controller = PlannerController(model, eps.goal_frames, eps.goal_states, eps.seeds, eps.low, eps.high, planner,
                                   energy, execute_steps=int(cfg.execute_steps), max_batch=int(cfg.max_batch),
                                   probe=probe, graph=graph)
    t0 = time.perf_counter()
    stats = eps.run(controller, action_repeat, record=tuple(range(min(cfg.gifs, E))))
    summary: dict[str, Any] = {"env": env_id, "checkpoint": checkpoint, "model_kind": kind, "episodes": E}
    summary["seconds_planner_episodes"] = round(time.perf_counter() - t0, 2)
    summary.update(_stats_summary(stats, ""))
    succ_steps = stats.steps[stats.success]
    summary["env_steps_to_success"] = float(succ_steps.mean()) if len(succ_steps) else None
    summary.update(timing_summary(controller.plan_seconds, E))
    if graph is not None:  # share of episode-plans aimed at a subgoal rather than the goal itself
        summary["subgoal_fraction"] = controller.subgoal_plans / max(controller.episode_plans, 1)
    per_episode = {"seed": eps.seeds, "success": stats.success.tolist(), "steps": stats.steps.tolist(),
                   "final_distance": stats.final_distance.round(4).tolist()}
    if cfg.baselines:
        for name, ctrl in (("random", random_controller(eps.low, eps.high, eps.seeds)),
                           ("zero", zero_controller(eps.low, eps.high))):
            base = eps.run(ctrl, action_repeat)
            summary.update(_stats_summary(base, f"_{name}"))
            per_episode[f"success_{name}"] = base.success.tolist()
    summary["gifs"] = save_gifs(stats, eps.goal_frames, out_dir / "gifs", cfg.gif_fps) if cfg.gifs else []
    summary["protocol"] = {
        **eps.settings, "env": env_id, "env_kwargs": env_kwargs, "resolution": resolution,
        "goal_offset": eps.goal_offset, "budget": eps.budget, "execute_steps": int(cfg.execute_steps),
        "action_repeat": action_repeat, "horizon_env_steps": planner.horizon * action_repeat, "seeds": eps.seeds,
        "seed": int(cfg.seed), "planner": asdict(planner), "energy": asdict(energy), "subgoals": asdict(subgoals), "energy_probe": probe_info,
        "baseline_random": "uniform, held action_repeat", "success": "envs.protocol.is_success at any env step",
        "device": str(device),
    }
    summary["per_episode"] = per_episode
    eps.close()
    print(f"[wm plan] {env_id}: success {summary['success_rate']:.2f} "
          f"(random {summary.get('success_rate_random', float('nan')):.2f}, "
          f"zero {summary.get('success_rate_zero', float('nan')):.2f}) over {E} episodes, "
          f"{summary['seconds_per_plan']:.3f} s per batched plan")
    return summary
