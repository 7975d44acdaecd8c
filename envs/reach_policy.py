"""Reach-and-push: a collection and goal policy for foreign envs that keeps the agent in view and moves the world.

OU noise on a third-party env knows nothing of where the agent is: on an env whose action is a target relative to
the agent it drives the agent out of the frame, and objects are rarely touched. This policy reads the adapter's
settings instead (``env.kwargs``; docs/environments.md):

- ``agent_dims``: the state dims of the agent's position, in the action's axes (e.g. ``[0, 1]``);
- ``agent_bounds``: ``[[low...], [high...]]`` of that position the agent must stay inside (default: the observation
  space's bounds of those dims, when finite);
- ``object_dims``: the position dims of objects to push, one list per object (e.g. ``[[2, 3]]``; default none);
- ``action_scale``: the position change (velocity control) or the target offset (relative-target control) that a
  unit action gives, in state units (default 1): the action is ``(waypoint - agent) / action_scale``, clipped.

It repeatedly picks a target: with probability ``push_share`` an object and a random direction (walk to the point
behind the object, then push through it by a quarter of the bounds), otherwise a random point inside the bounds; it
drives there with OU noise (``noise``), never stepping past the bounds (as ``action_scale`` predicts the step), and a
new target comes on arrival or after ``patience`` steps. Every draw comes from the generator it is built with.
"""
from __future__ import annotations

import numpy as np


def reach_settings(env) -> dict | None:
    """The adapter's reach settings of ``env`` (agent_dims, bounds, object_dims, action_scale), or None when the env
    declares no ``agent_dims``. Bounds fall back to the observation space's; none at all is refused in one line."""
    e = env
    while e is not None and not hasattr(e, "agent_dims"):
        e = getattr(e, "env", None)
    if e is None or not e.agent_dims:
        return None
    dims = list(e.agent_dims)
    if e.agent_bounds is not None:
        low, high = (np.asarray(b, np.float64).reshape(-1) for b in e.agent_bounds)
    else:
        space = getattr(e.env, "observation_space", None)
        low = np.asarray(getattr(space, "low", np.full(1, -np.inf)), np.float64).reshape(-1)
        high = np.asarray(getattr(space, "high", np.full(1, np.inf)), np.float64).reshape(-1)
        low, high = (low[dims], high[dims]) if low.size > max(dims) else (low[:0], high[:0])
    if low.size != len(dims) or high.size != len(dims) or not np.all(np.isfinite(low) & np.isfinite(high)) \
            or not np.all(high > low):
        raise ValueError(f"env.kwargs.agent_bounds: expected [[low x{len(dims)}], [high x{len(dims)}]] of the agent's "
                         f"position (agent_dims={dims}); the observation space gives no finite bounds")
    objects = [list(map(int, o)) for o in (e.object_dims or [])]
    return {"agent": dims, "low": low, "high": high, "objects": objects, "scale": float(e.action_scale)}


class ReachPushPolicy:
    """See the module docstring. ``policy(state) -> action`` (float32, in the action box), ``reset(state)``."""

    def __init__(self, env, rng: np.random.Generator, noise: float = 0.3, push_share: float = 0.5,
                 patience: int = 40, single_target: bool = False):
        settings = reach_settings(env)
        if settings is None:
            raise ValueError("policy=reach needs env.kwargs.agent_dims (the agent's position dims in the state)")
        self.s, self.rng = settings, rng
        self.low_a = np.asarray(env.action_space.low, np.float64)
        self.high_a = np.asarray(env.action_space.high, np.float64)
        self.noise, self.push_share, self.patience = noise, push_share, patience
        self.single = single_target  # the goal protocol: one target per episode
        self.extent = self.s["high"] - self.s["low"]
        self.x = np.zeros(len(self.s["agent"]))
        self.plan: list[np.ndarray] = []
        self.age = 0

    def _inside(self, p: np.ndarray, margin: float = 0.1) -> np.ndarray:
        return np.clip(p, self.s["low"] + margin * self.extent, self.s["high"] - margin * self.extent)

    def _new_target(self, state: np.ndarray) -> None:
        self.age = 0
        if self.s["objects"] and self.rng.random() < self.push_share:
            obj = np.asarray(state, np.float64)[self.s["objects"][int(self.rng.integers(len(self.s["objects"])))]]
            d = self.rng.normal(size=obj.size)
            d /= max(float(np.linalg.norm(d)), 1e-9)
            behind = self._inside(obj - 0.08 * self.extent * d, 0.02)
            self.plan = [behind, self._inside(obj + 0.25 * self.extent * d)]
        else:
            self.plan = [self.rng.uniform(self.s["low"] + 0.1 * self.extent, self.s["high"] - 0.1 * self.extent)]

    def reset(self, state: np.ndarray) -> None:
        self.x = np.zeros_like(self.x)
        self._new_target(state)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        agent = np.asarray(state, np.float64)[self.s["agent"]]
        self.age += 1
        if float(np.linalg.norm((self.plan[0] - agent) / self.extent)) < 0.03 or self.age > self.patience:
            if len(self.plan) > 1:
                self.plan, self.age = self.plan[1:], 0
            elif not self.single:
                self._new_target(state)
        u = np.clip((self._inside(self.plan[0], 0.0) - agent) / self.s["scale"], -1.0, 1.0)
        self.x = self.x - 0.15 * self.x + self.noise * self.rng.standard_normal(self.x.shape)
        u = np.clip(u + self.x, -1.0, 1.0)
        # noise never carries the agent out: where the step would leave the bounds, aim at their edge instead
        u = np.clip((self._inside(agent + self.s["scale"] * u, 0.02) - agent) / self.s["scale"], -1.0, 1.0)
        action = np.zeros_like(self.low_a)
        action[: u.size] = u  # the agent's axes are the action's first dims
        return (self.low_a + (action + 1.0) * 0.5 * (self.high_a - self.low_a)).astype(np.float32)
