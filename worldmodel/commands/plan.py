"""``wm plan``: CEM model-predictive control, goal-reaching evaluation (:mod:`worldmodel.planning.evaluate`).

Registers the command's schema, the library's settings dataclass; ``run`` hands the library the composed config
as that dataclass (:func:`worldmodel.config.settings`), so no hydra object reaches below this layer.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel.config import open_schema, register_group_schemas, register_schema, settings
from worldmodel.contracts.summaries import PlanSummary, summary_of
from worldmodel.planning import evaluate
from worldmodel.planning.optimizers import PLANNER_SCHEMAS

register_schema("plan", open_schema(evaluate.PlanConfig, "env.kwargs"))
register_group_schemas("planner", PLANNER_SCHEMAS)


def run(cfg: DictConfig) -> PlanSummary:
    """Run ``wm plan`` on a composed config; returns its typed summary."""
    return summary_of("plan", evaluate.run(settings(cfg)), f"{cfg.out_dir}: plan summary")
