"""`wm collect` end to end: smoke preset, appending, workers, coverage, foreign envs, `wm bench collect`."""
import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import run_json  # noqa: E402

from worldmodel.data.rollouts import RolloutDataset, load_episode, read_manifest  # noqa: E402


def test_smoke_collect_then_append(tmp_path):
    summary = run_json("collect", ["preset=smoke", f"out_dir={tmp_path}"])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    for key in ("episodes", "frames", "dataset", "frames_per_s", "coverage"):
        assert key in on_disk, key
    m = read_manifest(tmp_path)
    assert on_disk["dataset"] == str(tmp_path) and summary["episodes"] == m.episodes == 4
    assert m.frames == summary["frames"] == 4 * (m.episode_list[0].steps + 1)
    assert m.env_id == "worldmodel/PointReach-v0" and m.frame_skip == 1 and m.resolution == [64, 64]
    assert m.protocol["budget"] > 0 and summary["frames_per_s"] > 0
    ep = load_episode(tmp_path, 0)
    assert ep["frames"].shape == (25, 64, 64, 3) and ep["actions"].shape == (24, 2) and ep["states"].shape == (25, 4)
    assert np.abs(ep["actions"]).max() <= 1.0

    again = run_json("collect", ["preset=smoke", f"out_dir={tmp_path}"])  # complete: nothing to do
    assert again["new_episodes"] == 0 and again["episodes"] == 4
    more = run_json("collect", ["preset=smoke", f"out_dir={tmp_path}", "append=true", "episodes=2", "seed=1"])
    m = read_manifest(tmp_path)
    assert more["new_episodes"] == 2 and m.episodes == 6
    assert m.episode_ids == list(range(6))
    assert len(RolloutDataset(tmp_path, num_frames=4, frame_skip=2)) == 6 * (24 - 6 + 1)
    with pytest.raises(ValueError, match="env_id"):
        run_json("collect", ["preset=smoke", f"out_dir={tmp_path}", "env=armreach"])


def test_workers_give_the_same_data(tmp_path):
    args = ["preset=smoke", "env=armreach", "episodes=3", "steps=10"]
    one = run_json("collect", [*args, f"out_dir={tmp_path / 'one'}", "workers=1"])
    two = run_json("collect", [*args, f"out_dir={tmp_path / 'two'}", "workers=2"])
    assert one["episodes"] == two["episodes"] == 3
    for i in range(3):
        a, b = load_episode(tmp_path / "one", i), load_episode(tmp_path / "two", i)
        assert np.array_equal(a["frames"], b["frames"]) and np.array_equal(a["actions"], b["actions"])


def test_scripted_coverage_door_and_block(tmp_path):
    room = run_json("collect", ["preset=smoke", "env=tworoom", "steps=60", f"out_dir={tmp_path / 'r'}"])
    assert room["coverage"]["crossed_door"] >= 0.5
    block = run_json("collect", ["preset=smoke", "env=pushblock", "steps=60", f"out_dir={tmp_path / 'b'}"])
    assert block["coverage"]["touched_block"] >= 0.75 and block["coverage"]["block_moved"] >= 0.5
    rnd = run_json("collect", ["preset=smoke", "env=pushblock", "steps=60", "policy=random",
                                  f"out_dir={tmp_path / 'rb'}"])
    assert rnd["coverage"]["block_displacement_mean"] < block["coverage"]["block_displacement_mean"]
    tee = run_json("collect", ["preset=smoke", "env=pusht", "steps=60", f"out_dir={tmp_path / 't'}"])
    assert tee["coverage"]["touched_block"] >= 0.75 and tee["coverage"]["block_moved"] >= 0.5


def test_foreign_gymnasium_env(tmp_path):
    summary = run_json("collect", ["preset=smoke", "env=reacher", "policy=ou", "episodes=2", "steps=6",
                                      "resolution=32", f"out_dir={tmp_path}"])
    m = read_manifest(tmp_path)
    assert summary["episodes"] == 2 and m.env_id == "Reacher-v5" and m.state_dim == 10
    assert m.env_kwargs["state_dims"] == [0, 1, 2, 3]
    assert load_episode(tmp_path, 1)["frames"].shape == (7, 32, 32, 3)
    with pytest.raises(ValueError, match="scripted"):
        run_json("collect", ["preset=smoke", "env=reacher", f"out_dir={tmp_path / 'x'}"])


def test_bench_collect_ratio(tmp_path):
    summary = run_json("bench", ["target=collect", "command_preset=smoke", "workers=1", "repeats=1",
                                    "warmup=0", f"out_dir={tmp_path}"])
    assert summary["ratio"] > 0 and summary["bare_frames_per_s"] > summary["collect_frames_per_s"] > 0
    assert not list(tmp_path.glob("bench_collect_*"))  # the temporary dataset is removed


def test_collection_workers_take_the_threads_setting():
    """A pooled worker sets `threads` for OpenMP, llvmpipe and torch (the parent here asks for 2), whether torch was
    imported before the worker started (an env package that renders with it) or after."""
    import subprocess
    import sys

    code = ("import os, sys\n{pre}from worldmodel.data.collect import _init_worker\n"
            "_init_worker('worldmodel/PointReach-v0', {{}}, 32, 5, True, {threads})\nimport torch\n"
            "print(os.environ['OMP_NUM_THREADS'], os.environ['LP_NUM_THREADS'], torch.get_num_threads())")
    for pre, threads in (("", 1), ("import torch\n", 3)):
        out = subprocess.run([sys.executable, "-c", code.format(pre=pre, threads=threads)], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2", "MUJOCO_GL": "egl"})
        assert out.stdout.split() == [str(threads)] * 3, (pre, out.stdout, out.stderr[-500:])
