"""SIGTERM/SIGUSR1 stop a run at its next safe point: the step in flight is finished and kept, the CLI exits with
75 (requeue), and rerunning the same command resumes to what an uninterrupted run writes.

The signal is sent from inside the run (at a chosen step, episode or phase) to this very process, so the
handler, the safe points and the CLI's exit code are the real ones; ``scripts/kill_harness.py --signal TERM``
sends it from outside at random moments."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_json

from worldmodel.cli import main
from worldmodel.train.core import Trainer
from worldmodel.utils import preempt


def _pretrain(out: Path, syn: Path, *extra: str) -> list[str]:
    return ["pretrain", "preset=smoke", "train.steps=8", "train.ckpt_every=0", "train.log_every=1",
            "probe.enabled=false", f"data.synthetic_dir={syn}", f"out_dir={out}", *extra]


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_sigterm_mid_training_keeps_the_step_in_flight_and_resumes_equal(tmp_path, monkeypatch):
    syn = tmp_path / "syn"
    assert main(_pretrain(tmp_path / "ref", syn)) == 0
    log = Trainer.log

    def log_then_signal(self, step, metrics, force=False):  # the signal lands while step 3 is in flight
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return log(self, step, metrics, force)

    monkeypatch.setattr(Trainer, "log", log_then_signal)
    out = tmp_path / "run"
    assert main(_pretrain(out, syn)) == preempt.REQUEUE_EXIT
    kept = _weights(out / "checkpoint.pt")
    assert kept["step"] == 4  # steps 0..3 done: nothing logged was lost, although ckpt_every=0
    assert json.loads((out / preempt.MARKER).read_text())["signal"] == "SIGTERM"
    assert not (out / "summary.json").exists()
    monkeypatch.setattr(Trainer, "log", log)
    assert main(_pretrain(out, syn)) == 0  # the same command, no train.resume=true: it resumes
    ref, got = _weights(tmp_path / "ref" / "checkpoint.pt"), _weights(out / "checkpoint.pt")
    assert got["step"] == 8 and all(torch.equal(ref["model"][k], got["model"][k]) for k in ref["model"])
    assert json.loads((out / "summary.json").read_text())["start_step"] == 4
    assert not (out / preempt.MARKER).exists() and not (out / ".wm.lock").exists()


def test_a_resumed_preempted_run_refuses_other_settings(tmp_path, monkeypatch):
    syn = tmp_path / "syn"
    monkeypatch.setattr(Trainer, "log", lambda self, step, m, force=False: os.kill(os.getpid(), signal.SIGUSR1))
    assert main(_pretrain(tmp_path / "run", syn)) == preempt.REQUEUE_EXIT
    monkeypatch.undo()
    changed = _pretrain(tmp_path / "run", syn, "train.optim.lr=0.5")
    with pytest.raises(ValueError, match="preempted.json"):  # names the way to start over instead
        run_json(changed[0], changed[1:])


def test_collect_keeps_finished_episodes_and_resumes(tmp_path, monkeypatch):
    import worldmodel.data.collect as collect

    args = ["collect", "preset=smoke", "episodes=4", "workers=1", "resolution=32", "progress=false"]
    assert main([*args, f"out_dir={tmp_path / 'ref'}"]) == 0
    one = collect.collect_episode

    def signal_during_second(job):
        if job["index"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # lands while episode 1 is being collected
        return one(job)

    monkeypatch.setattr(collect, "collect_episode", signal_during_second)
    out = tmp_path / "run"
    assert main([*args, f"out_dir={out}"]) == preempt.REQUEUE_EXIT
    assert sorted(p.name for p in (out / "episodes").glob("*.npz")) == ["ep_000000.npz", "ep_000001.npz"]
    assert json.loads((out / "manifest.json").read_text())["episodes"] == 2
    monkeypatch.setattr(collect, "collect_episode", one)
    assert main([*args, f"out_dir={out}"]) == 0
    assert json.loads((out / "summary.json").read_text())["new_episodes"] == 2
    for i in range(4):
        with np.load(tmp_path / "ref" / "episodes" / f"ep_{i:06d}.npz") as a, \
                np.load(out / "episodes" / f"ep_{i:06d}.npz") as b:
            assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_collect_workers_stop_on_a_group_sigterm(tmp_path):
    """Two worker processes, SIGTERM to the whole process group (what a scheduler sends): the episodes
    finished before the signal stay, the run exits 75, the rerun completes the dataset."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "worldmodel.cli", "collect", "preset=smoke", "episodes=16", "workers=2",
            "resolution=32", "progress=false", f"out_dir={out}"]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while len(list((out / "episodes").glob("*.npz"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    seen = len(list((out / "episodes").glob("*.npz")))
    os.killpg(proc.pid, signal.SIGTERM)
    text = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == preempt.REQUEUE_EXIT, text
    assert "Traceback" not in text and "preempted" in text
    kept = len(list((out / "episodes").glob("*.npz")))
    assert kept >= seen and json.loads((out / "manifest.json").read_text())["episodes"] == kept
    assert subprocess.run(argv, capture_output=True).returncode == 0
    assert json.loads((out / "summary.json").read_text())["episodes"] == 16


def test_plan_keeps_finished_phases(tmp_path, monkeypatch):
    import worldmodel.planning.evaluate as evaluate
    from worldmodel.planning.mpc import PlannerController

    base = tmp_path / "ac"
    run_json("train-ac", ["preset=smoke", f"out_dir={base}"])
    args = ["plan", "preset=smoke", f"checkpoint={base / 'checkpoint.pt'}", "episodes=3", "gifs=1"]
    assert main([*args, f"out_dir={tmp_path / 'ref'}"]) == 0
    make_random = evaluate.random_controller

    def signalling_random(*a, **k):  # SIGTERM on the random baseline's first step
        act = make_random(*a, **k)

        def step(*x):
            os.kill(os.getpid(), signal.SIGTERM)
            return act(*x)
        return step

    monkeypatch.setattr(evaluate, "random_controller", signalling_random)
    out = tmp_path / "run"
    assert main([*args, f"out_dir={out}"]) == preempt.REQUEUE_EXIT
    assert (out / ".phases" / "planner.npz").is_file() and not (out / ".phases" / "random.npz").exists()
    monkeypatch.setattr(evaluate, "random_controller", make_random)
    calls = []
    plan_call = PlannerController.__call__
    monkeypatch.setattr(PlannerController, "__call__", lambda self, *a: calls.append(1) or plan_call(self, *a))
    assert main([*args, f"out_dir={out}"]) == 0
    assert calls == []  # the planner's phase was kept, not redone
    ref, got = (json.loads((d / "summary.json").read_text()) for d in (tmp_path / "ref", out))
    assert got["per_episode"] == ref["per_episode"] and got["success_rate"] == ref["success_rate"]
    assert not (out / ".phases").exists() and not (out / preempt.MARKER).exists()


def test_a_signal_before_the_work_starts_stops_cleanly(tmp_path):
    """SIGTERM during the program's imports (before any work): a clean stop with exit 75, not a kill."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "worldmodel.cli", "pretrain", "preset=smoke",
                             f"out_dir={out}", f"data.synthetic_dir={tmp_path / 'syn'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.0)  # still importing torch
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == preempt.REQUEUE_EXIT, text
    assert "Traceback" not in text
