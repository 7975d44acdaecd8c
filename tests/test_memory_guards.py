"""Settings too large for memory are refused before anything large is allocated: one line naming the setting,
the estimate and what is available, exit 2, and the process stays small (it used to grow until the kernel's OOM
killer ended it). Settings that fit are not refused."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_json

from worldmodel.utils.memory import MemoryBudgetError, available_bytes, check_fits


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guards") / "ac"
    run_json("train-ac", ["preset=smoke", f"out_dir={out}"])
    return out


def test_huge_settings_are_refused_in_one_line_and_small(base, tmp_path):
    data, enc = base / "bootstrap" / "data", base / "bootstrap" / "encoder" / "checkpoint.pt"
    cases = {
        "planner.samples=200000000": ["plan", f"checkpoint={base / 'checkpoint.pt'}", "planner.samples=200000000"],
        "train.batch_size=100000 (pretrain)": ["pretrain", "train.batch_size=100000",
                                               f"data.synthetic_dir={tmp_path / 'syn'}"],
        "train.batch_size=100000 (train-ac)": ["train-ac", f"dataset={data}", f"encoder_checkpoint={enc}",
                                               "train.batch_size=100000"],
        "episodes=100000": ["plan", f"checkpoint={base / 'checkpoint.pt'}", "episodes=100000"],
        "workers=100000": ["collect", "workers=100000", "episodes=100000"],
        "model.embed_dim=100000": ["pretrain", "model.embed_dim=100000", f"data.synthetic_dir={tmp_path / 'syn'}"],
        "train.batch_size=100000000 (train-pixel)": ["train-pixel", f"dataset={data}",
                                                  f"latent_checkpoint={base / 'checkpoint.pt'}",
                                                  "train.batch_size=100000000"],
    }
    code = ("import json, resource, sys\nfrom worldmodel.cli import main\n"
            "cases = json.loads(sys.argv[1])\n"
            "codes = {k: main(v) for k, v in cases.items()}\n"
            "print(json.dumps({'codes': codes, 'peak_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n")
    argv = {k: [*v, f"out_dir={tmp_path / str(i)}"] for i, (k, v) in enumerate(cases.items())}
    res = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True,
                         timeout=300)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["codes"] == {k: 2 for k in cases}, res.stderr
    assert out["peak_kb"] < 2 * 1024 * 1024  # refused before allocating: the process stayed under 2 GB
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("wm ")]
    assert len(lines) == len(cases) and "Traceback" not in res.stderr
    for line, setting in zip(lines, cases):
        assert setting.split(" ")[0] in line and "(estimate)" in line and "available" in line


def test_settings_that_fit_pass():
    check_fits("x=1", 1e6, "a small thing")  # 1 MB fits anywhere
    with pytest.raises(MemoryBudgetError,
                       match=r"x=2: about .* needed for a big thing \(estimate\), .* available on cpu; lower x"):
        check_fits("x=2", available_bytes() * 2.0, "a big thing", hint="lower x")
