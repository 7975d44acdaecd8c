"""``wm pretrain``: V-JEPA self-supervised pretraining of a video encoder (:mod:`worldmodel.train.pretrain`).

Registers the command's schema, the library's settings dataclass; ``run`` hands the library the composed config
as that dataclass (:func:`worldmodel.config.settings`), so no hydra object reaches below this layer.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel.config import register_group_schemas, register_schema, settings
from worldmodel.contracts.summaries import PretrainSummary, summary_of
from worldmodel.train import pretrain
from worldmodel.train.regularizers import REGULARIZER_SCHEMAS

register_schema("pretrain", pretrain.PretrainConfig)
register_group_schemas("regularizer", REGULARIZER_SCHEMAS)


def run(cfg: DictConfig) -> PretrainSummary:
    """Run ``wm pretrain`` on a composed config; returns its typed summary."""
    return summary_of("pretrain", pretrain.run(settings(cfg)), f"{cfg.out_dir}: pretrain summary")
