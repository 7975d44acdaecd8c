"""The five worldmodel MuJoCo tasks: gymnasium compliance, determinism, success criteria, solvability."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import worldmodel.envs as envs  # noqa: E402
from worldmodel.envs import protocol  # noqa: E402
from worldmodel.envs.policies import PointController, RandomPolicy  # noqa: E402

TASKS = list(envs.TASKS)
# state components the success criterion reads (position of point / fingertip / block)
CRITERION_DIMS = {"PointReach": [0, 1], "TwoRoom": [0, 1], "ArmReach": [4, 5], "PushBlock": [2, 3],
                  "PushT": [2, 3, 4, 5]}


def short(env_id: str) -> str:
    return env_id.split("/")[1].split("-")[0]


@pytest.mark.parametrize("env_id", TASKS)
def test_check_env_and_info(env_id):
    check_env(envs.make(env_id).unwrapped)  # closes that env
    env = envs.make(env_id, resolution=48)
    obs, info = env.reset(seed=0)
    s = info["state"]
    assert s.dtype == np.float32 and s.shape == env.observation_space.shape and np.allclose(obs, s)
    assert isinstance(info["success"], bool)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (48, 48, 3)
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert np.isfinite(reward) and not terminated and not truncated
    assert env.spec.max_episode_steps >= protocol.defaults(env)["budget"]
    env.close()


@pytest.mark.parametrize("env_id", TASKS)
def test_same_seed_same_frames(env_id):
    actions = np.random.default_rng(0).uniform(-1, 1, (12, 2)).astype(np.float32)

    def roll(seed):
        env = envs.make(env_id, resolution=32)
        _, info = env.reset(seed=seed)
        frames, states = [env.render()], [info["state"]]
        for a in actions:
            _, _, _, _, info = env.step(a)
            frames.append(env.render())
            states.append(info["state"])
        env.close()
        return np.stack(frames), np.stack(states)

    f1, s1 = roll(3)
    f2, s2 = roll(3)
    f3, _ = roll(4)
    assert np.array_equal(f1, f2) and np.array_equal(s1, s2)
    assert not np.array_equal(f1[0], f3[0])  # another seed, another start
    assert not np.array_equal(f1[0], f1[-1])  # the actions move something visible


@pytest.mark.parametrize("env_id", TASKS)
def test_success_criterion(env_id):
    env = envs.make(env_id, render=False)
    _, info = env.reset(seed=1)
    s = info["state"]
    tol = protocol.defaults(env)["success_tolerance"]
    dims = CRITERION_DIMS[short(env_id)]
    assert protocol.defaults(env)["criterion_dims"] == dims  # what the planner's criterion_weight relies on
    assert protocol.is_success(env, s, s) and protocol.state_distance(env, s, s) == 0.0
    near, far, other = s.copy(), s.copy(), s.copy()
    near[dims[0]] += 0.5 * tol
    far[dims[0]] += 2.0 * tol
    assert protocol.is_success(env, s, near) and not protocol.is_success(env, s, far)
    free = [i for i in range(len(s)) if i not in dims and not (short(env_id) == "ArmReach" and i < 2)]
    other[free] += 0.5  # velocities, pusher position: not part of the criterion
    assert protocol.is_success(env, s, other)
    # the env's own success flag follows set_goal
    protocol.task(env).set_goal(far)
    _, _, _, _, info = env.step(np.zeros(2, np.float32))
    assert info["success"] is False


@pytest.mark.parametrize("env_id", TASKS)
def test_goal_protocol_deterministic_and_solvable(env_id):
    env = envs.make(env_id, resolution=32)
    wins, rand_wins = 0, 0
    for seed in range(3):
        g1, g2 = protocol.make_goal(env, seed), protocol.make_goal(env, seed)
        assert np.array_equal(g1.frame, g2.frame) and np.array_equal(g1.state, g2.state)
        _, info = protocol.start(env, g1)
        assert not info["success"], "goal already met at the start"
        res = protocol.run_episode(env, g1, envs.scripted_controller(env, g1.state))
        wins += res["success"]
        assert res["steps"] <= protocol.defaults(env)["budget"]
        rand = RandomPolicy(env, np.random.default_rng(seed))
        rand_wins += protocol.run_episode(env, g1, rand)["success"]
    assert wins == 3 and rand_wins <= 1
    settings = protocol.settings(env)
    assert settings["env_id"] == env_id and {"goal_offset", "budget", "criterion"} <= set(settings)


def test_tworoom_needs_the_door():
    env = envs.make("worldmodel/TwoRoom-v0", render=False)
    greedy_fail, crossings = 0, 0
    for seed in range(8):
        goal = protocol.make_goal(env, seed)
        _, info = env.reset(seed=seed)
        crossings += np.sign(info["state"][0]) != np.sign(goal.state[0])
        ctrl, target = PointController(env), goal.state[:2].astype(np.float64)
        res = protocol.run_episode(env, goal, lambda s: ctrl.act(np.asarray(s, np.float64), target))
        greedy_fail += not res["success"]
    assert crossings >= 6  # goals are usually in the other room
    assert greedy_fail >= 3  # a straight line usually misses the door


def _scripted_roll(env_id: str, steps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The scripted collection policy for ``steps`` from seed 0: (start state, end state, steps touching)."""
    env = envs.make(env_id, render=False)
    _, info = env.reset(seed=0)
    policy = envs.make_policy("scripted", env, 0)
    s = start = info["state"]
    policy.reset(s)
    touched = 0
    for _ in range(steps):
        _, _, _, _, info = env.step(policy(s))
        s = info["state"]
        touched += env.unwrapped.touching()
    return start, s, touched


def test_pushblock_scripted_policy_touches_block():
    start, end, touched = _scripted_roll("worldmodel/PushBlock-v0", 60)
    assert touched > 0 and np.linalg.norm(end[2:4] - start[2:4]) > 0.1


def _posed(state: np.ndarray, dx: float, turn: float) -> np.ndarray:
    """A PushT state with the block moved dx along x and turned by ``turn`` rad."""
    out = state.copy()
    angle = np.arctan2(state[5], state[4]) + turn
    out[2] += dx
    out[4:6] = np.cos(angle), np.sin(angle)
    return out


def test_pusht_success_needs_position_and_angle():
    """Both tolerances (0.12 and pi/9) must hold; the angle wraps; the pusher's own position is free."""
    env = envs.make("worldmodel/PushT-v0", render=False)
    _, info = env.reset(seed=2)
    s = info["state"]
    assert protocol.is_success(env, s, _posed(s, 0.08, 0.25))
    assert not protocol.is_success(env, s, _posed(s, 0.0, 0.5))  # in place, turned too far
    assert not protocol.is_success(env, s, _posed(s, 0.15, 0.0))  # right angle, too far away
    assert protocol.is_success(env, _posed(s, 0.0, np.pi - 0.1), _posed(s, 0.0, -np.pi + 0.1))  # 0.2 rad, wrapped
    assert protocol.state_distance(env, s, _posed(s, 0.0, np.pi / 9)) == pytest.approx(0.12, abs=1e-5)
    assert "AND" in protocol.defaults(env)["criterion"]


def test_pusht_scripted_policy_moves_and_turns_the_block():
    start, end, touched = _scripted_roll("worldmodel/PushT-v0", 80)
    moved = np.linalg.norm(end[2:4] - start[2:4])
    turned = abs(np.angle(complex(end[4], end[5]) / complex(start[4], start[5])))
    assert touched > 0 and moved > 0.1 and turned > 0.2


VARIED = {"floor_rgb": [0.3, 0.5, 0.8], "floor_jitter": 0.1, "light": 0.7, "light_jitter": 0.2, "distractors": 3,
          "frame_noise": 8.0, "body_jitter": 0.3, "camera_jitter": 0.08}
ALONE = [{"floor_rgb": [0.3, 0.5, 0.8]}, {"light": 0.6}, {"distractors": 2}, {"frame_noise": 5.0},
         {"body_jitter": 0.4}, {"camera_jitter": 0.1}]


def _rollout(env, seed: int, actions: np.ndarray):
    _, info = env.reset(seed=seed)
    states, success, frames = [info["state"]], [info["success"]], [env.render()]
    for a in actions:
        _, _, _, _, info = env.step(a)
        states.append(info["state"]), success.append(info["success"]), frames.append(env.render())
    return np.stack(states), success, np.stack(frames)


@pytest.mark.parametrize("env_id", list(envs.TASKS))
def test_variation_changes_the_frames_never_the_task(env_id):
    """Floor colour, lighting, moving distractors and frame noise: the same seed and actions give bit-identical states
    and success with and without them (the distractors are in no state), different frames, and the same varied frames
    again on a rerun; another seed draws another scene."""
    actions = np.random.default_rng(0).uniform(-1, 1, (15, envs.make(env_id, render=False).action_space.shape[0]))
    s0, ok0, f0 = _rollout(envs.make(env_id), 3, actions)
    s1, ok1, f1 = _rollout(envs.make(env_id, variation=VARIED), 3, actions)
    _, _, f2 = _rollout(envs.make(env_id, variation=VARIED), 3, actions)
    _, _, f3 = _rollout(envs.make(env_id, variation=VARIED), 4, actions)
    assert np.array_equal(s0, s1) and ok0 == ok1
    assert np.abs(f0.astype(int) - f1).mean() > 20 and np.array_equal(f1, f2) and not np.array_equal(f1[0], f3[0])
    moving = envs.make(env_id, variation={"distractors": 2, "distractor_speed": 0.1})
    _, _, fm = _rollout(moving, 3, np.zeros_like(actions))
    _, _, fz = _rollout(envs.make(env_id), 3, np.zeros_like(actions))
    assert (np.abs(fm[1:].astype(int) - fm[:-1]).sum() > np.abs(fz[1:].astype(int) - fz[:-1]).sum() + 1000)


def test_variation_settings_are_checked_in_one_line():
    with pytest.raises(ValueError, match=r"env.kwargs.variation.floor_color: unknown"):
        envs.make("worldmodel/PointReach-v0", variation={"floor_color": [1, 0, 0]})
    with pytest.raises(ValueError, match=r"env.kwargs.variation.floor_rgb=\[2.0, 0.0, 0.0\]"):
        envs.make("worldmodel/PointReach-v0", variation={"floor_rgb": [2, 0, 0]})


@pytest.mark.parametrize("env_id", list(envs.TASKS))
def test_each_factor_alone_changes_the_frames_never_the_state(env_id):
    actions = np.full((4, 2), 0.5, np.float32)
    s0, ok0, f0 = _rollout(envs.make(env_id, resolution=32), 5, actions)
    for factor in ALONE:
        s1, ok1, f1 = _rollout(envs.make(env_id, resolution=32, variation=factor), 5, actions)
        assert np.array_equal(s0, s1) and ok0 == ok1, factor
        assert np.abs(f1.astype(int) - f0).mean() > 0.05, factor
