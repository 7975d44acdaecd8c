"""Run folders: one writer at a time (a lock naming its owner, taken over from a dead one), an out_dir that is a
file refused in one line, and a full disk during a checkpoint or manifest write: one line, exit 2, the previous
file intact. The disk fills for real: the writer's temp file is a link to /dev/full, whose writes fail with
ENOSPC."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from worldmodel.cli import main
from worldmodel.utils.runlock import LOCK_NAME, run_lock

COLLECT = ["collect", "preset=smoke", "episodes=2", "workers=1", "resolution=32", "progress=false"]


def _holder(folder: Path) -> subprocess.Popen:
    """Another process holding the run folder's lock until killed."""
    code = ("import sys, time\nfrom worldmodel.utils.runlock import run_lock\n"
            f"with run_lock({str(folder)!r}, 'train-ac'):\n    print('held', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    return proc


def test_a_second_run_on_a_held_folder_stops_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        assert main([*COLLECT, f"out_dir={out}"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {holder.pid}" in err and "another run writes here" in err
        assert not (out / "manifest.json").exists()  # refused before writing anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / LOCK_NAME).is_file()  # the dead owner's lock is left behind ...
    assert main([*COLLECT, f"out_dir={out}"]) == 0  # ... and taken over
    assert not (out / LOCK_NAME).exists()


def test_a_dataset_folder_is_locked_too(tmp_path, capsys):
    data = tmp_path / "data"
    holder = _holder(data)
    try:
        assert main([*COLLECT, f"dataset={data}", f"out_dir={tmp_path / 'out'}"]) == 2
        assert "another run writes here" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_locks_are_reentrant_within_a_process(tmp_path):
    with run_lock(tmp_path, "pipeline"), run_lock(tmp_path, "pipeline"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_out_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    for out in (f, f / "sub"):
        assert main([*COLLECT, f"out_dir={out}"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(f) in err and "is a file" in err
    assert f.read_text() == "keep me"


def _fill_disk_for(target: Path) -> Path:
    """Make this process's next atomic write of ``target`` hit a full disk."""
    tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
    os.symlink("/dev/full", tmp)
    return tmp


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", "preset=smoke", "probe.enabled=false", f"data.synthetic_dir={tmp_path / 'syn'}",
            f"out_dir={out}", "train.resume=true"]
    assert main([*args, "train.steps=4"]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    link = _fill_disk_for(out / "checkpoint.pt")
    assert main([*args, "train.steps=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left" in err and "checkpoint.pt" in err
    assert (out / "checkpoint.pt").read_bytes() == before  # intact ...
    assert not link.is_symlink()  # ... and the failed temp file is gone
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 4
    assert main([*args, "train.steps=8"]) == 0  # space back: the same command goes on from step 4
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 8


def test_full_disk_during_a_manifest_write_keeps_the_dataset(tmp_path, capsys):
    out = tmp_path / "data"
    assert main([*COLLECT, f"out_dir={out}"]) == 0
    before = (out / "manifest.json").read_text()
    _fill_disk_for(out / "manifest.json")
    assert main([*COLLECT[:2], "episodes=3", *COLLECT[3:], f"out_dir={out}"]) == 2
    assert "no space left" in capsys.readouterr().err
    assert (out / "manifest.json").read_text() == before
    assert main([*COLLECT[:2], "episodes=3", *COLLECT[3:], f"out_dir={out}"]) == 0
    assert json.loads((out / "manifest.json").read_text())["episodes"] == 3
