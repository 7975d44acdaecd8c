"""PushT: a red round pusher (radius 0.07) pushes a grey-blue T-shaped block (crossbar 0.40 x 0.10 over a stem
0.10 x 0.30) to a goal *pose*; walls at +-1. Contact is the only way the block moves; its floor friction is joint
damping, so it stops shortly after it is released. The shared benchmark of the field (Push-T) in our MuJoCo style.

State (S=11): ``[pusher_x, pusher_y, block_x, block_y, cos(angle), sin(angle), pusher_vx, pusher_vy, block_vx,
block_vy, block_angular_velocity]``; the block position is its centre of mass, the angle 0 when the crossbar is
on top (the T upright in the frame). A T has no symmetry, so the angle is taken whole (cos/sin: continuous and a
function of the image). Action (A=2) in [-1, 1]^2: pusher force, as PushBlock (~0.08 units per step when free).

Success: the block's centre within 0.12 (~3.5 px at 64x64) of the goal's **and** its angle within pi/9 (20
degrees) of the goal's, as stable-worldmodel's Push-T states it (position and orientation). The pusher's own
position is free. ``state_distance`` (final distances, rewards) is the pose error in position units:
sqrt(position error^2 + (angle error x 0.12 / (pi/9))^2), so both tolerances weigh the same.
Start: block uniform in [-0.4, 0.4]^2 with a uniform angle, pusher uniform in the arena at least 0.4 from the
block. Goal protocol defaults: goal_offset 60 steps of the goal policy (the pose controller of
``envs/policies.py`` pushing toward a random pose 0.2-0.4 away and turned 0.4-1.0 rad, with mild noise), budget
200 steps.
"""
from __future__ import annotations

import numpy as np

from worldmodel.envs.base import TaskEnv

ARENA = 0.85
BLOCK_START = 0.4
PUSHER_RADIUS = 0.07
POS_TOLERANCE = 0.12
ANGLE_TOLERANCE = np.pi / 9
# The T's outline in its body frame (origin at the centre of mass): the crossbar's and the stem's boxes as
# (centre x, centre y, half width, half height).
BAR = (0.0, 0.0857, 0.2, 0.05)
STEM = (0.0, -0.1143, 0.05, 0.15)
RADIUS = 0.27  # the outline's farthest point from the centre of mass (the stem's bottom corners)


def wrap(angle: float | np.ndarray) -> float | np.ndarray:
    """Angle wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def block_angle(state: np.ndarray) -> float:
    """The block's angle (rad) read from the state's cos/sin."""
    return float(np.arctan2(state[5], state[4]))


def pose_errors(state: np.ndarray, goal_state: np.ndarray) -> tuple[float, float]:
    """(position error, absolute angle error in rad) of the block against the goal's."""
    pos = float(np.linalg.norm(np.asarray(state)[2:4] - np.asarray(goal_state)[2:4]))
    return pos, float(abs(wrap(block_angle(goal_state) - block_angle(state))))


class PushTEnv(TaskEnv):
    """Pusher moving a T-shaped block to a goal pose (see module docstring)."""

    xml_file = "push_t.xml"
    state_labels = ("pusher_x", "pusher_y", "block_x", "block_y", "block_cos", "block_sin",
                    "pusher_vx", "pusher_vy", "block_vx", "block_vy", "block_angvel")
    success_tolerance = POS_TOLERANCE
    goal_offset = 60
    budget = 200
    criterion_dims = (2, 3, 4, 5)  # the block's pose: position and angle
    proprio_dims = (0, 1, 6, 7)  # the pusher's position and velocity, never the block

    def state(self) -> np.ndarray:
        q, v = self.data.qpos, self.data.qvel
        return np.concatenate([q[:4], [np.cos(q[4]), np.sin(q[4])], v[:5]]).astype(np.float32)

    def sample_state(self, rng):
        block = rng.uniform(-BLOCK_START, BLOCK_START, 2)
        pusher = rng.uniform(-ARENA, ARENA, 2)
        for _ in range(100):
            if np.linalg.norm(pusher - block) > RADIUS + PUSHER_RADIUS + 0.06:
                break
            pusher = rng.uniform(-ARENA, ARENA, 2)
        angle = rng.uniform(-np.pi, np.pi)
        return np.concatenate([pusher, block, [angle]]), np.zeros(5)

    def touching(self) -> bool:
        """Whether the pusher currently touches the T (a contact between the pusher and the crossbar or the stem)."""
        pusher = self.model.geom("pusher").id
        tee = {self.model.geom("bar").id, self.model.geom("stem").id}
        return any({c.geom1, c.geom2} & tee and pusher in (c.geom1, c.geom2)
                   for c in self.data.contact[: self.data.ncon])

    def state_distance(self, state, goal_state):
        pos, ang = pose_errors(state, goal_state)
        return float(np.hypot(pos, ang * POS_TOLERANCE / ANGLE_TOLERANCE))

    def is_success(self, state, goal_state):
        pos, ang = pose_errors(state, goal_state)
        return bool(pos < POS_TOLERANCE and ang < ANGLE_TOLERANCE)

    @property
    def criterion(self) -> str:
        return (f"||(block_x, block_y) - goal|| < {POS_TOLERANCE} AND |block angle - goal angle| < pi/9 "
                f"({ANGLE_TOLERANCE:.3f} rad)")

    def protocol_defaults(self) -> dict:
        return {**super().protocol_defaults(), "angle_tolerance": float(ANGLE_TOLERANCE)}
