"""``wm train-ac``: train the action-conditioned predictor on a frozen encoder (:mod:`worldmodel.train.ac`).

Registers the command's schema, the library's settings dataclass; ``run`` hands the library the composed config
as that dataclass (:func:`worldmodel.config.settings`), so no hydra object reaches below this layer.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel.config import register_schema, settings
from worldmodel.contracts.summaries import TrainACSummary, summary_of
from worldmodel.train import ac

register_schema("train_ac", ac.TrainACConfig)


def run(cfg: DictConfig) -> TrainACSummary:
    """Run ``wm train-ac`` on a composed config; returns its typed summary."""
    return summary_of("train-ac", ac.run(settings(cfg)), f"{cfg.out_dir}: train-ac summary")
