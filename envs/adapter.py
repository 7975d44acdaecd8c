"""Adapter that makes any gymnasium env speak the worldmodel env contract.

- Frames: ``render()`` of the wrapped env (created with ``render_mode="rgb_array"``; for envs that ignore it,
  ``render_method`` names the env method returning a frame and ``render_kwargs`` its arguments), resized to
  ``resolution x resolution`` with PIL (box filter when shrinking, bilinear when growing) if it renders
  another size; always uint8 (H, W, 3).
- State: ``info["state"]`` float32 (S,) from, in order of precedence, ``state_hook`` (a callable
  ``(obs, env) -> array`` or an import string ``"module:function"``), ``state_key`` (a key of a dict
  observation), or the flattened observation. Array-likes (torch tensors, lists, jax arrays) are converted
  through ``.detach().cpu().numpy()`` / ``np.asarray``. ``state_dims`` selects the components used by the
  success distance (default: all); ``proprio_dims`` the components that are the agent's own body (what a robot
  measures of itself: the only state a model may take as input; default: none).
- Success (``success``): ``state`` (default) compares the state with the goal set by ``set_goal`` (the goal
  protocol): every condition of ``success_conditions`` (a list of ``{dims, threshold, angle}``: the Euclidean
  norm over ``dims``, angles wrapped to [-pi, pi) first, below ``threshold``) holds, or, without conditions, the
  distance over ``state_dims`` (default: ``goal_dims`` when set, else every dim) is below ``success_threshold``.
  Or the env's own signal: ``terminated``, ``info:<key>`` (e.g. ``info:is_success``), or
  ``<module>:<function>`` called as ``f(env, obs, info) -> bool``.
  ``info["success"]`` is False until a goal is set. Final distances are taken over the dims success is about
  (``success_dims``), never over an env's own target dims.
- ``ignore_terminated``: the env's own ``terminated`` (e.g. about a target of its own) does not end episodes
  (``info["env_terminated"]`` keeps it); ``goal_option``: the goal state is handed to the env as
  ``reset(options={goal_option: goal[goal_dims]})`` when an episode starts.
- Actions of any float dtype are clipped into the box and cast to its dtype; discrete action spaces are refused
  (planning samples continuous actions). A non-finite observation or a ``render()`` that returns nothing fails
  with one line naming the env and the field.
- Protocol defaults ``goal_offset`` and ``budget`` are adapter settings too; so is ``goal_policy``, the policy
  rolled to make goals (``"module:Class"``, built as ``Class(env, rng)`` with ``reset(state)`` and
  ``__call__(state) -> action``; default seeded OU noise, see ``envs/policies.py``).
- ``agent_dims``, ``agent_bounds``, ``object_dims``, ``action_scale``: where the agent is, the bounds it must stay
  in, what it can push, and how far a unit action moves it; with them collection (``policy=reach``) and the goal
  policy keep the agent in view and push the objects (``envs/reach_policy.py``), and ``wm collect`` counts the
  recorded states outside the bounds.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from PIL import Image

ADAPTER_KEYS = ("state_key", "state_hook", "state_dims", "proprio_dims", "success_threshold", "goal_offset",
                "budget", "success", "success_conditions", "ignore_terminated", "goal_option", "goal_dims",
                "goal_policy", "render_method", "render_kwargs", "agent_dims", "agent_bounds", "object_dims",
                "action_scale")


def to_numpy(x: Any) -> np.ndarray:
    """Array-like (numpy, torch tensor, list, scalar, ...) -> float32 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach()
    if hasattr(x, "cpu"):
        x = x.cpu()
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x, dtype=np.float32)


def _resolve_hook(hook: str | Callable | None) -> Callable | None:
    if hook is None or callable(hook):
        return hook
    module, _, name = str(hook).partition(":")
    if not name:
        raise ValueError(f"state_hook {hook!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module), name)


def resize_frame(frame: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (h, w, 3|4) frame -> uint8 (resolution, resolution, 3)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = np.clip(frame * (255.0 if frame.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    frame = frame[..., :3]
    if frame.shape[:2] == (resolution, resolution):
        return np.ascontiguousarray(frame)
    shrink = frame.shape[0] > resolution or frame.shape[1] > resolution
    img = Image.fromarray(frame).resize((resolution, resolution), Image.BOX if shrink else Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


class GymAdapter(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Wrap a gymnasium env (rendering rgb_array) with frames, state, success per the contract.

    Recorded in ``env.spec`` (RecordConstructorArgs), so ``env.spec.make()`` rebuilds the adapted env."""

    def __init__(
        self,
        env: gym.Env,
        resolution: int = 64,
        state_key: str | None = None,
        state_hook: str | Callable | None = None,
        state_dims: Sequence[int] | None = None,
        proprio_dims: Sequence[int] = (),
        success_threshold: float = 0.1,
        goal_offset: int = 20,
        budget: int = 60,
        success: str = "state",
        success_conditions: Sequence[dict] | None = None,
        ignore_terminated: bool = False,
        goal_option: str | None = None,
        goal_dims: Sequence[int] | None = None,
        goal_policy: str | None = None,
        render_method: str = "render",
        render_kwargs: dict | None = None,
        agent_dims: Sequence[int] | None = None,
        agent_bounds: Sequence[Sequence[float]] | None = None,
        object_dims: Sequence[Sequence[int]] | None = None,
        action_scale: float = 1.0,
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self, resolution=resolution, state_key=state_key, state_hook=state_hook, state_dims=state_dims,
            proprio_dims=proprio_dims, success_threshold=success_threshold, goal_offset=goal_offset, budget=budget,
            success=success, success_conditions=success_conditions, ignore_terminated=ignore_terminated,
            goal_option=goal_option, goal_dims=goal_dims, goal_policy=goal_policy, render_method=render_method,
            render_kwargs=render_kwargs, agent_dims=agent_dims, agent_bounds=agent_bounds, object_dims=object_dims,
            action_scale=action_scale)
        gym.Wrapper.__init__(self, env)
        self.name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"env.id={self.name!r}: action space {env.action_space} is not supported; worldmodel "
                             f"plans continuous actions (gymnasium.spaces.Box)")
        self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}  # frames are all it renders
        self.resolution = int(resolution)
        self.state_key = state_key
        self.state_hook = _resolve_hook(state_hook)
        self.state_dims = None if state_dims is None else [int(i) for i in state_dims]
        self.proprio_dims = [int(i) for i in proprio_dims]
        self.success_tolerance = float(success_threshold)
        self.goal_offset, self.budget = int(goal_offset), int(budget)
        self.conditions = [{"dims": [int(d) for d in c["dims"]], "threshold": float(c["threshold"]),
                            "angle": bool(c.get("angle", False))} for c in (success_conditions or [])]
        self.success_mode = str(success)
        self.success_fn = None
        if self.success_mode not in ("state", "terminated") and not self.success_mode.startswith("info:"):
            self.success_fn = _resolve_hook(self.success_mode)
        self.ignore_terminated, self.goal_option = bool(ignore_terminated), goal_option
        self.goal_dims = None if goal_dims is None else [int(d) for d in goal_dims]
        self.render_method, self.render_kwargs = str(render_method), dict(render_kwargs or {})
        if not callable(getattr(env.unwrapped, self.render_method, None)):
            raise ValueError(f"env.id={self.name!r}: render_method {self.render_method!r} is not a method of the env")
        self.goal_policy = _resolve_hook(goal_policy)  # the goal protocol's policy class (None: seeded OU noise)
        # where the agent is and what it can push (envs/reach_policy.py: collection and goals that keep it in view)
        self.agent_dims = None if agent_dims is None else [int(d) for d in agent_dims]
        self.agent_bounds = None if agent_bounds is None else [[float(v) for v in b] for b in agent_bounds]
        self.object_dims = [[int(d) for d in o] for o in (object_dims or [])]
        self.action_scale = float(action_scale)
        if self.action_scale <= 0:
            raise ValueError(f"env.kwargs.action_scale={action_scale}: expected > 0")
        self.criterion = self._describe_criterion()
        self.goal_state: np.ndarray | None = None
        self._state: np.ndarray | None = None
        self._signal = False  # the env's own success signal at the last reset/step

    # ---- state, success --------------------------------------------------------------------------
    def extract_state(self, obs: Any) -> np.ndarray:
        """Observation -> float32 state vector (S,)."""
        if self.state_hook is not None:
            return to_numpy(self.state_hook(obs, self.env)).reshape(-1)
        if self.state_key is not None:
            if not isinstance(obs, dict) or self.state_key not in obs:
                keys = list(obs) if isinstance(obs, dict) else type(obs).__name__
                raise KeyError(f"state_key {self.state_key!r} not in observation (has {keys})")
            return to_numpy(obs[self.state_key]).reshape(-1)
        if isinstance(obs, dict):
            raise ValueError(f"dict observation (keys {list(obs)}): set state_key or state_hook")
        return to_numpy(obs).reshape(-1)

    def _describe_criterion(self) -> str:
        if self.success_mode != "state":
            return f"the env's own signal: {self.success_mode}"
        if self.conditions:
            return " AND ".join(f"||{'wrap' if c['angle'] else ''}(state[{c['dims']}] - goal)|| < {c['threshold']}"
                                for c in self.conditions)
        return f"||state[{self.success_dims or 'all'}] - goal|| < {self.success_tolerance}"

    @property
    def success_dims(self) -> list[int] | None:
        """The state dims success is about, for distances and probes: ``state_dims``; else the dims of the success
        conditions; else ``goal_dims`` (what an env judging success itself is handed); None: every dim."""
        if self.state_dims is not None:
            return self.state_dims
        if self.conditions:
            return sorted({d for c in self.conditions for d in c["dims"]})
        return self.goal_dims

    @staticmethod
    def _gap(s: np.ndarray, g: np.ndarray, dims, angle: bool) -> float:
        d = np.asarray(s, np.float64)[dims] - np.asarray(g, np.float64)[dims]
        if angle:
            d = (d + np.pi) % (2 * np.pi) - np.pi
        return float(np.linalg.norm(d))

    def state_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        """The first condition's distance (or the distance over ``state_dims``), for curves and logs."""
        if self.conditions:
            c = self.conditions[0]
            return self._gap(state, goal_state, c["dims"], c["angle"])
        dims = self.success_dims
        return self._gap(state, goal_state, dims if dims is not None else slice(None), False)

    def is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        """The state criterion; with an env signal (``success`` other than state), the signal of the last
        reset/step (the state arguments are not used)."""
        if self.success_mode != "state":
            return bool(self._signal)
        if self.conditions:
            return all(self._gap(state, goal_state, c["dims"], c["angle"]) < c["threshold"] for c in self.conditions)
        return bool(self.state_distance(state, goal_state) < self.success_tolerance)

    def reset_options(self, goal_state: np.ndarray) -> dict | None:
        """``reset`` options handing the goal to the env (``goal_option``), or None."""
        if not self.goal_option:
            return None
        g = np.asarray(goal_state, np.float32)
        return {self.goal_option: g[self.goal_dims] if self.goal_dims is not None else g}

    def set_goal(self, goal_state: np.ndarray) -> None:
        self.goal_state = np.asarray(goal_state, np.float32).reshape(-1)

    def state(self) -> np.ndarray:
        """The state at the last reset/step."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def protocol_defaults(self) -> dict:
        return {"goal_offset": self.goal_offset, "budget": self.budget,
                "success_tolerance": self.success_tolerance, "criterion": self.criterion,
                "criterion_dims": self.success_dims,  # None: every state dim
                "proprio_dims": self.proprio_dims}

    def _augment(self, obs: Any, info: dict, terminated: bool = False) -> dict:
        info = dict(info)
        self._state = self.extract_state(obs)
        if not np.isfinite(self._state).all():
            raise ValueError(f"env {self.name!r}: the observation{f' key {self.state_key!r}' if self.state_key else ''}"
                             f" has non-finite values {self._state.tolist()[:8]}")
        info["state"] = self._state
        if self.success_mode == "terminated":
            self._signal = bool(terminated)
        elif self.success_mode.startswith("info:"):
            self._signal = bool(info.get(self.success_mode[5:], False))
        elif self.success_fn is not None:
            self._signal = bool(self.success_fn(self.env, obs, info))
        ok = self.goal_state is not None and self.is_success(self._state, self.goal_state)
        info["success"] = bool(ok)
        return info

    # ---- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.goal_state = None
        return obs, self._augment(obs, info)

    def step(self, action):
        box = self.env.action_space
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(box.shape), box.low, box.high).astype(box.dtype)
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = self._augment(obs, info, terminated)
        if self.ignore_terminated:
            info["env_terminated"], terminated = bool(terminated), False
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray:
        if self.render_method == "render" and not self.render_kwargs:
            frame = self.env.render()
        else:  # envs that ignore render_mode: call their own frame method with its arguments
            frame = getattr(self.env.unwrapped, self.render_method)(**self.render_kwargs)
        if frame is None:
            raise ValueError(f"env {self.name!r}: render() returned None; it must render rgb_array frames (set "
                             f"env.kwargs.render_mode, or the env's own render option)")
        return resize_frame(frame, self.resolution)
