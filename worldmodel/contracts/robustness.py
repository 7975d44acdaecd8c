"""The robustness table (``scripts/robustness.py``): planning success of each model on one task under each factor of
variation set at plan time, written as ``<run>/robustness/<task>/table.json`` and shown by the pipeline's report."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from worldmodel.contracts.records import from_dict


@dataclass(frozen=True)
class RobustnessCell:
    """One (model, factor) plan: its success and where it came from."""

    model: str  # row label: latent | pixel | random-init encoder | a named extra model
    factor: str  # nominal | floor colour | lighting | moving distractors | frame noise
    variation: dict = field(default_factory=dict)  # env.kwargs.variation at plan time ({}: nominal)
    train_variation: dict = field(default_factory=dict)  # the model's training data's variation
    success_rate: float = 0.0
    success_ci95: list[float] = field(default_factory=list)  # Wilson 95% interval
    summary: str = ""  # the plan's summary.json


@dataclass(frozen=True)
class RobustnessTable:
    """Every cell of one task's table, with the settings every cell shares."""

    task: str
    episodes: int
    seed: int
    cells: list[RobustnessCell] = field(default_factory=list)
    # factor -> model (latent | pixel | copy last) -> state-probe error of open-loop rollouts at the largest horizon
    drift: dict[str, dict[str, float]] = field(default_factory=dict)

    def models(self) -> list[str]:
        return list(dict.fromkeys(c.model for c in self.cells))

    def factors(self) -> list[str]:
        return list(dict.fromkeys(c.factor for c in self.cells))

    def cell(self, model: str, factor: str) -> RobustnessCell | None:
        return next((c for c in self.cells if c.model == model and c.factor == factor), None)


def load_table(path: Path) -> RobustnessTable:
    """A table written by ``scripts/robustness.py``; a bad file fails in one line naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a robustness table ({e})") from e
    return from_dict(RobustnessTable, data, f"{path}: robustness table")
