"""``wm drift``: open-loop rollout error vs. horizon (:mod:`worldmodel.evaluation.drift`).

Registers the command's schema, the library's settings dataclass; ``run`` hands the library the composed config
as that dataclass (:func:`worldmodel.config.settings`), so no hydra object reaches below this layer.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel.config import register_schema, settings
from worldmodel.contracts.summaries import DriftSummary, summary_of
from worldmodel.evaluation import drift

register_schema("drift", drift.DriftConfig)


def run(cfg: DictConfig) -> DriftSummary:
    """Run ``wm drift`` on a composed config; returns its typed summary."""
    return summary_of("drift", drift.run(settings(cfg)), f"{cfg.out_dir}: drift summary")
