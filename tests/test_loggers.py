"""``train.logger=tensorboard|wandb`` send every scalar of ``metrics.jsonl`` (the learning rate and the losses, at
the same steps and values) to TensorBoard's event files or to an offline W&B run that needs no account."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_json

from worldmodel.cli import main


def _pretrain(out: Path, logger: str) -> list[str]:
    return ["preset=smoke", "train.steps=5", "train.log_every=1", "probe.enabled=false", f"train.logger={logger}",
            f"data.synthetic_dir={out.parent / 'syn'}", f"out_dir={out}"]


def _rows(out: Path) -> dict[int, dict[str, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: {k: v for k, v in r.items() if k not in ("step", "time")} for r in rows}


def test_tensorboard_gets_the_metrics_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run_json("pretrain", _pretrain(out, "tensorboard"))
    events = EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    got: dict[int, dict[str, float]] = {}
    for tag in events.Tags()["scalars"]:
        for e in events.Scalars(tag):
            got.setdefault(e.step, {})[tag] = e.value
    want = _rows(out)
    assert got.keys() == want.keys() and len(want) == 5
    for step, row in want.items():
        assert got[step].keys() == row.keys()
        assert all(got[step][k] == pytest.approx(v, rel=1e-6) for k, v in row.items())


def test_wandb_offline_run_gets_the_metrics_scalars(tmp_path, monkeypatch):
    from wandb.sdk.wandb_run import Run

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    sent: dict[int, dict[str, float]] = {}
    log = Run.log

    def spy(self, data, step=None, *args, **kwargs):  # records what reaches wandb, then logs it for real
        sent.setdefault(step, {}).update(data)
        return log(self, data, step, *args, **kwargs)

    monkeypatch.setattr(Run, "log", spy)
    out = tmp_path / "run"
    run_json("pretrain", _pretrain(out, "wandb"))
    assert sent == _rows(out)
    files = list((out / "wandb").glob("offline-run-*/run-pretrain-*.wandb"))
    assert len(files) == 1 and files[0].stat().st_size > 0  # an offline run, written without an account


def test_an_unknown_logger_is_one_line(tmp_path, capsys):
    assert main(["pretrain", *_pretrain(tmp_path / "run", "mlflow")]) == 2
    err = capsys.readouterr().err  # refused when the config is built, before any training
    assert "train.logger=mlflow" in err and "expected one of [none, tensorboard, wandb]" in err


def test_wandb_offline_gets_a_table(tmp_path, monkeypatch):
    """The pipeline's headline goes to wandb as a wandb.Table with the same columns and cells."""
    import wandb
    from wandb.sdk.wandb_run import Run

    from worldmodel.train.loggers import make_logger

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    sent: list[dict] = []
    log = Run.log
    monkeypatch.setattr(Run, "log", lambda self, data, *a, **k: (sent.append(data), log(self, data, *a, **k))[1])
    logger = make_logger("wandb", tmp_path, {"tasks": ["PointReach"]}, "pipeline", setting="logger")
    logger.table("headline", ["task", "success"], [["PointReach", "90%"], ["TwoRoom", "60%"]])
    logger.close()
    table = sent[0]["headline"]
    assert isinstance(table, wandb.Table) and table.columns == ["task", "success"]
    assert table.data == [["PointReach", "90%"], ["TwoRoom", "60%"]]
    with pytest.raises(ValueError, match="^logger='mlflow'"):
        make_logger("mlflow", tmp_path, {}, "pipeline", setting="logger")
