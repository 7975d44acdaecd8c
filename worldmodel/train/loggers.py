"""Experiment loggers: the scalars every trainer writes to ``metrics.jsonl``, sent to TensorBoard or Weights &
Biases too (``train.logger=tensorboard|wandb``; ``none``, the default, keeps ``metrics.jsonl`` alone); ``wm
pipeline logger=...`` sets it for every training stage and logs the headline table (text and success scalars).

- ``tensorboard``: event files under ``out_dir/tb`` (``pip install worldmodel[tensorboard]``).
- ``wandb``: a run in ``out_dir/wandb``, offline unless ``WANDB_MODE`` says otherwise (offline needs no account;
  ``wandb sync`` uploads it later); project ``WANDB_PROJECT`` (default ``worldmodel``); the run id is derived from
  the run folder, so a resumed run continues the same wandb run (``pip install worldmodel[wandb]``).
"""
from __future__ import annotations

import hashlib
import os
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class Logger(StrEnum):
    """Where metrics.jsonl's scalars also go."""
    none = "none"
    tensorboard = "tensorboard"
    wandb = "wandb"


LOGGERS = tuple(m.value for m in Logger)


class MetricLogger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record scalars at ``step``."""

    def table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        """Record a table of text cells (the pipeline's headline)."""

    def close(self) -> None:
        """Flush and finish."""


class TensorBoardLogger:
    def __init__(self, out_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out_dir / "tb"))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)

    def table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.writer.add_text(name, "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]), 0)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, out_dir: Path, config: dict, kind: str):
        import wandb

        run_id = f"{kind}-{hashlib.sha1(str(out_dir.resolve()).encode()).hexdigest()[:12]}"
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "worldmodel"), name=f"{kind}:{out_dir.name}",
                              id=run_id, resume="allow", dir=str(out_dir), config=config, job_type=kind,
                              mode=os.environ.get("WANDB_MODE", "offline"))

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def table(self, name: str, header: list[str], rows: list[list[str]]) -> None:
        import wandb

        self.run.log({name: wandb.Table(columns=header, data=rows)})

    def close(self) -> None:
        self.run.finish()


def make_logger(name: str, out_dir: Path, config: dict, kind: str,
                setting: str = "train.logger") -> MetricLogger | None:
    """The logger named ``name`` (None for ``none``); one line naming the setting when unknown or not installed."""
    if name not in LOGGERS:
        raise ValueError(f"{setting}={name!r}; expected one of {list(LOGGERS)}")
    if name == "none":
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return TensorBoardLogger(out_dir) if name == "tensorboard" else WandbLogger(out_dir, config, kind)
    except ImportError as e:
        raise ValueError(f"{setting}={name}: {e.name or name} is not installed "
                         f"(pip install 'worldmodel[{name}]')") from None
