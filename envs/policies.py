"""Collection and protocol policies.

A policy is a callable ``policy(state) -> action`` (float32, inside the env's action box) with
``reset(state)`` called after every env reset. All randomness comes from the ``numpy.random.Generator``
the policy is built with, so a policy is deterministic given its seed.

- ``RandomPolicy``: i.i.d. uniform actions.
- ``OUPolicy``: Ornstein-Uhlenbeck (temporally correlated) noise, so rollouts travel instead of jittering.
- ``ScriptedPolicy``: per-task noisy goal-directed behaviour for coverage: repeatedly pick a target
  (TwoRoom: the other room 70% of the time, through the door; PushBlock: a new block position, so the
  pusher walks behind the block and pushes it; PushT: a new block pose), drive there with the task controller
  plus OU noise.
- ``GoalPolicy``: the goal protocol's policy: one target drawn from the seed, driven to with mild noise.
- ``ReachPushPolicy`` (``envs/reach_policy.py``, ``reach``): foreign envs that say where the agent is: keeps it
  inside its bounds and pushes the objects.
- ``scripted_controller(env, goal_state)``: noise-free state feedback that reaches ``goal_state``
  (solvability check). The per-task logic lives in the ``TaskController`` subclasses below.
"""
from __future__ import annotations

import numpy as np

from worldmodel.envs import arm_reach, push_block, push_t, two_room
from worldmodel.envs.push_t_control import PoseController
from worldmodel.envs.reach_policy import ReachPushPolicy, reach_settings


def _scale(u: np.ndarray) -> np.ndarray:
    """Shrink ``u`` uniformly so every component lies in [-1, 1] (keeps the direction)."""
    m = float(np.max(np.abs(u))) if u.size else 0.0
    return u / m if m > 1.0 else u


class TaskController:
    """Task logic in normalized action units ([-1, 1]^A): targets, feedback law, target of a goal state."""

    def __init__(self, env):
        self.env = env.unwrapped

    def sample_target(self, rng: np.random.Generator, state: np.ndarray, explore: bool) -> np.ndarray:
        raise NotImplementedError

    def target_of(self, goal_state: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def act(self, state: np.ndarray, target: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reached(self, state: np.ndarray, target: np.ndarray) -> bool:
        raise NotImplementedError


class ProportionalController(TaskController):
    """Proportional drive of the first two state dims (a position or joint angles) to a target; the goal
    state's first two dims are the target."""

    gain = 1.0

    def target_of(self, goal_state):
        return np.asarray(goal_state[:2], np.float64)

    def act(self, state, target):
        return _scale(self.gain * (target - state[:2]))

    def reached(self, state, target):
        return np.linalg.norm(target - state[:2]) < 0.05


class PointController(ProportionalController):
    """PointReach: proportional drive of the point to a target position."""

    gain = 6.0

    def sample_target(self, rng, state, explore):
        for _ in range(100):
            t = rng.uniform(-0.85, 0.85, 2)
            if explore or np.linalg.norm(t - state[:2]) > 0.6:
                return t
        return t


class TwoRoomController(PointController):
    """TwoRoom: line up with the door, cross it, then drive to the target (waypoint feedback)."""

    def sample_target(self, rng, state, explore):
        here = two_room.room_of(state[:2])
        other = not explore or rng.random() < 0.7
        return two_room.sample_room_point(rng, -here if other else here)

    def waypoint(self, p: np.ndarray, target: np.ndarray) -> np.ndarray:
        door_y = two_room.DOOR_Y
        side_p, side_t = np.sign(p[0]) or 1.0, np.sign(target[0]) or 1.0
        if side_p != side_t:
            if abs(p[1] - door_y) < two_room.DOOR_HALF - 0.1 and abs(p[0]) < 0.4:
                return np.array([side_t * 0.32, door_y])  # in front of the door: go through
            return np.array([side_p * 0.3, door_y])  # line up with the door first
        in_doorway = abs(p[0]) < 0.16 and abs(target[0]) > 0.18
        if in_doorway and abs(p[1] - target[1]) > 0.1:  # step clear of the door posts first
            return np.array([side_t * 0.3, np.clip(p[1], door_y - 0.1, door_y + 0.1)])
        return target

    def act(self, state, target):
        return _scale(self.gain * (self.waypoint(state[:2], target) - state[:2]))


class ArmController(ProportionalController):
    """ArmReach: proportional drive in joint space (straight joint-space paths respect the limits)."""

    gain = 4.0

    def sample_target(self, rng, state, explore):
        for _ in range(100):
            q = rng.uniform(-arm_reach.Q_RANGE, arm_reach.Q_RANGE)
            if explore or np.linalg.norm(arm_reach.fingertip(q) - state[4:6]) > 0.5:
                return q
        return q


class PushController(TaskController):
    """PushBlock: walk around to the side of the block facing away from the target, then push through its
    centre, correcting the lateral offset; slow down near the target. Targets are block positions."""

    def _support(self, state: np.ndarray, d: np.ndarray) -> float:
        """Half-extent of the (rotated) square block along unit direction d."""
        angle = np.arctan2(state[5], state[4]) / 4.0  # block angle modulo a quarter turn
        c, s = np.cos(angle), np.sin(angle)
        return push_block.BLOCK_HALF * (abs(d @ [c, s]) + abs(d @ [-s, c]))

    def sample_target(self, rng, state, explore):
        b = state[2:4]
        lim = push_block.TARGET_RANGE
        for _ in range(100):
            t = rng.uniform(-lim, lim, 2)
            dist = np.linalg.norm(t - b)
            if not 0.35 <= dist <= 0.6:
                continue
            behind = b - (t - b) / dist * 0.3
            if np.all(np.abs(behind) < 0.9):  # the pusher must fit behind the block
                return t
        return np.clip(b, -lim + 0.2, lim - 0.2) * 0.5  # fall back: towards the centre

    def target_of(self, goal_state):
        return np.asarray(goal_state[2:4], np.float64)

    def reached(self, state, target):
        return np.linalg.norm(target - state[2:4]) < 0.05

    def act(self, state, target):
        p, b = state[0:2].astype(np.float64), state[2:4].astype(np.float64)
        e = target - b
        dist = float(np.linalg.norm(e))
        if dist < 0.06:  # done: back away from the block so noise does not nudge it
            away = (p - b) / max(float(np.linalg.norm(p - b)), 1e-6)
            return _scale(6.0 * (b + 0.4 * away - p))
        d = e / dist
        perp = np.array([-d[1], d[0]])
        h = self._support(state, d)
        contact = h + push_block.PUSHER_RADIUS  # pusher-centre distance from block centre at contact
        rel = p - b
        along, lat = rel @ d, rel @ perp
        phi = np.arctan2(lat, along)  # pusher's bearing around the block; +-pi is right behind it
        if np.pi - abs(phi) > 0.35:  # not behind: orbit towards the back on a circle clearing the corners
            phi_next = (np.sign(phi) or 1.0) * min(np.pi, abs(phi) + 0.9)
            radius = push_block.BLOCK_HALF * np.sqrt(2) + push_block.PUSHER_RADIUS + 0.05
            way = b + radius * (np.cos(phi_next) * d + np.sin(phi_next) * perp)
            return _scale(6.0 * (way - p))
        if abs(lat) > 0.05 or along < -contact - 0.08:  # behind but off-line: line up
            way = b - d * (contact + 0.02)
            return _scale(6.0 * (way - p))
        speed = np.clip(dist * 4.0, 0.3, 1.0)
        return _scale(speed * d - 4.0 * lat * perp)


class PushTController(TaskController):
    """PushT: targets are block poses (x, y, angle); the pose controller (``envs/push_t_control.py``) picks the
    face point to push at. Targets move the block 0.2-0.4 (exploring: 0.1-0.5) and turn it 0.4-1.0 rad (0-1.2)."""

    def __init__(self, env):
        super().__init__(env)
        self.pose = PoseController()

    def sample_target(self, rng, state, explore):
        b = np.asarray(state[2:4], np.float64)
        d = rng.normal(size=2)
        d /= max(float(np.linalg.norm(d)), 1e-9)
        far = rng.uniform(0.1, 0.5) if explore else rng.uniform(0.2, 0.4)
        turn = rng.uniform(0.0, 1.2) if explore else rng.uniform(0.4, 1.0)
        xy = np.clip(b + far * d, -0.6, 0.6)
        self.pose.reset()
        return np.array([*xy, push_t.block_angle(state) + rng.choice([-1.0, 1.0]) * turn])

    def target_of(self, goal_state):
        return np.array([goal_state[2], goal_state[3], push_t.block_angle(goal_state)], np.float64)

    def reached(self, state, target):
        return self.pose.done(state, target)

    def act(self, state, target):
        return self.pose.act(state, target)


CONTROLLERS = {  # by registered env id: a foreign env whose class shares a name never gets one of ours
    "worldmodel/PointReach-v0": PointController,
    "worldmodel/TwoRoom-v0": TwoRoomController,
    "worldmodel/ArmReach-v0": ArmController,
    "worldmodel/PushBlock-v0": PushController,
    "worldmodel/PushT-v0": PushTController,
}


def task_controller(env) -> TaskController | None:
    """The TaskController of one of our envs (dispatched by env id), or None for any other env."""
    spec = env.unwrapped.spec or env.spec
    cls = CONTROLLERS.get(spec.id if spec is not None else "")
    return cls(env) if cls is not None else None


class _Policy:
    def __init__(self, env, rng: np.random.Generator):
        self.low = np.asarray(env.action_space.low, np.float64)
        self.high = np.asarray(env.action_space.high, np.float64)
        self.rng = rng

    def reset(self, state: np.ndarray) -> None:
        pass

    def _to_env(self, u: np.ndarray) -> np.ndarray:
        """Map normalized u in [-1, 1]^A to the env's action box."""
        u = np.clip(u, -1.0, 1.0)
        return (self.low + (u + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)


class RandomPolicy(_Policy):
    """Uniform random actions in the action box."""

    def __call__(self, state):
        return self._to_env(self.rng.uniform(-1.0, 1.0, self.low.shape))


class OUPolicy(_Policy):
    """Ornstein-Uhlenbeck noise in normalized units: x += theta * (0 - x) + sigma * N(0, 1), clipped."""

    def __init__(self, env, rng, theta: float = 0.15, sigma: float = 0.3):
        super().__init__(env, rng)
        self.theta, self.sigma = theta, sigma
        self.x = np.zeros(self.low.shape)

    def reset(self, state):
        self.x = self.rng.uniform(-1.0, 1.0, self.low.shape)

    def noise(self) -> np.ndarray:
        self.x = self.x - self.theta * self.x + self.sigma * self.rng.standard_normal(self.x.shape)
        self.x = np.clip(self.x, -1.5, 1.5)
        return self.x

    def __call__(self, state):
        return self._to_env(self.noise())


class ScriptedPolicy(_Policy):
    """Noisy goal-directed coverage policy: new target on arrival or after ``patience`` steps."""

    def __init__(self, env, rng, noise: float = 0.4, patience: int = 60):
        super().__init__(env, rng)
        self.ctrl = task_controller(env)
        if self.ctrl is None:
            raise ValueError(f"no scripted policy for {env.spec.id if env.spec else env}; use random or ou")
        self.ou = OUPolicy(env, rng, theta=0.3, sigma=noise)
        self.patience = patience
        self.target, self.age = None, 0

    def reset(self, state):
        self.ou.x = np.zeros_like(self.ou.x)
        self.target, self.age = self.ctrl.sample_target(self.rng, state, explore=True), 0

    def __call__(self, state):
        if self.age >= self.patience or self.ctrl.reached(state, self.target):
            self.target, self.age = self.ctrl.sample_target(self.rng, state, explore=True), 0
        self.age += 1
        return self._to_env(self.ctrl.act(state, self.target) + self.ou.noise())


class GoalPolicy(_Policy):
    """Goal protocol policy: one target drawn at reset, driven to with mild OU noise (deterministic given
    the rng). For foreign envs (no task controller): one reach-or-push target when the env declares
    ``agent_dims`` (``envs/reach_policy.py``), else plain OU noise."""

    def __init__(self, env, rng, noise: float = 0.15):
        super().__init__(env, rng)
        self.ctrl = task_controller(env)
        self.reach = None
        if self.ctrl is None and reach_settings(env) is not None:
            self.reach = ReachPushPolicy(env, rng, noise=noise, single_target=True)
        self.ou = OUPolicy(env, rng, theta=0.3, sigma=noise if self.ctrl else 0.3)
        self.target = None

    def reset(self, state):
        if self.reach is not None:
            self.reach.reset(state)
        elif self.ctrl is None:
            self.ou.reset(state)
        else:
            self.target = self.ctrl.sample_target(self.rng, state, explore=False)

    def __call__(self, state):
        if self.reach is not None:
            return self.reach(state)
        if self.ctrl is None:
            return self._to_env(self.ou.noise())
        return self._to_env(self.ctrl.act(state, self.target) + self.ou.noise())


def make_policy(name: str, env, seed: int | np.random.Generator):
    """Build a collection policy by name: ``random``, ``ou``, ``scripted`` (our tasks) or ``reach`` (foreign envs
    that declare ``agent_dims``)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    table = {"random": RandomPolicy, "ou": OUPolicy, "scripted": ScriptedPolicy, "goal": GoalPolicy,
             "reach": ReachPushPolicy}
    if name not in table:
        raise ValueError(f"unknown policy {name!r}; expected one of {sorted(table)}")
    return table[name](env, rng)


def scripted_controller(env, goal_state: np.ndarray):
    """Noise-free state-feedback controller reaching ``goal_state`` (S,): returns ``state -> action``."""
    ctrl = task_controller(env)
    if ctrl is None:
        raise ValueError("scripted_controller exists only for the worldmodel/* tasks")
    target = ctrl.target_of(np.asarray(goal_state, np.float64))
    low, high = env.action_space.low, env.action_space.high
    return lambda state: np.clip(ctrl.act(np.asarray(state, np.float64), target), low, high).astype(np.float32)
