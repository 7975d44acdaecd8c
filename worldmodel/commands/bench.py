"""``wm bench <target>``: speed benchmarks reported as ratios measured in one run (:mod:`worldmodel.bench`).

A benchmark composes the configs it times itself, so it takes the composed config as it is.
"""
from __future__ import annotations

from omegaconf import DictConfig

from worldmodel import bench
from worldmodel.config import register_schema
from worldmodel.contracts.summaries import BenchSummary, summary_of

register_schema("bench", bench.BenchConfig)


def run(cfg: DictConfig) -> BenchSummary:
    """Run ``wm bench`` on a composed config; returns its typed summary."""
    return summary_of("bench", bench.run(cfg), f"{cfg.out_dir}: bench summary")
