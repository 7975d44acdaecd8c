"""Receding-horizon model-predictive control over E parallel episodes, with any world model.

Any world model following :class:`worldmodel.models.protocol.WorldModel` (the latent model, the pixel baseline,
the test oracles): ``encode_observation`` frames (and states) to latents, ``rollout`` latents under actions.

Loop (``run_episodes`` with ``PlannerController``): encode the current frame of every active episode and its
goal frame (goals once, same encoder convention), plan (E', H, A) env actions for all active episodes in one
batched optimizer call, execute the first ``execute_steps`` of them, each held for ``action_repeat =
model.frame_skip`` env steps, render the new frame, replan from a warm start (the previous mean shifted by
``execute_steps``); with a roadmap (``planning/subgoals.py``) a replanning step may aim at a subgoal frame
instead of the goal frame. An episode stops at success (checked after every env step with the protocol's state
criterion), at the step budget, or when the env terminates/truncates; finished episodes stop stepping and leave
the batch. The predictor sees each planned action as the stack of its repeats (``frame_skip * A``), exactly the
env actions executed, as in training (the time step: docs/datasets.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable, Optional

import numpy as np
import torch

from worldmodel.models.protocol import WorldModel
from worldmodel.planning.energy import EnergyConfig, goal_energy
from worldmodel.planning.observer import Observer
from worldmodel.planning.optimizers import PlannerConfig, episode_generators, plan, shift_plan
from worldmodel.utils import preempt


class Precision(StrEnum):
    """Precision of the planner's rollouts."""
    fp32 = "fp32"
    bf16 = "bf16"
    auto = "auto"


PRECISIONS = tuple(m.value for m in Precision)

# controller(active episode ids (E',), frames (E', H, W, 3) uint8, observed state dims (E', S')) -> actions (E', k, A)
Controller = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class EpisodeStats:
    """Per-episode outcome of ``run_episodes`` (arrays of length E)."""

    success: np.ndarray  # (E,) bool: the success criterion held at some env step
    steps: np.ndarray  # (E,) int: env steps taken (up to success or budget)
    final_distance: np.ndarray  # (E,) state distance to the goal at the last step
    frames: dict = field(default_factory=dict)  # episode id -> list of uint8 frames (recorded episodes only)


def rollout_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the planner's rollouts: None (float32) or bfloat16.

    ``auto`` picks bf16 on CUDA and on CPUs whose oneDNN has native bf16 matmuls (AVX512-BF16 / AMX), where it
    is the faster path, else float32. Energies are always computed in float32 from the rollout's outputs."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
    if precision == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and torch.backends.mkldnn.is_available()
                                           and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        precision = "bf16" if native else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


def make_energy_fn(model, z0: torch.Tensor, state0: Optional[torch.Tensor], goal: torch.Tensor,
                   action_repeat: int, energy_cfg: EnergyConfig, max_batch: int = 0, probe=None,
                   goal_state: Optional[torch.Tensor] = None, dtype: torch.dtype | None = None, temporal=None):
    """Energy over action sequences for E episodes, for the optimizers.

    z0 (E, N, D) current latents, state0 (E, S) | None, goal (E, N, D). Returns energy_fn(actions (E, S, H, A))
    -> (E, S): every sample is rolled out from its episode's z0 with the model's cached path, its actions held
    for ``action_repeat`` env steps (stacked to (H, action_repeat * A)), and scored against the goal latent.
    ``max_batch`` > 0 splits the E * S rollouts into chunks of at most that many (memory). ``probe``: the
    learned metric of ``energy.probe_weight`` (``worldmodel.planning.probe``); ``goal_state`` (E, K): the
    standardized goal states of ``energy.state_weight`` when read from the goal frames beforehand. ``dtype``:
    autocast dtype of the rollouts (``rollout_dtype``; None: float32). ``temporal``: the metric of
    ``energy.temporal_weight`` (``worldmodel.planning.temporal``).
    """
    def energy_fn(actions: torch.Tensor) -> torch.Tensor:
        E, S, H, A = actions.shape
        a = actions.repeat(1, 1, 1, action_repeat).reshape(E * S, H, action_repeat * A)  # (E*S, H, r*A)
        z = z0[:, None].expand(E, S, *z0.shape[1:]).reshape(E * S, *z0.shape[1:])  # (E*S, N, D)
        g = goal[:, None].expand(E, S, *goal.shape[1:]).reshape(E * S, *goal.shape[1:])  # (E*S, N, D)
        s = None if state0 is None else state0[:, None].expand(E, S, state0.shape[-1]).reshape(E * S, -1)
        gs = None if goal_state is None else goal_state[:, None].expand(E, S, goal_state.shape[-1]).reshape(E * S, -1)
        chunk = max_batch if max_batch > 0 else E * S
        out = []
        for i in range(0, E * S, chunk):
            sl = slice(i, i + chunk)
            with torch.autocast(z.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                # latents (b, H, N, D), states (b, H, S)
                pred = model.rollout(z[sl], None if s is None else s[sl], a[sl])
            states = pred.states.float() if energy_cfg.state_weight > 0 and pred.states is not None else None
            out.append(goal_energy(pred.latents, g[sl].float(), energy_cfg, probe, states,
                                   None if gs is None else gs[sl], temporal))  # (b,)
        return torch.cat(out).reshape(E, S)

    return energy_fn


@dataclass(frozen=True)
class Goals:
    """The episodes' goals and what bounds their actions."""

    frames: np.ndarray  # (E, H, W, 3) uint8 goal images
    seeds: list[int]  # (E,) episode seeds: each episode's sampling generator
    low: np.ndarray  # (A,) action bounds
    high: np.ndarray  # (A,)
    observations: np.ndarray | None = None  # (E, S') goal states for models that encode states (test oracles only)


@dataclass(frozen=True)
class PlanSettings:
    """How plans are searched and scored."""

    planner: PlannerConfig
    energy: EnergyConfig
    execute_steps: int = 1  # predictor steps executed before replanning
    max_batch: int = 0  # rollouts per model call (0: all at once)
    precision: str = "fp32"  # rollouts: fp32 | bf16 | auto (rollout_dtype)


class PlannerController:
    """Plans for all active episodes at once and returns the first ``execute_steps`` actions of each plan.

    Per call: observe (encode the frames) -> aim (the goal, or a roadmap subgoal) -> energy over action sequences
    -> optimize (CEM, ...) from each episode's warm start -> execute the first steps -> shift the warm start.
    ``plan_seconds`` lists (seconds, episodes in the batch) for every replanning step.

    Args:
        model: a world model (``worldmodel.models.protocol.WorldModel``).
        goals: goal images, seeds and action bounds of the E episodes.
        settings: optimizer, energy, execution.
        probe: the energy's latent probe (``planning/probe.py``), fitted beforehand; None without probe terms.
        graph: a subgoal roadmap (``planning/subgoals.py``) or None: always aim at the goal itself.
        temporal: the energy's temporal metric (``planning/temporal.py``), fitted beforehand; None without it.
    """

    def __init__(self, model: WorldModel, goals: Goals, settings: PlanSettings, probe=None, graph=None,
                 temporal=None):
        if graph is not None and probe is None:
            raise ValueError("subgoals need the probe that reads states from frames (planning.probe.fit_probe)")
        self.model, self.settings, self.probe, self.graph, self.temporal = model, settings, probe, graph, temporal
        self.observe = Observer(model, probe)
        self.device = model.device
        self.dtype = rollout_dtype(settings.precision, self.device)  # None: float32 rollouts
        self.low = torch.as_tensor(goals.low, dtype=torch.float32, device=self.device)  # (A,)
        self.high = torch.as_tensor(goals.high, dtype=torch.float32, device=self.device)  # (A,)
        # goals once here: latents (E, N, D) and, for the probe's state term or the roadmap, states (E, K)
        read_goal = probe is not None and (settings.energy.state_weight > 0 or graph is not None)
        goal = self.observe(goals.frames, goals.observations, read_goal)
        self.goal, self.goal_state = goal.latents, goal.state
        if graph is not None:
            graph.set_goals(self.goal_state, self.goal)
        self.subgoal_plans = 0  # episode-plans aimed at a graph subgoal (not the goal itself)
        self.episode_plans = 0
        self.gens = episode_generators(goals.seeds, self.device)
        E, H, A = len(goals.seeds), settings.planner.horizon, self.low.shape[0]
        self.mean = torch.zeros(E, H, A, device=self.device).clamp(self.low, self.high)  # (E, H, A) warm starts
        self.plan_seconds: list[tuple[float, int]] = []

    @property
    def rollout_dtype_name(self) -> str:
        """The rollouts' dtype as summaries record it: float32 | bfloat16."""
        return str(self.dtype or torch.float32).removeprefix("torch.")

    def aim(self, active: np.ndarray, idx: torch.Tensor, now) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each active episode's target this step: goal latents (E', N, D) and states (E', K) | None, replaced by a
        roadmap subgoal's where the roadmap picks one."""
        goal = self.goal[idx]  # (E', N, D)
        goal_state = None if self.goal_state is None else self.goal_state[idx]  # (E', K)
        if self.graph is not None:
            sub = self.graph.subgoals(active, now.state, self.graph.cfg.lookahead, now.latents)  # (E',), -1: goal
            use = torch.as_tensor(sub >= 0, device=self.device)
            if use.any():
                nodes = torch.as_tensor(sub[sub >= 0])
                goal = goal.clone()
                goal[use] = self.graph.latents[nodes].to(goal)
                if goal_state is not None:
                    goal_state = goal_state.clone()
                    goal_state[use] = self.graph.states[nodes].to(goal_state)
            self.subgoal_plans += int(use.sum())
        self.episode_plans += len(active)
        return goal, goal_state

    def __call__(self, active: np.ndarray, frames: np.ndarray, states: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        idx = torch.as_tensor(active, device=self.device)
        cfg = self.settings
        with torch.no_grad():  # the grad optimizer re-enables autograd for its refinement only
            read = self.graph is not None and self.graph.project is None  # a latent-space roadmap reads no state
            now = self.observe(frames, states, read)  # latents (E', N, D), state (E', K) | None, fine | None
            s0 = self.observe.state_input(frames, states, now.fine) if self.model.uses_state else None
            goal, goal_state = self.aim(active, idx, now)
            fn = make_energy_fn(self.model, now.latents, s0, goal, self.model.frame_skip, cfg.energy, cfg.max_batch,
                                self.probe, goal_state, self.dtype, self.temporal)
            res = plan(fn, cfg.planner, self.low, self.high, len(active), [self.gens[i] for i in active],
                       mean=self.mean[idx])
        k = min(cfg.execute_steps, cfg.planner.horizon)
        self.mean[idx] = shift_plan(res.mean, k, self.low, self.high)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.plan_seconds.append((time.perf_counter() - t0, len(active)))
        return res.actions[:, :k].cpu().numpy()  # (E', k, A)


def random_controller(low: np.ndarray, high: np.ndarray, seeds: list[int], chunk: int = 1) -> Controller:
    """Uniform random actions in the bounds, one numpy generator per episode (seeded like the planner)."""
    rngs = [np.random.default_rng(s) for s in seeds]

    def act(active, frames, states):
        return np.stack([rngs[e].uniform(low, high, size=(chunk, len(low))) for e in active]).astype(np.float32)

    return act


def zero_controller(low: np.ndarray, high: np.ndarray, chunk: int = 1) -> Controller:
    """The zero action (clipped into the bounds), every step."""
    a = np.clip(np.zeros_like(low), low, high).astype(np.float32)

    def act(active, frames, states):
        return np.broadcast_to(a, (len(active), chunk, len(low))).copy()

    return act


def run_episodes(envs: list, seeds: list[int], goal_states: np.ndarray, controller: Controller, budget: int,
                 action_repeat: int, is_success: Callable, state_distance: Callable,
                 record: tuple[int, ...] = (), reset: Optional[Callable[[int], dict]] = None,
                 observed_dims: list[int] | None = None) -> EpisodeStats:
    """Closed-loop episodes: reset(seed), then ask ``controller`` for action chunks until done.

    envs: E gymnasium envs rendering rgb_array (``info["state"]`` after reset/step); goal_states (E, S), for the
    success check only. The controller sees the frames and only the ``observed_dims`` of the state (the model's
    state token, i.e. proprioception; None: all dims, for oracle runs); no other state reaches it.
    Each chunk action is held for ``action_repeat`` env steps; success is checked after every env step with
    ``is_success(env, state, goal_state)``; an episode ends at success, at ``budget`` env steps, or on
    termination/truncation. ``record``: episode ids whose every frame is kept (for GIFs). ``reset(e) -> info``
    replaces ``envs[e].reset(seed=seeds[e])`` (e.g. the goal protocol's ``start``).
    """
    E = len(envs)
    frames, states = [None] * E, [None] * E
    success, done = np.zeros(E, bool), np.zeros(E, bool)
    steps = np.zeros(E, int)
    rec = {e: [] for e in record}
    for e, env in enumerate(envs):
        info = reset(e) if reset is not None else env.reset(seed=int(seeds[e]))[1]
        frames[e], states[e] = env.render(), np.asarray(info["state"], np.float32)
        if e in rec:
            rec[e].append(frames[e])
        success[e] = done[e] = bool(is_success(env, states[e], goal_states[e]))
    while not done.all():
        preempt.check("plan")  # between replanning steps: the phase in flight is redone on the rerun
        active = np.flatnonzero(~done)
        observed = np.stack([states[e] if observed_dims is None else states[e][observed_dims] for e in active])
        chunk = controller(active, np.stack([frames[e] for e in active]), observed)  # (E', k, A)
        for j, e in enumerate(active):
            env = envs[e]
            for a in chunk[j]:
                for _ in range(action_repeat):
                    _, _, term, trunc, info = env.step(a)
                    steps[e] += 1
                    states[e] = np.asarray(info["state"], np.float32)
                    if e in rec:
                        rec[e].append(env.render())
                    if is_success(env, states[e], goal_states[e]):
                        success[e] = done[e] = True
                    elif steps[e] >= budget or term or trunc:
                        done[e] = True
                    if done[e]:
                        break
                if done[e]:
                    break
            if not done[e]:
                frames[e] = rec[e][-1] if e in rec else env.render()
    dist = np.array([state_distance(envs[e], states[e], goal_states[e]) for e in range(E)], np.float64)
    return EpisodeStats(success=success, steps=steps, final_distance=dist, frames=rec)
