"""PushBlock: a red round pusher (radius 0.07) pushes a blue square block (half-size 0.12) that slides and
turns in the plane; walls at +-1. Contact between pusher and block (and walls) is the only way the block
moves; its floor friction is modelled as joint damping, so it stops shortly after it is released.

State (S=11): ``[pusher_x, pusher_y, block_x, block_y, cos(4*angle), sin(4*angle), pusher_vx, pusher_vy,
block_vx, block_vy, block_angular_velocity]``. The block angle enters as cos/sin of 4x the angle: a square
looks the same every quarter turn, so this is continuous, bounded and a function of the image (a raw hinge
angle would grow without bound and differ between identical-looking frames).
Action (A=2) in [-1, 1]^2: pusher force, terminal velocity 1.6 * action
units/s when free (~0.08 per step), about 1.0 while pushing the block.

Success: the block centre is within 0.15 (~4.4 px at 64x64) of the goal block centre. The criterion is
position-only on purpose: the block's orientation is visible but a square block's angle (mod pi/2) is a
few pixels of corner displacement at 64x64, too fine to ask a pixel-space planner to match, and the pusher's
own position is free. Start: block uniform in [-0.45, 0.45]^2 with a random angle, pusher uniform in the
arena at least 0.3 from the block. Goal protocol defaults: goal_offset 50 steps of the goal policy (walk
behind the block and push it 0.35-0.6 towards a random target), budget 150 steps.
"""
from __future__ import annotations

import numpy as np

from worldmodel.envs.base import TaskEnv

ARENA = 0.85
BLOCK_START = 0.45
BLOCK_HALF = 0.12
PUSHER_RADIUS = 0.07
TARGET_RANGE = 0.65  # block targets stay inside +-TARGET_RANGE so the pusher fits behind the block


class PushBlockEnv(TaskEnv):
    """Pusher moving a block to a goal position (see module docstring)."""

    xml_file = "push_block.xml"
    state_labels = ("pusher_x", "pusher_y", "block_x", "block_y", "block_cos4a", "block_sin4a",
                    "pusher_vx", "pusher_vy", "block_vx", "block_vy", "block_angvel")
    success_tolerance = 0.15
    goal_offset = 50
    budget = 150
    criterion_dims = (2, 3)
    proprio_dims = (0, 1, 6, 7)  # the pusher's position and velocity, never the block

    def state(self) -> np.ndarray:
        q, v = self.data.qpos, self.data.qvel
        angle = [np.cos(4 * q[4]), np.sin(4 * q[4])]
        return np.concatenate([q[:4], angle, v[:5]]).astype(np.float32)


    def sample_state(self, rng):
        block = rng.uniform(-BLOCK_START, BLOCK_START, 2)
        pusher = rng.uniform(-ARENA, ARENA, 2)
        for _ in range(100):
            if np.linalg.norm(pusher - block) > 0.3:
                break
            pusher = rng.uniform(-ARENA, ARENA, 2)
        angle = rng.uniform(-np.pi / 4, np.pi / 4)
        return np.concatenate([pusher, block, [angle]]), np.zeros(5)

    def touching(self) -> bool:
        """Whether the pusher currently touches the block (a contact between their geoms)."""
        pid, bid = self.model.geom("pusher").id, self.model.geom("block").id
        for c in self.data.contact[: self.data.ncon]:
            if {c.geom1, c.geom2} == {pid, bid}:
                return True
        return False
