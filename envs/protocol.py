"""The goal-reaching protocol (docs/environments.md), for our tasks and for any adapted gymnasium env.

1. ``goal = make_goal(env, seed, goal_offset)``: ``reset(seed=seed)``, roll the env's goal policy (seeded by
   ``seed``, so deterministic) for ``goal_offset`` steps, record the goal frame and goal state.
2. The caller resets again with the same seed (same start state), calls ``start(env, goal)`` (which does
   that reset and ``set_goal``) and acts for at most ``budget`` steps.
3. Success is the task's state criterion ``is_success(env, state, goal.state)`` (the adapter's distance
   threshold for foreign envs). ``settings(env, ...)`` returns what to record alongside every result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldmodel.envs.policies import GoalPolicy, task_controller


@dataclass
class Goal:
    """A goal produced by the protocol: the frame (H, W, 3) uint8 (None for an env made with render=False),
    the state (S,) float32, the seed."""

    frame: np.ndarray | None
    state: np.ndarray
    seed: int


def task(env):
    """The object holding the task interface (is_success, state_distance, set_goal, protocol defaults):
    the adapter wrapper for foreign envs, the unwrapped env for ours."""
    e = env
    while e is not None:
        if hasattr(type(e), "is_success"):
            return e
        e = getattr(e, "env", None)
    raise TypeError(f"{env} has no success criterion; build it with envs.make(...)")


def defaults(env) -> dict:
    """Protocol defaults of the env: goal_offset, budget, success_tolerance, criterion."""
    return task(env).protocol_defaults()


def proprio_dims(env) -> list[int]:
    """The state dims that are the agent's own body (the only state a model may take as input)."""
    return list(defaults(env).get("proprio_dims") or [])


def make_goal(env, seed: int, goal_offset: int | None = None) -> Goal:
    """Reset with ``seed``, roll the goal policy ``goal_offset`` steps (env default if None), record the goal.

    The goal policy's randomness is seeded by ``seed`` too. An episode that terminates early ends the roll.
    """
    goal_offset = defaults(env)["goal_offset"] if goal_offset is None else int(goal_offset)
    _, info = env.reset(seed=int(seed))
    rng = np.random.default_rng([int(seed), 7919])
    custom = getattr(task(env), "goal_policy", None)  # an adapter setting: "module:Class" built as Class(env, rng)
    policy = custom(env, rng) if custom is not None else GoalPolicy(env, rng)
    state = info["state"]
    policy.reset(state)
    for _ in range(goal_offset):
        _, _, terminated, truncated, info = env.step(policy(state))
        state = info["state"]
        if terminated or truncated:
            break
    frame = np.asarray(env.render()).copy() if env.render_mode is not None else None  # None: built with render=False
    return Goal(frame=frame, state=np.asarray(state, np.float32).copy(), seed=int(seed))


def start(env, goal: Goal):
    """Reset to the goal's start state and point the env's success flag at the goal; returns (obs, info)."""
    options = task(env).reset_options(goal.state) if hasattr(task(env), "reset_options") else None
    obs, info = env.reset(seed=goal.seed, options=options)  # options: the goal handed to an env that takes one
    task(env).set_goal(goal.state)
    info = dict(info)
    info["success"] = is_success(env, info["state"], goal.state)
    return obs, info


def is_success(env, state: np.ndarray, goal_state: np.ndarray) -> bool:
    """The env's state criterion (our tasks) or the adapter's distance threshold (foreign envs)."""
    return bool(task(env).is_success(np.asarray(state), np.asarray(goal_state)))


def state_distance(env, state: np.ndarray, goal_state: np.ndarray) -> float:
    """The distance the criterion thresholds (e.g. position error), for curves and logs."""
    return float(task(env).state_distance(np.asarray(state), np.asarray(goal_state)))


def settings(env, goal_offset: int | None = None, budget: int | None = None) -> dict:
    """Protocol settings to record with a result (env id, goal_offset, budget, criterion, tolerance)."""
    d = dict(defaults(env))
    if goal_offset is not None:
        d["goal_offset"] = int(goal_offset)
    if budget is not None:
        d["budget"] = int(budget)
    d["env_id"] = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    scripted = task_controller(env) is not None
    d["goal_policy"] = ("task controller to a seeded random target + OU noise" if scripted
                        else "OU noise") + " (seeded by the episode seed)"
    return d


def run_episode(env, goal: Goal, controller, budget: int | None = None) -> dict:
    """Run ``controller(state) -> action`` from the goal's start for ``budget`` steps; success is reached
    the first time the criterion holds. Returns success, steps, final distance."""
    budget = defaults(env)["budget"] if budget is None else int(budget)
    _, info = start(env, goal)
    state = info["state"]
    if is_success(env, state, goal.state):
        return {"success": True, "steps": 0, "distance": state_distance(env, state, goal.state)}
    for t in range(1, budget + 1):
        _, _, terminated, truncated, info = env.step(controller(state))
        state = info["state"]
        if is_success(env, state, goal.state):
            return {"success": True, "steps": t, "distance": state_distance(env, state, goal.state)}
        if terminated or truncated:
            break
    return {"success": False, "steps": t, "distance": state_distance(env, state, goal.state)}
