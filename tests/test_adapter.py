"""GymAdapter: any gymnasium env gets frames at the configured resolution, a state vector, a success test."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import worldmodel.envs as envs  # noqa: E402
from worldmodel.envs import protocol  # noqa: E402
from worldmodel.envs.adapter import GymAdapter, _resolve_hook  # noqa: E402


class DictObsEnv(gym.Env):
    """A tiny non-MuJoCo env with a dict observation and a non-square 10x20 render."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Dict({
            "pos": gym.spaces.Box(-10, 10, (2,), np.float64), "t": gym.spaces.Box(0, 100, (1,), np.float64)})
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def _obs(self):
        return {"pos": self.pos.copy(), "t": np.array([self.t], np.float64)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = self.np_random.uniform(-1, 1, 2), 0.0
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + 0.1 * np.asarray(action, np.float64), -10, 10)
        self.t += 1
        return self._obs(), 0.0, False, False, {}

    def render(self):
        img = np.zeros((10, 20, 3), np.uint8)
        img[:, : int(10 + 5 * np.clip(self.pos[0], -1, 1))] = 255
        return img


if "test/DictObs-v0" not in gym.registry:
    gym.register("test/DictObs-v0", entry_point=DictObsEnv, max_episode_steps=50)


def test_mujoco_env_adapted_check_env_and_resize():
    env = envs.make("InvertedPendulum-v5", resolution=32)  # renders 480x480 natively
    assert isinstance(env, GymAdapter)
    check_env(env)
    env = envs.make("InvertedPendulum-v5", resolution=32)
    obs, info = env.reset(seed=0)
    assert info["state"].dtype == np.float32 and np.allclose(info["state"], obs, atol=1e-6)
    assert info["success"] is False  # no goal set yet
    frame = env.render()
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8 and frame.std() > 0
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["state"].shape == (4,)


def test_goal_protocol_on_reacher():
    kw = dict(width=64, height=64, state_dims=[0, 1, 2, 3], success_threshold=0.2, goal_offset=15, budget=30)
    env = envs.make("Reacher-v5", resolution=32, **kw)
    g1, g2 = protocol.make_goal(env, 5), protocol.make_goal(env, 5)
    assert np.array_equal(g1.frame, g2.frame) and np.array_equal(g1.state, g2.state)
    assert g1.frame.shape == (32, 32, 3)
    s = protocol.settings(env)
    assert s["env_id"] == "Reacher-v5" and s["goal_offset"] == 15 and s["budget"] == 30
    _, info = protocol.start(env, g1)
    d = protocol.state_distance(env, info["state"], g1.state)
    assert np.isclose(d, np.linalg.norm(info["state"][:4] - g1.state[:4]), atol=1e-5)
    assert info["success"] == (d < 0.2)
    assert protocol.is_success(env, g1.state, g1.state)
    # the goal is the state goal_offset steps along the goal policy, so it usually moved
    res = protocol.run_episode(env, g1, lambda st: np.zeros(2, np.float32))
    assert res["steps"] >= 1


def test_state_key_hook_and_tensor_conversion():
    env = envs.make("test/DictObs-v0", resolution=16, state_key="pos", success_threshold=0.05)
    obs, info = env.reset(seed=1)
    assert np.allclose(info["state"], obs["pos"]) and info["state"].dtype == np.float32
    assert env.render().shape == (16, 16, 3)  # 10x20 resized to 16x16
    protocol.task(env).set_goal(info["state"])
    _, _, _, _, info = env.step(np.zeros(2, np.float32))
    assert info["success"] is True
    _, _, _, _, info = env.step(np.ones(2, np.float32))
    assert info["success"] is False  # moved 0.14 > 0.05

    hook = lambda obs, env: torch.tensor([obs["pos"][0], obs["t"][0]])  # noqa: E731
    env = envs.make("test/DictObs-v0", resolution=16, state_hook=hook, state_dims=[0])
    _, info = env.reset(seed=1)
    assert info["state"].shape == (2,) and info["state"].dtype == np.float32
    assert _resolve_hook("numpy:concatenate") is np.concatenate  # hooks can be import strings (configs)
    with pytest.raises(ValueError, match="module:function"):
        _resolve_hook("no_colon")

    env = envs.make("test/DictObs-v0", resolution=16)
    with pytest.raises(ValueError, match="state_key"):
        env.reset(seed=0)
    env = envs.make("test/DictObs-v0", resolution=16, state_key="missing")
    with pytest.raises(KeyError, match="missing"):
        env.reset(seed=0)
