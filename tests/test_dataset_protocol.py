"""protocol=dataset: start and goal rows of recorded episodes, restored by seed + replay, as published tables use."""
import numpy as np
import pytest
from helpers import run_json

from worldmodel.data.episodes import episode_paths, load_episode
from worldmodel.planning.goals import make_dataset_goal_episodes, select_dataset_starts


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsp") / "data"
    run_json("collect", ["preset=smoke", "resolution=32", "episodes=4", f"out_dir={root}"])
    return root


def test_starts_replay_to_the_recorded_state_and_goals_are_recorded_frames(data):
    starts = select_dataset_starts("worldmodel/PointReach-v0", {}, 32, data, [0, 1, 2, 3], episodes=6, seed=5,
                                   goal_offset=6, budget=10)
    eps = make_dataset_goal_episodes("worldmodel/PointReach-v0", {}, 32, starts)
    assert eps.goal_offset == 6 and eps.budget == 10 and eps.settings["protocol"] == "dataset"
    for e, (i, t) in enumerate(eps.settings["starts"]):
        rec = load_episode(data, i)
        assert np.array_equal(eps.goal_frames[e], rec["frames"][t + 6])  # the recorded frame, not a new rollout
        assert np.allclose(eps.start(e)["state"], rec["states"][t], atol=1e-4)
        assert np.array_equal(eps.envs[e].render(), rec["frames"][t])  # the replayed start looks like the record
    again = select_dataset_starts("worldmodel/PointReach-v0", {}, 32, data, [0, 1, 2, 3], 6, 5, 6, 10)
    assert again.rows == starts.rows  # seeded


def test_a_start_the_env_does_not_reproduce_is_refused(data, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    npz = episode_paths(bad, 2)[1]
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["actions"] = -arrays["actions"]  # the recorded states no longer follow from the recorded actions
    with open(npz, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="replaying episode 2 .* does not reproduce"):
        select_dataset_starts("worldmodel/PointReach-v0", {}, 32, bad, [2], episodes=3, seed=0, goal_offset=6)


def test_plan_with_the_dataset_protocol(data, tmp_path):
    ac = run_json("train-ac", ["preset=smoke", f"dataset={data}", f"out_dir={tmp_path / 'ac'}"])
    s = run_json("plan", ["preset=smoke", "bootstrap=false", f"checkpoint={ac['checkpoint']}", "protocol=dataset",
                             "episodes=3", "goal_offset=6", "budget=10", "gifs=0", f"out_dir={tmp_path / 'plan'}"])
    assert s["protocol"]["protocol"] == "dataset" and len(s["protocol"]["starts"]) == 3
    assert "success_rate_random" in s and "success_rate_zero" in s


def test_no_evaluation_episode_reaches_the_planner(data, tmp_path):
    """protocol=dataset judges planning on the model's held-out episodes: the frames the planner's probe and roadmap
    are fit on come from the other episodes only."""
    ac = run_json("train-ac", ["preset=smoke", f"dataset={data}", "val_fraction=0.5", f"out_dir={tmp_path / 'ac'}"])
    s = run_json("plan", ["preset=smoke", "bootstrap=false", f"checkpoint={ac['checkpoint']}", "protocol=dataset",
                             "episodes=3", "goal_offset=6", "budget=10", "gifs=0", "energy.state_weight=1",
                             "subgoals.enabled=true", "energy.probe_episodes=40", f"out_dir={tmp_path / 'plan'}"])
    judged = {i for i, _ in s["protocol"]["starts"]}
    fit_on = set(s["protocol"]["energy_probe"]["episodes"])
    assert judged and fit_on and not judged & fit_on
    assert fit_on | judged <= {0, 1, 2, 3}
