"""``wm pipeline``: the whole main job end to end, with a report (:mod:`worldmodel.pipeline`).

The pipeline composes and runs the other commands itself, so it takes the composed config as it is.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel import pipeline
from worldmodel.config import register_schema
from worldmodel.contracts.summaries import PipelineSummary, summary_of

register_schema("pipeline", pipeline.PipelineConfig)


def run(cfg: DictConfig) -> PipelineSummary:
    """Run ``wm pipeline`` on a composed config; returns its typed summary."""
    return summary_of("pipeline", pipeline.run(cfg), f"{cfg.out_dir}: pipeline summary")
