"""PointReach: a point mass (red disc, radius 0.08) in an open square arena (walls at +-1).

State (S=4): ``[x, y, vx, vy]``. Action (A=2) in [-1, 1]^2: a force that, against damping, gives a
terminal velocity of 1.2 * action units/s (time constant 0.05 s, i.e. about one env step), so one step moves
at most ~0.06.

Success: the point's position is within 0.12 (~3.5 px at 64x64) of the goal position; velocity is ignored.
Start: uniform in [-0.85, 0.85]^2. Goal protocol defaults: goal_offset 25 steps of the goal policy (drive
to a random point at least 0.6 away), budget 75 steps.
"""
from __future__ import annotations

import numpy as np

from worldmodel.envs.base import PointMassEnv

ARENA = 0.85  # start/target positions are drawn from [-ARENA, ARENA]^2 (the point's centre)


class PointReachEnv(PointMassEnv):
    """Point mass reaching a goal position in an open arena (see module docstring)."""

    xml_file = "point_reach.xml"
    success_tolerance = 0.12
    goal_offset = 25
    budget = 75

    def sample_state(self, rng):
        return rng.uniform(-ARENA, ARENA, 2), np.zeros(2)
