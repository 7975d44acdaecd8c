"""Goal-reaching episodes and their bookkeeping: the protocol's goals for E envs, closed-loop runs of any
controller on them, success statistics with Wilson intervals, planning latency, and GIFs.

Goal protocol (docs/environments.md), per episode i with seed s_i = seed + i: ``protocol.make_goal(env, s_i,
goal_offset)`` gives the goal frame and state (the env's goal policy rolled ``goal_offset`` steps from
``reset(seed=s_i)``); then ``protocol.start`` resets with s_i again and the controller gets ``budget`` env
steps; success is the env's state criterion at any step. The planner, random and zero actions run on the same
seeds and goals, so their rows compare episode by episode. With ``reject_trivial`` a goal that zero actions already
meet within the budget is replaced by the next unused seed (``protocol=dataset``: by another recorded row).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

import worldmodel.envs as envs
from worldmodel.data.reader import EpisodeReader
from worldmodel.envs import protocol
from worldmodel.planning.mpc import EpisodeStats, run_episodes
from worldmodel.utils.atomic import atomic_path


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (well-behaved at 0% and 100%)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def stats_summary(stats: EpisodeStats, suffix: str) -> dict:
    """success_rate, its 95% Wilson interval, final_distance and env_steps, keys ending in ``suffix``."""
    n, k = len(stats.success), int(stats.success.sum())
    lo, hi = wilson_interval(k, n)
    return {f"success_rate{suffix}": k / max(n, 1), f"success_ci95{suffix}": [lo, hi],
            f"final_distance{suffix}": float(stats.final_distance.mean()),
            f"env_steps{suffix}": float(stats.steps.mean())}


def save_gifs(stats: EpisodeStats, goal_frames: np.ndarray, out_dir: Path, fps: int) -> list[str]:
    """One GIF per recorded episode: each observation beside the goal frame."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for e, frames in sorted(stats.frames.items()):
        goal = goal_frames[e]
        gap = np.full((goal.shape[0], 2, 3), 255, np.uint8)
        tiles = [np.concatenate([f, gap, goal], axis=1) for f in frames]
        tag = "success" if stats.success[e] else "fail"
        path = out_dir / f"episode_{e:03d}_{tag}.gif"
        with atomic_path(path) as tmp:
            imageio.mimsave(tmp, tiles, duration=1.0 / fps, loop=0)
        paths.append(str(path))
    return paths


@dataclass
class GoalEpisodes:
    """E envs with their seeds and protocol goals (``envs.protocol``), shared by the planner and baselines."""

    envs: list
    seeds: list[int]
    goal_frames: np.ndarray  # (E, H, W, 3) uint8
    goal_states: np.ndarray  # (E, S) full goal states: for the success check and evaluation only, never the planner
    low: np.ndarray  # (A,) action bounds
    high: np.ndarray  # (A,)
    goal_offset: int
    budget: int
    settings: dict  # envs.protocol.settings (criterion, tolerance, defaults) for the summary
    replay: list[np.ndarray] | None = None  # protocol=dataset: recorded actions from reset(seed) to each start

    def start(self, e: int) -> dict:
        """Reset episode ``e`` to its start (seed, then the recorded actions of the dataset protocol) and point its
        success check at the goal; returns the info of the start state."""
        goal = protocol.Goal(self.goal_frames[e], self.goal_states[e], self.seeds[e])
        obs, info = protocol.start(self.envs[e], goal)
        for a in ([] if self.replay is None else self.replay[e]):
            obs, _, _, _, info = self.envs[e].step(a)
        return info

    def run(self, controller, action_repeat: int, record: tuple[int, ...] = (),
            observed_dims: list[int] | None = None) -> EpisodeStats:
        """Closed-loop episodes from each goal's start (``start``); the controller sees frames and the
        ``observed_dims`` of the state (None: all, oracle runs)."""
        return run_episodes(self.envs, self.seeds, self.goal_states, controller, self.budget, action_repeat,
                            protocol.is_success, protocol.state_distance, record=record, reset=self.start,
                            observed_dims=observed_dims)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def zero_reaches(env, goal: protocol.Goal, budget: int, replay: np.ndarray | None = None) -> bool:
    """Whether zero actions meet ``goal`` within ``budget`` steps from its start (after ``replay``'s recorded
    actions, for the dataset protocol): such a goal measures no planning."""
    _, info = protocol.start(env, goal)
    for a in [] if replay is None else replay:
        _, _, _, _, info = env.step(a)
    zero = np.zeros(env.action_space.shape, np.float32)
    for _ in range(int(budget) + 1):
        if protocol.is_success(env, info["state"], goal.state):
            return True
        _, _, terminated, truncated, info = env.step(zero)
        if terminated or truncated:
            return protocol.is_success(env, info["state"], goal.state)
    return False


TRIVIAL_DRAWS = 4  # at most this many candidate goals per episode before too many trivial ones stop the run


def _too_easy(rejected: int, drawn: int, where: str) -> ValueError:
    return ValueError(f"{where}: zero actions reach {rejected} of {drawn} goals drawn within the budget; the goals are "
                      f"too easy to measure planning (a longer goal_offset, or reject_trivial_goals=false to plan on "
                      f"them anyway)")


@dataclass
class GoalSeeds:
    """The episode seeds of ``protocol=policy``, chosen by ``select_goal_seeds``."""

    seeds: list[int]
    replaced: int = 0  # seeds refused because zero actions meet their goal
    reject_trivial: bool = False


def select_goal_seeds(env_id: str, env_kwargs: dict, episodes: int, seed: int, goal_offset: int = 0,
                      budget: int = 0, reject_trivial: bool = False) -> GoalSeeds:
    """Seeds seed .. seed + episodes - 1; with ``reject_trivial`` a seed whose goal zero actions meet within the
    budget is replaced by the next unused one (seed + episodes, ...). Checked on an env built without a renderer,
    before any heavy set-up; too many trivial goals stop the run in one line."""
    seeds = [int(seed) + i for i in range(int(episodes))]
    if not reject_trivial:
        return GoalSeeds(seeds)
    env = envs.make(env_id, render=False, **env_kwargs)
    defaults = protocol.defaults(env)
    goal_offset, budget = int(goal_offset or defaults["goal_offset"]), int(budget or defaults["budget"])
    spare = iter(range(int(seed) + int(episodes), int(seed) + TRIVIAL_DRAWS * int(episodes)))
    kept, rejected = [], 0
    try:
        for s in seeds:
            while zero_reaches(env, protocol.make_goal(env, s, goal_offset), budget):
                rejected += 1
                s = next(spare, None)
                if s is None:
                    raise _too_easy(rejected, rejected + len(kept), f"env.id={env_id}")
            kept.append(s)
    finally:
        env.close()
    return GoalSeeds(kept, rejected, True)


def make_goal_episodes(env_id: str, env_kwargs: dict, resolution: int, episodes: int, seed: int,
                       goal_offset: int = 0, budget: int = 0, reject_trivial: bool = False,
                       chosen: GoalSeeds | None = None) -> GoalEpisodes:
    """Build the envs and goals of the episode seeds ``chosen`` (default: ``select_goal_seeds`` of the other
    arguments); 0 offset/budget: the env's defaults."""
    chosen = chosen or select_goal_seeds(env_id, env_kwargs, episodes, seed, goal_offset, budget, reject_trivial)
    env_list = [envs.make(env_id, resolution=resolution, render=True, **env_kwargs) for _ in chosen.seeds]
    defaults = protocol.defaults(env_list[0])
    goal_offset = int(goal_offset or defaults["goal_offset"])
    budget = int(budget or defaults["budget"])
    goals = [protocol.make_goal(env, s, goal_offset) for env, s in zip(env_list, chosen.seeds)]
    return GoalEpisodes(
        envs=env_list, seeds=list(chosen.seeds), goal_frames=np.stack([g.frame for g in goals]),
        goal_states=np.stack([np.asarray(g.state, np.float32) for g in goals]),
        low=np.asarray(env_list[0].action_space.low, np.float32),
        high=np.asarray(env_list[0].action_space.high, np.float32), goal_offset=goal_offset, budget=budget,
        settings={**protocol.settings(env_list[0], goal_offset, budget), "env_defaults": dict(defaults),
                  "reject_trivial_goals": chosen.reject_trivial, "trivial_goals_replaced": chosen.replaced})


def timing_summary(plan_seconds: list[tuple[float, int]], episodes: int) -> dict:
    """Seconds per batched replanning step (all active episodes at once), at full batch, and per episode."""
    times = np.array([t for t, _ in plan_seconds])
    batch = np.array([n for _, n in plan_seconds])
    full = batch == episodes
    return {"seconds_per_plan": float(times.mean()) if len(times) else 0.0,
            "seconds_per_plan_full_batch": float(times[full].mean()) if full.any() else None,
            "seconds_per_plan_per_episode": float(times.sum() / max(batch.sum(), 1)),
            "plan_calls": int(len(times))}


DATASET_DEFAULTS = {"goal_offset": 25, "budget": 50}  # the published protocol (DINO-WM, LeWorldModel tables)


@dataclass
class DatasetStarts:
    """Start and goal rows of recorded episodes (``protocol=dataset``), checked by ``select_dataset_starts``."""

    dataset: str
    rows: list[tuple[int, int]]  # (episode id, start step)
    seeds: list[int]  # the episodes' recorded env seeds
    goal_frames: np.ndarray  # (E, H, W, 3) uint8: the recorded frames goal_offset rows after each start
    goal_states: np.ndarray  # (E, S): their recorded states (success checks only)
    replay: list[np.ndarray]  # recorded actions from reset(seed) to each start
    goal_offset: int
    budget: int
    trivial_replaced: int = 0  # candidate rows refused because zero actions meet their goal
    reject_trivial: bool = False


def _steps(ep: dict, i: int, dataset, goal_offset: int) -> int:
    """Steps of a recorded episode, which must be at least ``goal_offset``."""
    T = len(ep["actions"])
    if T < goal_offset:
        raise ValueError(f"protocol=dataset: episode {i} of {dataset} has {T} steps < goal_offset={goal_offset}")
    return T


def _check_replay(env, ep: dict, seed: int, t: int, where: str) -> None:
    """Replay a recorded episode to step ``t`` as it was recorded (``reset(seed)``, no goal option, its actions) and
    refuse an env that does not reproduce the recorded state there."""
    _, info = env.reset(seed=seed)
    for a in ep["actions"][:t]:
        _, _, _, _, info = env.step(a)
    if not np.allclose(info["state"], ep["states"][t], atol=1e-4):
        gap = np.abs(info["state"] - ep["states"][t]).max()
        raise ValueError(f"protocol=dataset: replaying {where} from its seed does not reproduce its state at step {t} "
                         f"(max difference {gap:.3g}); the env must be deterministic under seed + actions")


def select_dataset_starts(env_id: str, env_kwargs: dict, resolution: int, dataset: str | Path, ids: list[int],
                          episodes: int, seed: int, goal_offset: int = 0, budget: int = 0,
                          reject_trivial: bool = False) -> DatasetStarts:
    """Draw ``episodes`` (episode, step) rows (seeded) from the episodes ``ids`` of ``dataset``, the goal
    ``goal_offset`` rows later, and check them on an env built without a renderer, before any heavy set-up:

    - each start is replayed **as it was recorded** (``reset(seed)`` with no goal option, then the recorded actions)
      and must reproduce the recorded state (an env that does not is refused);
    - ``reject_trivial``: a row whose goal zero actions meet within the budget (started the way planning starts it,
      goal option included) is replaced by another draw."""
    goal_offset = int(goal_offset or DATASET_DEFAULTS["goal_offset"])
    budget = int(budget or DATASET_DEFAULTS["budget"])
    reader = EpisodeReader(dataset)
    if list(reader.manifest.resolution) != [resolution, resolution]:
        raise ValueError(f"protocol=dataset: {dataset} holds {reader.manifest.resolution} frames; the model "
                         f"plans at {resolution}x{resolution}")
    seeds_of = {e.id: e.seed for e in reader.manifest.episode_list}
    usable = [i for i in ids if seeds_of.get(i) is not None]
    if not usable:
        raise ValueError(f"protocol=dataset: no episode of {dataset} records its env seed "
                         f"(a `wm collect` dataset does)")
    rng = np.random.default_rng(int(seed))
    env = envs.make(env_id, resolution=resolution, render=False, **env_kwargs)
    try:
        loaded: dict[int, dict] = {}
        rows, rejected = [], 0
        while len(rows) < int(episodes):
            if rejected + len(rows) >= TRIVIAL_DRAWS * int(episodes):
                raise _too_easy(rejected, rejected + len(rows), f"protocol=dataset on {dataset}")
            i = int(usable[int(rng.integers(0, len(usable)))])
            if i not in loaded:
                loaded[i] = reader.load(i)
            ep = loaded[i]
            t = int(rng.integers(0, _steps(ep, i, dataset, goal_offset) - goal_offset + 1))
            _check_replay(env, ep, int(seeds_of[i]), t, f"episode {i} of {dataset}")
            goal = protocol.Goal(None, np.asarray(ep["states"][t + goal_offset], np.float32), int(seeds_of[i]))
            if reject_trivial and zero_reaches(env, goal, budget, ep["actions"][:t]):
                rejected += 1
                continue
            rows.append((i, t))
    finally:
        env.close()
    return DatasetStarts(
        dataset=str(dataset), rows=rows, seeds=[int(seeds_of[i]) for i, _ in rows],
        goal_frames=np.stack([loaded[i]["frames"][t + goal_offset] for i, t in rows]),
        goal_states=np.stack([loaded[i]["states"][t + goal_offset] for i, t in rows]).astype(np.float32),
        replay=[loaded[i]["actions"][:t] for i, t in rows], goal_offset=goal_offset, budget=budget,
        trivial_replaced=rejected, reject_trivial=bool(reject_trivial))


def make_dataset_goal_episodes(env_id: str, env_kwargs: dict, resolution: int, starts: DatasetStarts) -> GoalEpisodes:
    """The goal episodes of checked dataset rows (``select_dataset_starts``): envs that render, started by seed, the
    goal handed to the env where it takes one, and the recorded actions up to each start."""
    env_list = [envs.make(env_id, resolution=resolution, render=True, **env_kwargs) for _ in starts.rows]
    return GoalEpisodes(
        envs=env_list, seeds=list(starts.seeds), goal_frames=starts.goal_frames, goal_states=starts.goal_states,
        low=np.asarray(env_list[0].action_space.low, np.float32),
        high=np.asarray(env_list[0].action_space.high, np.float32),
        goal_offset=starts.goal_offset, budget=starts.budget, replay=starts.replay,
        settings={**protocol.settings(env_list[0], starts.goal_offset, starts.budget), "protocol": "dataset",
                  "dataset": starts.dataset, "starts": [[i, t] for i, t in starts.rows],
                  "reject_trivial_goals": starts.reject_trivial, "trivial_goals_replaced": starts.trivial_replaced,
                  "goal_policy": "recorded episodes: the goal is the recorded frame goal_offset rows after the start"})
