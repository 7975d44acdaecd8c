"""Third-party envs under both goal protocols: a goal handed through reset options that shows in the observation,
goals that zero actions already meet, and an agent that OU noise drives out of the frame (policy=reach)."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import run_json  # noqa: E402
from test_env_quirks import QuirkEnv  # noqa: E402

import worldmodel.envs as envs  # noqa: E402
from worldmodel.envs import protocol  # noqa: E402
from worldmodel.planning.goals import make_goal_episodes, select_dataset_starts, zero_reaches  # noqa: E402


class SeenTargetEnv(QuirkEnv):
    """The observation is [agent x, y, target x, y]: the env's own random target, or the one handed through
    ``reset(options={"target": ...})``; ``terminated`` when the agent reaches it."""

    def __init__(self, render_mode=None):
        super().__init__(render_mode)
        self.observation_space = gym.spaces.Box(-2, 2, (4,), np.float64)

    def _obs(self):
        return np.concatenate([self.pos, self.target])


class RelativePushEnv(gym.Env):
    """An agent whose action is a target relative to itself (up to 0.6 away) and a block it pushes; the frame shows
    [-1, 1]^2, the agent may wander to +-3 (out of view)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.observation_space = gym.spaces.Box(np.array([-1.0] * 4), np.array([1.0] * 4), dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.agent, self.block = self.np_random.uniform(-0.6, 0.6, 2), self.np_random.uniform(-0.4, 0.4, 2)
        return np.concatenate([self.agent, self.block]), {}

    def step(self, action):
        self.agent = np.clip(self.agent + 0.5 * 0.6 * np.asarray(action, np.float64), -3, 3)
        gap = self.block - self.agent
        if np.linalg.norm(gap) < 0.2:  # pushed: the block slides out of the agent's way
            self.block = np.clip(self.agent + gap / max(np.linalg.norm(gap), 1e-6) * 0.2, -0.9, 0.9)
        return np.concatenate([self.agent, self.block]), 0.0, False, False, {}

    def render(self):
        frame = np.zeros((32, 32, 3), np.uint8)
        for p, colour in ((self.agent, 255), (self.block, 120)):
            if np.all(np.abs(p) < 1):
                y, x = ((p + 1) / 2 * 31).astype(int)
                frame[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3] = colour
        return frame


class BlankEnv(QuirkEnv):
    """Renders the same frame whatever happens."""

    def render_frame(self):
        return np.zeros((48, 40, 3), np.uint8)


gym.register("foreign/SeenTarget-v0", entry_point=SeenTargetEnv, max_episode_steps=None)
gym.register("foreign/RelativePush-v0", entry_point=RelativePushEnv, max_episode_steps=None)
gym.register("foreign/Blank-v0", entry_point=BlankEnv, max_episode_steps=None)
SEEN = ["env.id=foreign/SeenTarget-v0", "+env.kwargs.proprio_dims=[0,1]", "+env.kwargs.success=terminated",
        "+env.kwargs.goal_option=target", "+env.kwargs.goal_dims=[0,1]", "+env.kwargs.ignore_terminated=true"]
PUSH = {"agent_dims": [0, 1], "object_dims": [[2, 3]], "action_scale": 0.3, "proprio_dims": [0, 1]}


def test_distances_are_over_the_dims_success_is_about():
    """Success handed to the env through goal_dims: final distances ignore the env's own target dims."""
    env = envs.make("foreign/SeenTarget-v0", resolution=32, success="terminated", goal_option="target",
                    goal_dims=[0, 1])
    s, g = np.array([0.0, 0.0, 1.5, 1.5]), np.array([0.3, 0.4, -1.5, -1.5])
    assert protocol.state_distance(env, s, g) == pytest.approx(0.5)
    assert protocol.defaults(env)["criterion_dims"] == [0, 1]


def test_dataset_protocol_replays_as_recorded_when_the_goal_shows_in_the_observation(tmp_path):
    """Recorded without a goal option, planned with one (which changes the observed target dims): the replay check
    passes, and wm plan runs from the CLI with settings only."""
    data = tmp_path / "data"
    run_json("collect", ["preset=smoke", "policy=ou", "resolution=32", "episodes=6", "steps=30", f"out_dir={data}",
                         *SEEN])
    starts = select_dataset_starts("foreign/SeenTarget-v0", {"success": "terminated", "goal_option": "target",
                                                             "goal_dims": [0, 1], "ignore_terminated": True},
                                   32, data, list(range(6)), episodes=4, seed=0, goal_offset=6, budget=10)
    assert len(starts.rows) == 4
    ac = run_json("train-ac", ["preset=smoke", f"dataset={data}", f"out_dir={tmp_path / 'ac'}"])
    plan = run_json("plan", ["preset=smoke", "bootstrap=false", f"checkpoint={ac['checkpoint']}", "protocol=dataset",
                             "episodes=3", "goal_offset=6", "budget=10", "gifs=0", f"out_dir={tmp_path / 'plan'}"])
    assert len(plan["protocol"]["starts"]) == 3 and plan["protocol"]["criterion_dims"] == [0, 1]
    assert plan["privileged_inputs"] == []


def test_goals_zero_actions_meet_are_replaced_and_all_trivial_goals_refused():
    kw = {"success_threshold": 0.3}
    eps = make_goal_episodes("quirks/Quirk-v0", kw, 32, episodes=6, seed=0, goal_offset=2, budget=4,
                             reject_trivial=True)
    assert eps.settings["trivial_goals_replaced"] > 0 and len(set(eps.seeds)) == 6
    assert not any(zero_reaches(eps.envs[e], protocol.Goal(None, eps.goal_states[e], eps.seeds[e]), 4)
                   for e in range(6))
    kept = make_goal_episodes("quirks/Quirk-v0", kw, 32, episodes=6, seed=0, goal_offset=2, budget=4)
    assert kept.seeds == list(range(6)) and kept.settings["trivial_goals_replaced"] == 0
    with pytest.raises(ValueError, match="zero actions reach 19 of 19 goals"):
        make_goal_episodes("quirks/Quirk-v0", {"success_threshold": 10.0}, 32, episodes=6, seed=0, goal_offset=2,
                           budget=4, reject_trivial=True)


def test_reach_policy_keeps_the_agent_in_view_and_moves_the_block(tmp_path):
    """OU noise on a relative-target action leaves the frame and the dataset check says so; policy=reach stays in
    the bounds (the observation space's) and pushes the block."""
    env = ["env.id=foreign/RelativePush-v0", f"+env.kwargs={PUSH}".replace("'", "")]
    ou = run_json("collect", ["preset=smoke", "policy=ou", "resolution=32", "episodes=8", "steps=60",
                              f"out_dir={tmp_path / 'ou'}", *env])
    reach = run_json("collect", ["preset=smoke", "policy=reach", "resolution=32", "episodes=8", "steps=60",
                                 f"out_dir={tmp_path / 'reach'}", *env])
    assert ou["coverage"]["agent_outside_bounds"] > 0.3 and any("outside" in w for w in ou["warnings"])
    assert reach["coverage"]["agent_outside_bounds"] < 0.05 and reach["coverage"]["objects_moved"] >= 0.5
    assert reach["warnings"] == []
    goal_env = envs.make("foreign/RelativePush-v0", resolution=32, **PUSH)  # the goal policy reaches or pushes too
    moved = [np.linalg.norm(protocol.make_goal(goal_env, s, 40).state[2:] - goal_env.reset(seed=s)[1]["state"][2:])
             for s in range(6)]
    assert max(moved) > 0.1


def test_frames_that_never_change_are_reported(tmp_path):
    s = run_json("collect", ["preset=smoke", "env.id=foreign/Blank-v0", "policy=ou", "resolution=32",
                             f"out_dir={tmp_path}"])
    assert s["coverage"]["static_frame_share"] == 1.0 and any("does not change" in w for w in s["warnings"])


def test_reach_needs_the_agent_dims_and_bad_bounds_fail_before_collecting(tmp_path):
    with pytest.raises(ValueError, match="agent_dims"):
        run_json("collect", ["preset=smoke", "env.id=quirks/Quirk-v0", "policy=reach", f"out_dir={tmp_path}"])
    with pytest.raises(ValueError, match="agent_bounds"):
        run_json("collect", ["preset=smoke", "env.id=quirks/Quirk-v0", "policy=ou", "+env.kwargs.agent_dims=[0,1]",
                             "+env.kwargs.agent_bounds=[[0],[1]]", f"out_dir={tmp_path / 'b'}"])
    assert not list((tmp_path / "b").glob("episodes/*"))
