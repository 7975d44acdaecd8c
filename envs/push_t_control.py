"""PushT's pose controller: push the T at the face point that best turns and moves it toward a goal pose.

Each step scores a fixed set of contact points on the T's outline (``CONTACTS``, body frame: the point and its
outward normal). Pushing at point c along -n moves the block along -n and turns it by the torque (c - centre) x
(-n); a candidate's score adds how much that translation points toward the goal position and how much that torque
turns toward the goal angle, each weighted by how far that error is from its tolerance, minus a small cost of the
walk to it (and a bonus for the candidate in use, so the choice does not chatter). The pusher walks to the chosen
point's approach spot (straight when the path clears the T, otherwise around it on a circle), then pushes through
the point, correcting its lateral offset. When both errors are within tolerance it backs away.
"""
from __future__ import annotations

import numpy as np

from worldmodel.envs import push_t

# (x, y, normal x, normal y) in the T's body frame (origin at its centre of mass, crossbar on top).
CONTACTS = np.array([
    [-0.15, 0.1357, 0, 1], [0.0, 0.1357, 0, 1], [0.15, 0.1357, 0, 1],  # crossbar top
    [-0.2, 0.0857, -1, 0], [0.2, 0.0857, 1, 0],  # crossbar ends
    [-0.15, 0.0357, 0, -1], [0.15, 0.0357, 0, -1],  # crossbar underside
    [-0.05, -0.07, -1, 0], [0.05, -0.07, 1, 0], [-0.05, -0.21, -1, 0], [0.05, -0.21, 1, 0],  # stem sides
    [0.0, -0.2643, 0, -1],  # stem foot
])
ORBIT = push_t.RADIUS + push_t.PUSHER_RADIUS + 0.06  # a circle around the centre that clears the whole T
STANDOFF = push_t.PUSHER_RADIUS + 0.04  # the approach spot's distance from its contact point


def _rot(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def outline_distance(p_body: np.ndarray) -> float:
    """Signed distance of a body-frame point to the T's outline (negative inside)."""
    out = np.inf
    for cx, cy, hw, hh in (push_t.BAR, push_t.STEM):
        q = np.abs(p_body - [cx, cy]) - [hw, hh]
        out = min(out, float(np.linalg.norm(np.maximum(q, 0)) + min(max(q[0], q[1]), 0.0)))
    return out


def _scale(u: np.ndarray) -> np.ndarray:
    m = float(np.max(np.abs(u)))
    return u / m if m > 1.0 else u


class PoseController:
    """Noise-free feedback to a goal pose ``target = (x, y, angle)`` of the T; ``act(state, target)`` ->
    action in [-1, 1]^2. Keeps the contact it pushes at between calls (reset it with ``reset``)."""

    def __init__(self):
        self.current: int | None = None

    def reset(self) -> None:
        self.current = None

    def done(self, state: np.ndarray, target: np.ndarray) -> bool:
        pos = float(np.linalg.norm(target[:2] - state[2:4]))
        ang = float(abs(push_t.wrap(target[2] - push_t.block_angle(state))))
        return pos < 0.6 * push_t.POS_TOLERANCE and ang < 0.6 * push_t.ANGLE_TOLERANCE

    def choose(self, p: np.ndarray, b: np.ndarray, rot: np.ndarray, target: np.ndarray, theta: float) -> int:
        """Index of the contact to push at (see the module docstring)."""
        e = target[:2] - b
        dist = float(np.linalg.norm(e))
        delta = float(push_t.wrap(target[2] - theta))
        w_pos = min(dist / 0.15, 1.0) if dist > 0.5 * push_t.POS_TOLERANCE else 0.0
        w_ang = float(np.clip(delta / 0.5, -1, 1)) if abs(delta) > 0.5 * push_t.ANGLE_TOLERANCE else 0.0
        c = CONTACTS[:, :2] @ rot.T  # (K, 2) lever arms in world axes
        u = -CONTACTS[:, 2:] @ rot.T  # (K, 2) push directions
        torque = c[:, 0] * u[:, 1] - c[:, 1] * u[:, 0]
        score = w_pos * (u @ (e / max(dist, 1e-9))) + w_ang * torque / push_t.RADIUS
        spots = b + c - u * STANDOFF
        score -= 0.15 * np.linalg.norm(spots - p, axis=1)
        score[np.any(np.abs(spots) > 0.92, axis=1)] = -np.inf  # the pusher would not fit against a wall
        if self.current is not None:
            score[self.current] += 0.15
        return int(np.argmax(score))

    def act(self, state: np.ndarray, target: np.ndarray) -> np.ndarray:
        p, b = np.asarray(state[0:2], np.float64), np.asarray(state[2:4], np.float64)
        theta = push_t.block_angle(state)
        if self.done(state, target):  # back away so the pusher does not nudge the block
            away = (p - b) / max(float(np.linalg.norm(p - b)), 1e-6)
            self.current = None
            return _scale(6.0 * (b + (ORBIT + 0.05) * away - p))
        rot = _rot(theta)
        self.current = k = self.choose(p, b, rot, np.asarray(target, np.float64), theta)
        c = b + rot @ CONTACTS[k, :2]
        n = rot @ CONTACTS[k, 2:]
        touch = c + n * push_t.PUSHER_RADIUS  # pusher centre when touching at c
        rel = p - touch
        lateral = rel - (rel @ n) * n
        if float(np.linalg.norm(lateral)) < 0.04 and -0.01 < rel @ n < STANDOFF + 0.03:  # lined up: push
            return _scale(-0.8 * n - 5.0 * lateral)
        spot = c + n * STANDOFF
        if self._clear(p, spot, b, rot):
            return _scale(6.0 * (spot - p))
        return _scale(6.0 * (self._orbit(p, spot, b) - p))

    @staticmethod
    def _clear(p: np.ndarray, q: np.ndarray, b: np.ndarray, rot: np.ndarray) -> bool:
        """Whether the pusher can move straight from p to q without touching the T."""
        for s in np.linspace(0.0, 1.0, 9):
            x = rot.T @ (p + s * (q - p) - b)
            if outline_distance(x) < push_t.PUSHER_RADIUS + 0.01:
                return False
        return True

    @staticmethod
    def _orbit(p: np.ndarray, spot: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The next waypoint on the circle around the T, toward the spot's bearing (outward first if inside)."""
        rel = p - b
        r = float(np.linalg.norm(rel))
        here = np.arctan2(rel[1], rel[0])
        if r < ORBIT - 0.05:
            return b + ORBIT * np.array([np.cos(here), np.sin(here)])
        there = np.arctan2(*(spot - b)[::-1])
        step = float(push_t.wrap(there - here))
        nxt = here + np.sign(step) * min(abs(step), 0.7)
        return b + ORBIT * np.array([np.cos(nxt), np.sin(nxt)])
