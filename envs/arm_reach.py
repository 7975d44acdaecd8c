"""ArmReach: a planar two-link arm (blue upper link 0.5, green forearm 0.45, orange fingertip) around a
base at the arena centre.

State (S=6): ``[q_shoulder, q_elbow, dq_shoulder, dq_elbow, tip_x, tip_y]`` (angles in rad; shoulder limited
to +-pi so the state is continuous, elbow to +-2.6). Action (A=2) in [-1, 1]^2: joint velocity-like
commands, 2.5 * action rad/s (~0.125 rad per step).

Success: the fingertip is within 0.12 (~3.5 px at 64x64) of the goal fingertip position. Both elbow
branches reaching the same point count (both are visible in the goal image as arm poses; the criterion
only asks for the fingertip). Start: shoulder uniform in [-pi, pi), elbow uniform in [-2.4, 2.4].
Goal protocol defaults: goal_offset 25 steps of the goal policy (joint-space drive to a random
configuration whose fingertip is at least 0.5 away), budget 75 steps.
"""
from __future__ import annotations

import numpy as np

from worldmodel.envs.base import TaskEnv

L1, L2 = 0.5, 0.45
Q_RANGE = np.array([np.pi - 0.05, 2.4])  # start/target configurations are drawn inside +-Q_RANGE


def fingertip(q) -> np.ndarray:
    """Fingertip (x, y) of joint angles ``q = (shoulder, elbow)``."""
    a, b = q[0], q[0] + q[1]
    return np.array([L1 * np.cos(a) + L2 * np.cos(b), L1 * np.sin(a) + L2 * np.sin(b)])


class ArmReachEnv(TaskEnv):
    """Two-link arm reaching a fingertip goal (see module docstring)."""

    xml_file = "arm_reach.xml"
    state_labels = ("q_shoulder", "q_elbow", "dq_shoulder", "dq_elbow", "tip_x", "tip_y")
    success_tolerance = 0.12
    goal_offset = 25
    budget = 75
    criterion_dims = (4, 5)
    proprio_dims = (0, 1, 2, 3, 4, 5)  # joint angles and velocities, and the fingertip (forward kinematics)

    def state(self) -> np.ndarray:
        q = self.data.qpos[:2]
        return np.concatenate([q, self.data.qvel[:2], fingertip(q)]).astype(np.float32)


    def sample_state(self, rng):
        return rng.uniform(-Q_RANGE, Q_RANGE), np.zeros(2)
