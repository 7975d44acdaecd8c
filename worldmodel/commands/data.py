"""``wm data``: inspect, preview or convert an episode dataset (:mod:`worldmodel.data.tool`).

Registers the command's schema, the library's settings dataclass; ``run`` hands the library the composed config
as that dataclass (:func:`worldmodel.config.settings`), so no hydra object reaches below this layer.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel.config import register_schema, settings
from worldmodel.contracts.summaries import DataSummary, summary_of
from worldmodel.data import tool

register_schema("data", tool.DataConfig)


def run(cfg: DictConfig) -> DataSummary:
    """Run ``wm data`` on a composed config; returns its typed summary."""
    return summary_of("data", tool.run(settings(cfg)), f"{cfg.out_dir}: data summary")
