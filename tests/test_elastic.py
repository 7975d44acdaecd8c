"""DDP under ``torchrun --max-restarts=1`` (gloo on CPU; NCCL takes the same path): one rank is killed with
SIGKILL mid-run, torchrun restarts the group, and the job resumes from its last checkpoint and ends equal to an
uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch


def _torchrun(out: Path, syn: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--max-restarts=1",
            "-m", "worldmodel.cli", "pretrain", "preset=smoke", "train.steps=40", "train.ckpt_every=10",
            "train.progress=false", "train.device=cpu", "probe.enabled=false", f"data.synthetic_dir={syn}",
            f"out_dir={out}"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _rank_pid(out: Path, rank: int, attempt: int) -> int | None:
    """The pid of the worker of ``rank`` in torchrun attempt ``attempt`` writing to ``out``."""
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if (f"RANK={rank}".encode() in env and f"TORCHELASTIC_RESTART_COUNT={attempt}".encode() in env
                and str(out).encode() in cmd):
            return int(p)
    return None


def test_a_killed_rank_restarts_from_the_checkpoint_and_ends_equal(tmp_path):
    syn = tmp_path / "syn"
    ref = _torchrun(tmp_path / "ref", syn)
    assert ref.wait(timeout=300) == 0, ref.stdout.read().decode()[-3000:]
    out = tmp_path / "run"
    job = _torchrun(out, syn)
    deadline = time.time() + 240
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.05)
    pid = _rank_pid(out, 1, attempt=0)
    assert pid is not None, "rank 1 finished before the first checkpoint"
    os.kill(pid, signal.SIGKILL)
    text = job.communicate(timeout=300)[0].decode()
    assert job.returncode == 0, text[-3000:]
    assert "resumed from" in text  # the restarted group read the checkpoint rather than starting over
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (tmp_path / "ref", out))
    assert a["step"] == b["step"] == 40
    for part in ("model", "extra"):
        flat_a, flat_b = ({f"{k}.{j}" if isinstance(v, dict) else k: w for k, v in x[part].items()
                           for j, w in (v.items() if isinstance(v, dict) else [(None, v)])} for x in (a, b))
        assert flat_a.keys() == flat_b.keys()
        assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a), part
