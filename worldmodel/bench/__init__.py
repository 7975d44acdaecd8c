"""``wm bench <target>``: speed benchmarks reported as ratios measured in one run.

Each target lives in ``worldmodel/bench/<target>.py`` and exposes ``run(cfg: BenchConfig) -> dict``; it
prints a small table and returns its figures (written to ``out_dir/summary.json`` by the CLI).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from enum import StrEnum


class Target(StrEnum):
    """What ``wm bench`` times."""
    pretrain = "pretrain"
    collect = "collect"
    ac = "ac"
    plan = "plan"
    encode = "encode"




@dataclass
class BenchConfig:
    target: Target = Target.pretrain  # what to benchmark: pretrain | collect | ac | plan | encode
    out_dir: str = "runs/bench"  # where summary.json goes
    command_preset: str = "cpu"  # preset of the benchmarked command's config (smoke in tests)
    repeats: int = 5  # timed repetitions per variant (medians are reported)
    warmup: int = 2  # untimed repetitions first
    workers: int = 2  # parallel workers (collect)
    batch: int = 0  # batch size override where it applies (0: the target's default)
    overrides: list[str] = field(default_factory=list)  # extra hydra overrides for the benchmarked command




def run(cfg) -> dict:
    module = importlib.import_module(f"worldmodel.bench.{cfg.target}")
    return {"target": cfg.target, **module.run(cfg)}
