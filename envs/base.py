"""Shared base of the worldmodel MuJoCo tasks.

Every task is a planar scene under a fixed top-down orthographic camera (``top``) that covers
[-1.1, 1.1]^2 (about 0.034 units per pixel at 64x64). An env step is ``frame_skip=5`` physics steps of
0.01 s (20 steps per second). Observations are the task state (float64, gymnasium's MuJoCo convention);
``info["state"]`` carries the same vector as float32, ``info["success"]`` the task's state criterion against
the env's current goal state.

The goal: ``reset`` samples a goal state from the task's own distribution (used for the dense reward
``-state_distance``). The goal-reaching protocol (``envs/protocol.py``) instead builds goals by rolling the
goal policy and calls ``set_goal(goal_state)`` so that ``info["success"]`` and the reward refer to it.
No goal is ever drawn: the image shows only the bodies the criterion depends on.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from worldmodel.envs.variation import SceneVariation, Variation

ASSETS = Path(__file__).resolve().parent / "assets"


class TaskEnv(MujocoEnv):
    """Base for the four tasks; subclasses set the class variables and the state/criterion methods."""

    metadata = {"render_modes": ["rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 20}

    xml_file: ClassVar[str]
    state_labels: ClassVar[tuple[str, ...]]
    success_tolerance: ClassVar[float]
    goal_offset: ClassVar[int]  # goal-protocol default: goal-policy steps from the start to the goal
    budget: ClassVar[int]  # goal-protocol default: env steps a controller/planner may use
    criterion_dims: ClassVar[tuple[int, ...]]  # success: Euclidean distance over these dims < success_tolerance
    proprio_dims: ClassVar[tuple[int, ...]]  # the agent's own body (what a robot measures of itself): model inputs

    def __init__(
        self,
        render_mode: str | None = "rgb_array",
        resolution: int = 64,
        width: int | None = None,
        height: int | None = None,
        variation: dict | None = None,
    ):
        width = int(width or resolution)
        height = int(height or resolution)
        obs_space = spaces.Box(-np.inf, np.inf, (len(self.state_labels),), np.float64)
        MujocoEnv.__init__(
            self,
            str(ASSETS / self.xml_file),
            frame_skip=5,
            observation_space=obs_space,
            render_mode=render_mode,
            width=width,
            height=height,
            camera_name="top",
        )
        self.resolution = (height, width)
        self.goal_state = np.zeros(len(self.state_labels), np.float32)
        v = Variation.parse(variation)  # factors of variation of the frames (envs/variation.py); none by default
        self.scene = SceneVariation(v, self.model) if v.active else None

    # ---- task interface (subclasses) -------------------------------------------------------------
    def state(self) -> np.ndarray:
        """Current low-dimensional state, float32 (S,), laid out as ``state_labels``."""
        raise NotImplementedError

    def state_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        """Distance in the quantity the success criterion thresholds: Euclidean over ``criterion_dims``."""
        dims = list(self.criterion_dims)
        return float(np.linalg.norm(np.asarray(state)[dims] - np.asarray(goal_state)[dims]))

    @property
    def criterion(self) -> str:
        """The success criterion in one line, recorded with every result (derived from the class facts)."""
        names = ", ".join(self.state_labels[d] for d in self.criterion_dims)
        return f"||({names}) - goal|| < {self.success_tolerance}"

    def sample_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random valid (qpos, qvel) from the task's start distribution."""
        raise NotImplementedError

    def is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        """The task's success criterion: ``state_distance < success_tolerance``."""
        return bool(self.state_distance(state, goal_state) < self.success_tolerance)

    # ---- gymnasium API ---------------------------------------------------------------------------
    def set_goal(self, goal_state: np.ndarray) -> None:
        """Make ``info["success"]`` and the reward refer to ``goal_state`` (S,) until the next reset."""
        self.goal_state = np.asarray(goal_state, np.float32).reshape(len(self.state_labels))

    def reset_model(self) -> np.ndarray:
        qpos, qvel = self.sample_state(self.np_random)
        self.set_state(qpos, qvel)
        start = self.state()
        # The reset goal comes from the same start distribution, resampled until it is not already met.
        for _ in range(100):
            gpos, gvel = self.sample_state(self.np_random)
            self.set_state(gpos, gvel)
            self.goal_state = self.state()
            if not self.is_success(start, self.goal_state):
                break
        self.set_state(qpos, qvel)
        return self._get_obs()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        if self.scene is not None:
            self.scene.reset(seed)  # after the task's own draws, from a stream of its own
            mujoco.mj_camlight(self.model, self.data)  # the camera's new place, without touching the state
        return obs, info

    def render(self):
        frame = super().render()
        if self.scene is not None and self.render_mode == "rgb_array":
            frame = self.scene.frame(frame)
        return frame

    def _get_obs(self) -> np.ndarray:
        return self.state().astype(np.float64)

    def _info(self, state: np.ndarray) -> dict:
        dist = self.state_distance(state, self.goal_state)
        return {"state": state, "success": self.is_success(state, self.goal_state), "distance": float(dist)}

    def _get_reset_info(self) -> dict:
        return self._info(self.state())

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64), self.action_space.low, self.action_space.high)
        self.do_simulation(action, self.frame_skip)
        state = self.state()
        info = self._info(state)
        if self.scene is not None:
            self.scene.step()
        # Continuing task: reaching the goal does not terminate; TimeLimit truncates.
        return state.astype(np.float64), -info["distance"], False, False, info

    # ---- helpers ---------------------------------------------------------------------------------
    def protocol_defaults(self) -> dict:
        """Goal-protocol settings recorded with results."""
        return {
            "goal_offset": int(self.goal_offset),
            "budget": int(self.budget),
            "success_tolerance": float(self.success_tolerance),
            "criterion": self.criterion,
            "criterion_dims": list(self.criterion_dims),
            "proprio_dims": list(self.proprio_dims),
        }


class PointMassEnv(TaskEnv):
    """A point mass on a plane (qpos[:2] its position): state ``[x, y, vx, vy]``, success by position error."""

    state_labels = ("x", "y", "vx", "vy")
    criterion_dims = (0, 1)
    proprio_dims = (0, 1, 2, 3)  # the point mass is the agent: its position and velocity

    def state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:2], self.data.qvel[:2]]).astype(np.float32)
