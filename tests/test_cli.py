"""The `wm` contract: help, presets, strict configs, clean errors."""
import contextlib
import io
from types import SimpleNamespace

import pytest
from hydra.errors import HydraException

from worldmodel.cli import main
from worldmodel.commands import COMMANDS, compose_config


def _wm(*args: str) -> SimpleNamespace:
    """``wm *args`` in this process (the same ``main`` the console script runs; tests/test_bad_inputs.py runs it as
    a separate program): its exit code and what it printed. An uncaught exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_help_lists_every_command():
    out = _wm("--help").stdout
    for command in COMMANDS:
        assert command in out


def test_preset_is_one_override():
    assert compose_config("bench").command_preset == "cpu"
    assert compose_config("bench", ["preset=smoke"]).command_preset == "smoke"
    assert compose_config("bench", ["preset=smoke", "repeats=9"]).repeats == 9  # user overrides win


@pytest.mark.parametrize("override", ["repeats=many", "no_such_key=1", "preset=huge"])
def test_bad_config_fails_at_composition(override):
    with pytest.raises(HydraException):
        compose_config("bench", [override])


def test_cli_reports_bad_input_without_traceback():
    proc = _wm("bench", "no_such_key=1")
    assert proc.returncode == 2 and "no_such_key" in proc.stderr and "Traceback" not in proc.stderr
    proc = _wm("bench", "nonsense-target")
    assert proc.returncode == 2 and "nonsense-target" in proc.stderr and "Traceback" not in proc.stderr
    assert _wm("frobnicate").returncode == 2


@pytest.mark.parametrize("energy", [[], ["energy.state_weight=1"]])
def test_bench_plan_smoke(tmp_path, energy):
    """`wm bench plan` times cached vs recompute replanning, also with the state-aware energy (needs a probe)."""
    from helpers import run_json

    s = run_json("bench", ["target=plan", "preset=smoke", f"out_dir={tmp_path}", "repeats=1", "warmup=0",
                              "overrides=[" + ",".join(f"'{o}'" for o in energy) + "]"])
    assert s["seconds_per_plan_cached"] > 0 and s["seconds_per_plan_recompute"] > 0 and s["speedup"] > 0


def test_command_help_describes_every_setting_after_overrides():
    proc = _wm("plan", "env=tworoom", "planner=mppi", "--help")
    assert proc.returncode == 0, proc.stderr
    lines = {ln.split("=")[0].strip(): ln for ln in proc.stdout.splitlines() if " = " in ln}
    assert "'worldmodel/TwoRoom-v0'" in lines["env.id"] and "'mppi'" in lines["planner.name"]
    assert "# pure: frames, proprioception, goal image only" in lines["mode"]
    assert "# planned predictor steps" in lines["planner.horizon"]  # nested groups carry their field docs
    undocumented = [k for k, ln in lines.items() if "  # " not in ln]
    assert undocumented == []


def test_bench_pretrain_smoke(tmp_path, monkeypatch):
    """`wm bench pretrain` times the step and the clip loader with and without the decoded-video cache."""
    from helpers import run_json

    monkeypatch.chdir(tmp_path)  # the synthetic videos are generated under the working folder
    s = run_json("bench", ["target=pretrain", "preset=smoke", f"out_dir={tmp_path / 'bench'}", "repeats=1",
                              "warmup=0"])
    assert s["step_seconds"] > 0 and s["step_gflop"] > 0
    assert s["loader_clips_per_s_cached"] > 0 and s["loader_clips_per_s_decoding"] > 0


def test_bench_encode_smoke(tmp_path):
    """`wm bench encode` times every encoder kind through the same interface, as ratios to ours."""
    from helpers import run_json

    s = run_json("bench", ["target=encode", "preset=smoke", f"out_dir={tmp_path}", "repeats=1", "warmup=0"])
    rows = s["encoders"]
    assert len(rows) == 3 and rows["worldmodel (ours)"]["ratio_to_ours"] == 1.0
    assert all(r["frames_per_s"] > 0 and r["tokens_per_frame"] > 0 for r in rows.values())


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_one_module_whose_settings_are_typed(command):
    """``worldmodel/commands/<name>.py`` registers the schema and runs the command; the library receives the
    schema's dataclass, with the same content the config records (checkpoints and summaries keep their keys)."""
    import dataclasses
    import importlib

    from omegaconf import OmegaConf

    from worldmodel.config import settings, to_dict

    module = importlib.import_module(f"worldmodel.commands.{COMMANDS[command]}")
    assert callable(module.run)
    cfg = compose_config(command, ["preset=smoke"])
    typed = settings(cfg)
    assert dataclasses.is_dataclass(typed) and not OmegaConf.is_config(typed)
    nested = [v for v in vars(typed).values() if dataclasses.is_dataclass(v)]
    assert all(not OmegaConf.is_config(v) for v in vars(typed).values())
    assert to_dict(typed) == OmegaConf.to_container(cfg, resolve=True)
    if command in ("plan", "pretrain", "train-ac"):
        assert nested  # planner, model, train: sub-settings are dataclasses too
