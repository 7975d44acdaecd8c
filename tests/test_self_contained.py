"""A train-ac checkpoint plans on its own: no encoder file, no training dataset, same plans."""
import shutil

import torch
from helpers import run_json

from worldmodel.models.world_model import LatentWorldModel

PLAN = ["preset=smoke", "bootstrap=false", "gifs=0", "baselines=false", "energy.state_weight=1",
        "subgoals.enabled=true", "energy.probe_episodes=4", "energy.probe_stride=2", "energy.probe_min_r2=-10"]


def test_plan_without_encoder_file_or_dataset(tmp_path):
    ac = tmp_path / "ac"
    run_json("train-ac", ["preset=smoke", f"out_dir={ac}"])
    ckpt = ac / "checkpoint.pt"
    before = run_json("plan", PLAN + [f"checkpoint={ckpt}", f"out_dir={tmp_path / 'p1'}"])
    model = LatentWorldModel.load(ckpt)
    shutil.move(ac / "bootstrap", tmp_path / "elsewhere")  # the encoder checkpoint and the dataset are gone
    moved = LatentWorldModel.load(ckpt)  # the encoder comes from the checkpoint itself
    for a, b in zip(model.state_dict().values(), moved.state_dict().values()):
        assert torch.equal(a, b)
    after = run_json("plan", PLAN + [f"checkpoint={ckpt}", f"out_dir={tmp_path / 'p2'}"])
    assert after["per_episode"] == before["per_episode"]
    assert before["protocol"]["energy_probe"]["frames_from"].endswith("data")
    assert "planner_data" in after["protocol"]["energy_probe"]["frames_from"]
    assert after["protocol"]["energy_probe"]["r2"] == before["protocol"]["energy_probe"]["r2"]
