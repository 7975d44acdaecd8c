"""``wm collect``: roll out a policy in an environment and write an episode dataset (:mod:`worldmodel.data.collect`).

Registers the command's schema, the library's settings dataclass; ``run`` hands the library the composed config
as that dataclass (:func:`worldmodel.config.settings`), so no hydra object reaches below this layer.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel.config import open_schema, register_schema, settings
from worldmodel.contracts.summaries import CollectSummary, summary_of
from worldmodel.data import collect

register_schema("collect", open_schema(collect.CollectConfig, "env.kwargs"))


def run(cfg: DictConfig) -> CollectSummary:
    """Run ``wm collect`` on a composed config; returns its typed summary."""
    return summary_of("collect", collect.run(settings(cfg)), f"{cfg.out_dir}: collect summary")
