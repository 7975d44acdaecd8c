"""worldmodel environments: five MuJoCo goal-reaching tasks and an adapter for any gymnasium env.

Registered ids (gymnasium namespace ``worldmodel``)::

    worldmodel/PointReach-v0   point mass, open arena           goal_offset 25, budget 75
    worldmodel/TwoRoom-v0      point mass, two rooms + door     goal_offset 40, budget 100
    worldmodel/ArmReach-v0     planar two-link arm, fingertip   goal_offset 25, budget 75
    worldmodel/PushBlock-v0    pusher moves a block (contact)   goal_offset 50, budget 150
    worldmodel/PushT-v0        pusher moves a T to a pose       goal_offset 60, budget 200

``make(env_id, resolution=64, render=True, **kwargs)`` builds ours directly and wraps any other gymnasium
id in ``GymAdapter`` (adapter keys: state_key, state_hook, state_dims, success_threshold, goal_offset,
budget; the rest go to ``gymnasium.make``). Every env gives ``info["state"]`` (float32) and
``info["success"]`` and renders uint8 (resolution, resolution, 3) frames.
"""
from __future__ import annotations

import importlib
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402

from worldmodel.envs.adapter import ADAPTER_KEYS, GymAdapter  # noqa: E402
from worldmodel.envs.policies import make_policy, scripted_controller, task_controller  # noqa: E402

RESERVED = ("resolution", "render")  # make()'s own keywords; an env's kwargs of these names go as env_<name>
MAX_EPISODE_STEPS = 200  # TimeLimit of the registered tasks (>= every budget); collection overrides it

TASKS = {
    "worldmodel/PointReach-v0": "worldmodel.envs.point_reach:PointReachEnv",
    "worldmodel/TwoRoom-v0": "worldmodel.envs.two_room:TwoRoomEnv",
    "worldmodel/ArmReach-v0": "worldmodel.envs.arm_reach:ArmReachEnv",
    "worldmodel/PushBlock-v0": "worldmodel.envs.push_block:PushBlockEnv",
    "worldmodel/PushT-v0": "worldmodel.envs.push_t:PushTEnv",
}

for _id, _entry in TASKS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, max_episode_steps=MAX_EPISODE_STEPS)


def make(env_id: str, resolution: int = 64, render: bool = True, **kwargs) -> gym.Env:
    """Build ``env_id`` rendering uint8 (resolution, resolution, 3) frames, with ``info["state"]`` and
    ``info["success"]``.

    Args:
        env_id: one of ``TASKS`` or any registered gymnasium id (wrapped in ``GymAdapter``).
        resolution: square frame size.
        render: False builds the env without a renderer (no GL context), e.g. for state-only checks.
        kwargs: ``max_episode_steps`` and env kwargs for ``gymnasium.make``; for foreign envs also the
            adapter keys (``ADAPTER_KEYS``); ``imports``: modules to import first (packages registering envs);
            ``env_resolution`` / ``env_render``: the env's own ``resolution`` / ``render`` keyword arguments;
            ``render_mode``: when the env renders rgb frames under another mode name.
    """
    kwargs = dict(kwargs)
    render_mode = kwargs.pop("render_mode", "rgb_array") if render else None  # a user's render_mode wins
    kwargs.pop("render_mode", None)
    for module in kwargs.pop("imports", None) or []:  # packages that register their envs when imported
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"env.kwargs.imports: cannot import {module!r} ({e})") from e
    try:
        if env_id in TASKS:
            return gym.make(env_id, render_mode=render_mode, resolution=int(resolution), **kwargs)
        adapter_kwargs = {k: kwargs.pop(k) for k in ADAPTER_KEYS if k in kwargs}
        for name in RESERVED:  # the env's own kwargs named like ours: env_resolution reaches it as resolution
            if f"env_{name}" in kwargs:
                kwargs[name] = kwargs.pop(f"env_{name}")
        try:
            env = gym.make(env_id, render_mode=render_mode, **kwargs)
        except Exception as e:  # an env that only accepts its rgb render mode: build it rendering, even for a probe
            if render_mode is not None or isinstance(e, gym.error.Error):
                raise
            env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    except gym.error.Error as e:  # unknown id / namespace / version: a user's input, not a crash
        raise ValueError(f"env.id={env_id!r}: {e} (worldmodel tasks: {', '.join(TASKS)}; a package's env: "
                         f"env.id=<module>:<id> imports <module> first)") from e
    return GymAdapter(env, resolution=int(resolution), **adapter_kwargs)


__all__ = ["TASKS", "make", "make_policy", "scripted_controller", "task_controller", "GymAdapter"]
