"""``wm train-pixel``: train the pixel-space baseline predictor (:mod:`worldmodel.train.pixel`).

Registers the command's schema, the library's settings dataclass; ``run`` hands the library the composed config
as that dataclass (:func:`worldmodel.config.settings`), so no hydra object reaches below this layer.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel.config import register_schema, settings
from worldmodel.contracts.summaries import TrainPixelSummary, summary_of
from worldmodel.train import pixel

register_schema("train_pixel", pixel.TrainPixelConfig)


def run(cfg: DictConfig) -> TrainPixelSummary:
    """Run ``wm train-pixel`` on a composed config; returns its typed summary."""
    return summary_of("train-pixel", pixel.run(settings(cfg)), f"{cfg.out_dir}: train-pixel summary")
