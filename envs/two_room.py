"""TwoRoom: a point mass (red disc, radius 0.08) in two rooms, x < 0 and x > 0, joined by a door.

The dividing wall (half-thickness 0.04, friction 1) runs along x = 0 except for the door at
|y - 0.45| < 0.22 (DOOR_Y, DOOR_HALF). The door is off-centre on purpose: most straight lines between the
rooms miss it, so a goal in the other room needs the detour through the door and a straight-line greedy
controller gets pinned against the wall (scripts/solvability.py reports its success rate).

State (S=4): ``[x, y, vx, vy]``. Action (A=2) in [-1, 1]^2: terminal velocity 1.6 * action units/s
(~0.08 per step).

Success: position within 0.15 (~4.4 px at 64x64) of the goal position; velocity ignored.
Start: uniform in either room (x in [0.2, 0.85] or its mirror, y in [-0.85, 0.85]). Goal protocol defaults:
goal_offset 40 steps of the goal policy, which always drives to a random point in the *other* room through
the door (so goals are usually across the wall), budget 100 steps.
"""
from __future__ import annotations

import numpy as np

from worldmodel.envs.base import PointMassEnv

ARENA = 0.85
ROOM_INNER = 0.2  # closest start/target x to the dividing wall
DOOR_Y = 0.45  # door centre on the dividing wall
DOOR_HALF = 0.22  # door spans |y - DOOR_Y| < DOOR_HALF


def room_of(xy) -> int:
    """-1 for the left room (x < 0), +1 for the right room."""
    return -1 if xy[0] < 0 else 1


class TwoRoomEnv(PointMassEnv):
    """Point mass in two rooms joined by a door (see module docstring)."""

    xml_file = "two_room.xml"
    success_tolerance = 0.15
    goal_offset = 40
    budget = 100

    def sample_state(self, rng):
        return sample_room_point(rng, int(rng.choice([-1, 1]))), np.zeros(2)


def sample_room_point(rng: np.random.Generator, room: int) -> np.ndarray:
    """Uniform point (x, y) inside ``room`` (-1 left, +1 right), clear of the walls."""
    return np.array([room * rng.uniform(ROOM_INNER, ARENA), rng.uniform(-ARENA, ARENA)])
