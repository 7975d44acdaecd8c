"""``wm eval-offline``: plan toward recorded frames, without a simulator (:mod:`worldmodel.evaluation.offline`).

Registers the command's schema, the library's settings dataclass; ``run`` hands the library the composed config
as that dataclass (:func:`worldmodel.config.settings`), so no hydra object reaches below this layer.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel.config import register_group_schemas, register_schema, settings
from worldmodel.contracts.summaries import EvalOfflineSummary, summary_of
from worldmodel.evaluation import offline
from worldmodel.planning.optimizers import PLANNER_SCHEMAS

register_schema("eval_offline", offline.OfflineConfig)
register_group_schemas("planner", PLANNER_SCHEMAS)


def run(cfg: DictConfig) -> EvalOfflineSummary:
    """Run ``wm eval-offline`` on a composed config; returns its typed summary."""
    return summary_of("eval-offline", offline.run(settings(cfg)), f"{cfg.out_dir}: eval-offline summary")
