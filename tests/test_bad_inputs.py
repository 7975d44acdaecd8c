"""Every bad input gets one line naming the culprit, exit code 2, and no traceback.

One table of cases; each builds its bad input from a small healthy run (a smoke ``wm train-ac`` with its
bootstrap dataset and encoder), runs ``wm`` as a user would (``worldmodel.cli.main``, in this process for
speed; one case goes through a real subprocess), and checks the exit code, that stderr has no traceback, and
that the message names the file / field / value at fault.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_json

from worldmodel.cli import main


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A healthy smoke run: base/checkpoint.pt, base/bootstrap/{data, encoder/checkpoint.pt}."""
    out = tmp_path_factory.mktemp("bad_inputs") / "ac"
    run_json("train-ac", ["preset=smoke", f"out_dir={out}"])
    return out


def _data_copy(base: Path, tmp: Path) -> Path:
    dst = tmp / "data"
    shutil.copytree(base / "bootstrap" / "data", dst, ignore=shutil.ignore_patterns("latent_cache"))
    return dst


def _edit_npz(path: Path, **changes) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _train_ac(base: Path, tmp: Path, data: Path, *extra: str) -> list[str]:
    enc = base / "bootstrap" / "encoder" / "checkpoint.pt"
    return ["train-ac", "preset=smoke", "bootstrap=false", f"encoder_checkpoint={enc}", f"dataset={data}",
            f"out_dir={tmp / 'out'}", *extra]


def _plan(base: Path, tmp: Path, *extra: str) -> list[str]:
    return ["plan", "preset=smoke", "bootstrap=false", f"checkpoint={base / 'checkpoint.pt'}",
            f"out_dir={tmp / 'plan'}", "gifs=0", *extra]


def _videos(tmp: Path, files: dict[str, bytes]) -> Path:
    folder = tmp / "videos"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _pretrain(tmp: Path, path: Path, *extra: str) -> list[str]:
    return ["pretrain", "preset=smoke", f"data.paths=[{path}]", f"out_dir={tmp / 'pre'}", *extra]


# ---- the table: name -> (build(base, tmp) -> argv, culprit text expected in the message) -----------------
def c_missing_video_path(base, tmp):
    return _pretrain(tmp, tmp / "no_such_folder"), "no_such_folder"


def c_garbage_videos(base, tmp):
    return _pretrain(tmp, _videos(tmp, {"a.mp4": b"junk" * 100, "b.mp4": b"\x00" * 999})), "videos"


def c_zero_length_video(base, tmp):
    return _pretrain(tmp, _videos(tmp, {"empty.mp4": b""})), "videos"


def c_empty_csv(base, tmp):
    csv = tmp / "list.csv"
    csv.write_text("")
    return _pretrain(tmp, csv), "list.csv"


def c_csv_missing_files(base, tmp):
    csv = tmp / "list.csv"
    csv.write_text(f"{tmp / 'gone1.mp4'} 0\n{tmp / 'gone2.mp4'} 0\n")
    return _pretrain(tmp, csv), "list.csv"


def c_unknown_key(base, tmp):
    return ["collect", "preset=smoke", "no_such_key=1", f"out_dir={tmp}"], "no_such_key"


def c_wrong_type(base, tmp):
    return ["collect", "preset=smoke", "episodes=many", f"out_dir={tmp}"], "episodes"


def c_missing_checkpoint(base, tmp):
    return _plan(base, tmp, f"checkpoint={tmp / 'nope.pt'}"), "nope.pt"


def c_junk_checkpoint(base, tmp):
    (tmp / "junk.pt").write_bytes(b"not a checkpoint" * 50)
    return _plan(base, tmp, f"checkpoint={tmp / 'junk.pt'}"), "junk.pt"


def c_truncated_checkpoint(base, tmp):
    data = (base / "checkpoint.pt").read_bytes()
    (tmp / "half.pt").write_bytes(data[: len(data) // 2])
    return _plan(base, tmp, f"checkpoint={tmp / 'half.pt'}"), "half.pt"


def c_checkpoint_wrong_kind(base, tmp):
    enc = base / "bootstrap" / "encoder" / "checkpoint.pt"
    return _plan(base, tmp, f"checkpoint={enc}"), "kind"


def c_pickle_checkpoint(base, tmp):
    torch.save({"model": {}, "config": {}, "payload": object()}, tmp / "pickled.pt")
    return _plan(base, tmp, f"checkpoint={tmp / 'pickled.pt'}"), "pickled.pt"


def c_all_episodes_truncated(base, tmp):
    data = _data_copy(base, tmp)
    for npz in (data / "episodes").glob("*.npz"):
        npz.write_bytes(npz.read_bytes()[:100])
    return _train_ac(base, tmp, data), "ep_000000.npz"


def c_too_many_bad_episodes(base, tmp):
    data = _data_copy(base, tmp)
    for npz in sorted((data / "episodes").glob("*.npz"))[:2]:
        npz.write_bytes(npz.read_bytes()[:100])
    return _train_ac(base, tmp, data, "max_bad_fraction=0.25"), "max_bad_fraction"


def c_manifest_wrong_dims(base, tmp):
    data = _data_copy(base, tmp)
    m = json.loads((data / "manifest.json").read_text())
    m.update(action_dim=5, action_low=[-1.0] * 5, action_high=[1.0] * 5)
    (data / "manifest.json").write_text(json.dumps(m))
    return _train_ac(base, tmp, data), "action"


def c_manifest_not_json(base, tmp):
    data = _data_copy(base, tmp)
    (data / "manifest.json").write_text("{ torn")
    return _train_ac(base, tmp, data), "manifest.json"


def c_no_manifest(base, tmp):
    data = _data_copy(base, tmp)
    (data / "manifest.json").unlink()
    return _train_ac(base, tmp, data), "manifest.json"


def c_nan_actions(base, tmp):
    data = _data_copy(base, tmp)
    npz = data / "episodes" / "ep_000001.npz"
    with np.load(npz) as z:
        acts = z["actions"].copy()
    acts[3, 0] = np.nan
    _edit_npz(npz, actions=acts)
    return _train_ac(base, tmp, data), "episode 1"


def c_npz_missing_key(base, tmp):
    data = _data_copy(base, tmp)
    npz = data / "episodes" / "ep_000002.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files if k != "states"}
    with open(npz, "wb") as f:
        np.savez(f, **arrays)
    return _train_ac(base, tmp, data, "max_bad_fraction=0"), "states"


def c_unknown_env_collect(base, tmp):
    return ["collect", "preset=smoke", "env.id=NoSuchEnv-v9", f"out_dir={tmp}"], "NoSuchEnv-v9"


def c_unknown_env_plan(base, tmp):
    return _plan(base, tmp, "env.id=NoSuchEnv-v9"), "NoSuchEnv-v9"


def c_episodes_zero(base, tmp):
    return ["collect", "preset=smoke", "episodes=0", f"out_dir={tmp}"], "episodes"


def c_plan_episodes_zero(base, tmp):
    return _plan(base, tmp, "episodes=0"), "episodes"


def c_negative_budget(base, tmp):
    return _plan(base, tmp, "budget=-3"), "budget"


def c_unknown_precision(base, tmp):
    return _plan(base, tmp, "precision=half"), "precision=half: invalid value 'half', expected one of [fp32, bf16"


def c_plan_other_env(base, tmp):
    return _plan(base, tmp, "env=armreach"), "ArmReach"


def c_plan_other_state_dims(base, tmp):
    return _plan(base, tmp, "env=armreach", "allow_other_env=true"), "state dim"


def c_plan_other_resolution(base, tmp):
    return _plan(base, tmp, "resolution=48"), "resolution"


def c_resume_other_config(base, tmp):
    argv = _train_ac(base, tmp, base / "bootstrap" / "data")
    assert main(argv) == 0
    return argv + ["train.resume=true", "train.steps=20", "model.depth=2"], "model.depth"


def c_nan_loss(base, tmp):
    return _train_ac(base, tmp, base / "bootstrap" / "data", "train.optim.lr=1e30",
                     "train.optim.grad_clip=0"), "loss"


def c_predictor_heads(base, tmp):
    return _train_ac(base, tmp, base / "bootstrap" / "data", "model.num_heads=3"), "model.num_heads"


def c_unknown_encoder_kind(base, tmp):
    return _train_ac(base, tmp, base / "bootstrap" / "data", "encoder=dino:v2"), "encoder='dino:v2'"


def c_unknown_timm_model(base, tmp):
    (tmp / "w.pth").write_bytes(b"")
    return _train_ac(base, tmp, base / "bootstrap" / "data", "encoder=timm:no_such_net",
                     f"encoder_weights={tmp / 'w.pth'}"), "no_such_net"


def c_offline_goal_too_far(base, tmp):
    return ["eval-offline", "preset=smoke", "bootstrap=false", f"checkpoint={base / 'checkpoint.pt'}",
            f"out_dir={tmp}", "goal_steps=999"], "goal_steps=999"


def c_data_not_a_dataset(base, tmp):
    (tmp / "notes.txt").write_text("hello")
    return ["data", "inspect", f"dataset={tmp}", f"out_dir={tmp / 'o'}"], "not a known layout"


def c_drift_on_other_dataset(base, tmp):
    other = tmp / "arm"
    run_json("collect", ["preset=smoke", "env=armreach", "resolution=32", "episodes=2", f"out_dir={other}"])
    return ["drift", "preset=smoke", "bootstrap=false", f"checkpoint={base / 'checkpoint.pt'}", f"dataset={other}",
            f"out_dir={tmp / 'd'}"], "proprio_dims"


def c_negative_steps(base, tmp):
    return _train_ac(base, tmp, base / "bootstrap" / "data", "train.steps=-1"), "train.steps"


CASES = {name[2:]: fn for name, fn in dict(globals()).items() if name.startswith("c_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_line(case, base, tmp_path, capsys):
    argv, culprit = CASES[case](base, tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"{case}: exit {code}\n{err}"
    assert "Traceback" not in err, err
    last = [ln for ln in err.splitlines() if ln.startswith("wm ")][-1]
    assert culprit.lower() in last.lower(), f"{case}: {culprit!r} not in {last!r}"


def test_table_has_twenty_cases():
    assert len(CASES) >= 20


def test_subprocess_exit_code_and_no_traceback(base, tmp_path):
    """The same contract through a real process (what a shell user sees)."""
    argv, culprit = c_unknown_env_collect(base, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "worldmodel.cli", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and culprit in proc.stderr, proc.stderr
