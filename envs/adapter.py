"""Adapter that makes any gymnasium env speak the worldmodel env contract.

- Frames: ``render()`` of the wrapped env (created with ``render_mode="rgb_array"``), resized to
  ``resolution x resolution`` with PIL (box filter when shrinking, bilinear when growing) if it renders
  another size; always uint8 (H, W, 3).
- State: ``info["state"]`` float32 (S,) from, in order of precedence, ``state_hook`` (a callable
  ``(obs, env) -> array`` or an import string ``"module:function"``), ``state_key`` (a key of a dict
  observation), or the flattened observation. Array-likes (torch tensors, lists, jax arrays) are converted
  through ``.detach().cpu().numpy()`` / ``np.asarray``. ``state_dims`` selects the components used by the
  success distance (default: all); ``proprio_dims`` the components that are the agent's own body (what a robot
  measures of itself: the only state a model may take as input; default: none).
- Success: Euclidean distance over ``state_dims`` below ``success_threshold``, against the goal set with
  ``set_goal`` (the goal protocol); ``info["success"]`` is False until a goal is set.
- Protocol defaults ``goal_offset`` and ``budget`` are adapter settings too (the goal policy of a foreign env
  is seeded OU noise, see ``envs/policies.py``).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from PIL import Image

ADAPTER_KEYS = ("state_key", "state_hook", "state_dims", "proprio_dims", "success_threshold", "goal_offset",
                "budget")


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
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self, resolution=resolution, state_key=state_key, state_hook=state_hook, state_dims=state_dims,
            proprio_dims=proprio_dims, success_threshold=success_threshold, goal_offset=goal_offset, budget=budget)
        gym.Wrapper.__init__(self, env)
        self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}  # frames are all it renders
        self.resolution = int(resolution)
        self.state_key = state_key
        self.state_hook = _resolve_hook(state_hook)
        self.state_dims = None if state_dims is None else [int(i) for i in state_dims]
        self.proprio_dims = [int(i) for i in proprio_dims]
        self.success_tolerance = float(success_threshold)
        self.goal_offset, self.budget = int(goal_offset), int(budget)
        self.criterion = f"||state[{self.state_dims or 'all'}] - goal|| < {self.success_tolerance}"
        self.goal_state: np.ndarray | None = None
        self._state: np.ndarray | None = None

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

    def state_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        s, g = np.asarray(state, np.float64), np.asarray(goal_state, np.float64)
        if self.state_dims is not None:
            s, g = s[self.state_dims], g[self.state_dims]
        return float(np.linalg.norm(s - g))

    def is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        return bool(self.state_distance(state, goal_state) < self.success_tolerance)

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
                "criterion_dims": self.state_dims,  # None: every state dim
                "proprio_dims": self.proprio_dims}

    def _augment(self, obs: Any, info: dict) -> dict:
        info = dict(info)
        self._state = self.extract_state(obs)
        info["state"] = self._state
        ok = self.goal_state is not None and self.is_success(self._state, self.goal_state)
        info["success"] = bool(ok)
        return info

    # ---- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.goal_state = None
        return obs, self._augment(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._augment(obs, info)

    def render(self) -> np.ndarray:
        frame = self.env.render()
        if frame is None:
            raise RuntimeError("wrapped env returned no frame; it must be made with render_mode='rgb_array'")
        return resize_frame(frame, self.resolution)
