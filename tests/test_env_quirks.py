"""Third-party env quirks the adapter takes with settings only: one test per quirk, on a small env written here."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import run_json  # noqa: E402

import worldmodel.envs as envs  # noqa: E402
from worldmodel.envs import protocol  # noqa: E402


class QuirkEnv(gym.Env):
    """A point on a plane with every quirk a foreign env may have, switched by kwargs: tensor or dict observations,
    float64 actions, a 48 x 40 render, its own target taken from ``reset(options={"target": ...})``, ``terminated``
    when the point reaches it (or an ``info["is_success"]`` flag), NaN observations, a render that returns None,
    a discrete action space."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None, obs="array", nan_at=-1, no_frame=False, discrete=False, radius=0.15):
        self.render_mode, self.kind, self.nan_at = render_mode, obs, nan_at
        self.no_frame, self.radius = no_frame, radius
        self.action_space = gym.spaces.Discrete(4) if discrete else gym.spaces.Box(-1, 1, (2,), np.float64)
        box = gym.spaces.Box(-2, 2, (2,), np.float64)
        self.observation_space = gym.spaces.Dict({"agent": box, "target": box}) if obs == "dict" else box
        self.seen_options = None

    def _obs(self):
        pos = self.pos.copy()
        if self.t == self.nan_at:
            pos[0] = np.nan
        if self.kind == "dict":
            return {"agent": pos, "target": self.target.copy()}
        return torch.as_tensor(pos) if self.kind == "tensor" else pos

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seen_options = options
        self.pos, self.t = self.np_random.uniform(-1, 1, 2), 0
        self.target = np.asarray((options or {}).get("target", self.np_random.uniform(-1, 1, 2)), np.float64)
        return self._obs(), {}

    def step(self, action):
        assert isinstance(action, np.ndarray) and action.dtype == np.float64 and np.all(np.abs(action) <= 1)
        self.pos = np.clip(self.pos + 0.2 * action, -2, 2)
        self.t += 1
        reached = bool(np.linalg.norm(self.pos - self.target) < self.radius)
        return self._obs(), -float(np.linalg.norm(self.pos - self.target)), reached, False, {"is_success": reached}

    def draw(self, scale=1):
        """A frame method of the env's own that ignores render_mode (as some envs do)."""
        return np.repeat(np.repeat(self.render_frame(), scale, 0), scale, 1)

    def render(self):
        return self.render_frame()

    def render_frame(self):
        if self.no_frame:
            return None
        frame = np.zeros((48, 40, 3), np.uint8)
        y, x = ((self.pos + 2) / 4 * [47, 39]).astype(int)
        frame[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3] = 255
        return frame


gym.register("quirks/Quirk-v0", entry_point=QuirkEnv, max_episode_steps=None)  # no TimeLimit
gym.register("quirks/TwoRoomEnv-v0", entry_point=QuirkEnv)  # a foreign env whose class name could collide


def make(**kw):
    return envs.make("quirks/Quirk-v0", resolution=32, **kw)


def reach(env, goal):
    """A controller driving the point (state dims 0, 1) to goal dims 0, 1."""
    return lambda s: np.clip((np.asarray(goal[:2]) - s[:2]) * 3, -1, 1)


def test_tensor_observations_and_a_render_of_another_size():
    env = make(obs="tensor")
    _, info = env.reset(seed=0)
    assert info["state"].dtype == np.float32 and info["state"].shape == (2,)
    assert env.render().shape == (32, 32, 3)  # 48 x 40 resized to the model's resolution
    env.close()


def test_render_method_for_envs_that_ignore_render_mode():
    env = make(render_method="draw", render_kwargs={"scale": 2})
    env.reset(seed=0)
    assert env.render().shape == (32, 32, 3)  # 96 x 80 from the env's own method, resized
    with pytest.raises(ValueError, match="render_method 'paint'"):
        make(render_method="paint")


def test_dict_observation_picks_a_key_and_proprio():
    env = make(obs="dict", state_key="agent", proprio_dims=[0, 1])
    _, info = env.reset(seed=0)
    assert np.allclose(info["state"], env.unwrapped.pos) and protocol.proprio_dims(env) == [0, 1]


def test_float64_actions_are_clipped_and_cast():
    env = make()
    env.reset(seed=0)
    env.step(np.array([5.0, -5.0], np.float32))  # QuirkEnv asserts float64 within [-1, 1]


def test_no_time_limit_the_budget_applies():
    env = make()
    goal = protocol.make_goal(env, seed=1, goal_offset=3)
    out = protocol.run_episode(env, goal, lambda s: np.zeros(2), budget=7)
    assert out["steps"] == 7 and env.spec.max_episode_steps is None


@pytest.mark.parametrize("signal", ["terminated", "info:is_success"])
def test_success_from_the_env_and_goal_through_reset_options(signal):
    """The protocol's goal goes to the env as reset(options={"target": ...}); success is the env's own flag."""
    env = make(success=signal, goal_option="target", goal_dims=[0, 1], ignore_terminated=signal != "terminated")
    goal = protocol.make_goal(env, seed=3, goal_offset=6)
    out = protocol.run_episode(env, goal, reach(env, goal.state), budget=40)
    assert np.allclose(env.unwrapped.seen_options["target"], goal.state[:2])
    assert out["success"] and env.unwrapped.pos is not None
    assert np.linalg.norm(env.unwrapped.pos - goal.state[:2]) < 0.15  # the env's own radius decided it
    assert protocol.defaults(env)["criterion"] == f"the env's own signal: {signal}"


def test_ignore_terminated_keeps_the_episode_going():
    env = make(goal_option="target", ignore_terminated=True)
    env.reset(seed=0, options={"target": env.unwrapped.np_random.uniform(-1, 1, 2) * 0})
    env.unwrapped.pos = np.zeros(2)
    _, _, terminated, _, info = env.step(np.zeros(2))
    assert terminated is False and info["env_terminated"] is True


def test_success_conditions_join_by_and_with_wrapped_angles():
    env = make(success_conditions=[{"dims": [0], "threshold": 0.1}, {"dims": [1], "threshold": 0.35, "angle": True}])
    task = protocol.task(env)
    assert task.is_success(np.array([0.0, np.pi - 0.1]), np.array([0.05, -np.pi + 0.1]))  # 0.2 rad apart, wrapped
    assert not task.is_success(np.array([0.0, 0.5]), np.array([0.0, -0.5]))
    assert not task.is_success(np.array([0.3, 0.0]), np.array([0.0, 0.0]))
    assert "AND" in protocol.defaults(env)["criterion"]


def test_foreign_env_named_like_ours_gets_no_scripted_policy():
    env = envs.make("quirks/TwoRoomEnv-v0", resolution=32)
    assert envs.task_controller(env) is None
    with pytest.raises(ValueError, match="policy=scripted"):
        run_json("collect", ["preset=smoke", "env.id=quirks/TwoRoomEnv-v0", "policy=scripted", "out_dir=/tmp/x"])


@pytest.mark.parametrize("kw, culprit", [({"nan_at": 1}, "non-finite"),
                                         ({"no_frame": True}, r"render\(\) returned None"),
                                         ({"discrete": True}, "not supported")])
def test_broken_envs_fail_with_one_line(kw, culprit):
    with pytest.raises(ValueError, match=culprit) as e:
        env = make(**kw)
        env.reset(seed=0)
        env.step(np.zeros(2))
        env.render()
    assert "quirks/Quirk-v0" in str(e.value)


def test_dict_env_collect_train_plan_from_the_cli(tmp_path):
    """A dict-observation env with its own success signal, end to end at the smoke preset with overrides only."""
    env = ["env.id=quirks/Quirk-v0", "+env.kwargs.obs=dict", "+env.kwargs.state_key=agent",
           "+env.kwargs.proprio_dims=[0,1]", "+env.kwargs.success=info:is_success", "+env.kwargs.goal_option=target",
           "+env.kwargs.goal_dims=[0,1]", "+env.kwargs.ignore_terminated=true"]
    data = tmp_path / "data"
    run_json("collect", ["preset=smoke", "policy=ou", "resolution=32", f"out_dir={data}", *env])
    ac = run_json("train-ac", ["preset=smoke", f"dataset={data}", f"out_dir={tmp_path / 'ac'}"])
    plan = run_json("plan", ["preset=smoke", "bootstrap=false", f"checkpoint={ac['checkpoint']}", "gifs=0",
                                f"out_dir={tmp_path / 'plan'}"])
    assert plan["episodes"] == 2 and plan["protocol"]["criterion"] == "the env's own signal: info:is_success"


@pytest.mark.parametrize("env_name", ["reacher", "pusher"])
def test_gymnasium_mujoco_examples_end_to_end(tmp_path, env_name):
    """gymnasium's own Reacher-v5 and Pusher-v5: collected, trained and planned at the smoke preset from a yaml."""
    data = tmp_path / "data"
    run_json("collect", ["preset=smoke", f"env={env_name}", "policy=ou", "resolution=32", f"out_dir={data}"])
    ac = run_json("train-ac", ["preset=smoke", f"dataset={data}", f"out_dir={tmp_path / 'ac'}"])
    args = ["preset=smoke", "bootstrap=false", f"checkpoint={ac['checkpoint']}", "gifs=0", f"out_dir={tmp_path / 'p'}"]
    if env_name == "pusher":  # OU goals never move the object: zero actions meet every goal, and plan refuses them
        with pytest.raises(ValueError, match="zero actions reach .* too easy"):
            run_json("plan", [*args, "reject_trivial_goals=true"])
    plan = run_json("plan", args)
    assert plan["episodes"] == 2 and plan["privileged_inputs"] == []
    if env_name == "pusher":
        assert "zero actions already succeed" in plan["warning"]


class AutoResetQuirk(QuirkEnv):
    """Resets itself on reaching its target (as vectorized/auto-reset envs do): the step after is a new episode."""

    def step(self, action):
        obs, r, terminated, truncated, info = super().step(action)
        if terminated:
            self.pos = self.np_random.uniform(-1, 1, 2)
        return obs, r, terminated, truncated, info


gym.register("quirks/AutoReset-v0", entry_point=AutoResetQuirk, max_episode_steps=None)


class RgbOnlyQuirk(QuirkEnv):
    """Refuses to be built without its rgb render mode (render_mode=None raises)."""

    def __init__(self, render_mode=None, **kw):
        if render_mode != "rgb_array":
            raise ValueError(f"render_mode must be 'rgb_array', got {render_mode!r}")
        super().__init__(render_mode, **kw)


gym.register("quirks/RgbOnly-v0", entry_point=RgbOnlyQuirk, max_episode_steps=None)


class SizedQuirk(QuirkEnv):
    """Takes a ``resolution`` keyword of its own (the name make() uses for frame size)."""

    def __init__(self, render_mode=None, resolution=10):
        super().__init__(render_mode)
        self.own_resolution = resolution


gym.register("quirks/Sized-v0", entry_point=SizedQuirk, max_episode_steps=None)


def test_env_kwargs_named_like_ours_reach_the_env():
    env = envs.make("quirks/Sized-v0", resolution=32, env_resolution=7)
    assert env.unwrapped.own_resolution == 7 and env.resolution == 32


def test_env_that_only_renders_rgb_array_collects(tmp_path):
    """Collection's probe env (built without a renderer) falls back to the rgb mode such an env insists on."""
    s = run_json("collect", ["preset=smoke", "env.id=quirks/RgbOnly-v0", "policy=ou", "resolution=32",
                                f"out_dir={tmp_path}"])
    assert s["episodes"] == 4


class StayPolicy:
    """A goal policy given by import string: the goal is the start (zero actions)."""

    def __init__(self, env, rng):
        self.shape = env.action_space.shape

    def reset(self, state):
        pass

    def __call__(self, state):
        return np.zeros(self.shape)


def test_auto_resetting_env_stops_at_termination():
    env = envs.make("quirks/AutoReset-v0", resolution=32, success="terminated", goal_option="target",
                    goal_dims=[0, 1])
    goal = protocol.make_goal(env, seed=4, goal_offset=5)
    out = protocol.run_episode(env, goal, reach(env, goal.state), budget=40)
    assert out["success"] and out["steps"] < 40  # ended at the terminating step, before the env moved on


def test_goal_policy_by_import_string():
    env = make(goal_policy="test_env_quirks:StayPolicy")
    _, info = env.reset(seed=2)
    goal = protocol.make_goal(env, seed=2, goal_offset=8)
    assert np.allclose(goal.state, info["state"])  # zero actions for 8 steps: the goal is the start
