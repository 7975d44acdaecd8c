"""The ``wm`` command: ``wm <command> [hydra overrides]``.

Every command composes its config, runs, and writes ``out_dir/summary.json`` (its headline figures) plus
``out_dir/config.yaml`` (the resolved config). ``wm <command> --help`` prints the composed config.
Also runnable under torchrun: ``torchrun --nproc_per_node=2 -m worldmodel.cli pretrain preset=smoke``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

USAGE = """usage: wm <command> [key=value ...]

commands:
  collect      roll out policies in an environment and write an episode dataset
  pretrain     V-JEPA self-supervised pretraining of a video encoder
  train-ac     train the action-conditioned predictor on a frozen encoder
  train-pixel  train the pixel-space baseline predictor
  drift        open-loop rollout error vs. horizon (latent, pixel, copy-last)
  plan         CEM model-predictive control, goal-reaching evaluation
  pipeline     the whole main job end to end, with a report
  bench        speed benchmarks: wm bench pretrain|collect|ac|plan

Scale with preset=smoke|cpu|gpu; results go to out_dir=PATH (PATH/summary.json).
`wm <command> --help` prints that command's config.
"""


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write JSON through a temp file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run_command(command: str, overrides: list[str]) -> dict:
    """Compose, run and record one command; returns its summary dict."""
    from omegaconf import OmegaConf

    from worldmodel.config import compose_config, load_command

    module, _ = load_command(command)
    cfg = compose_config(command, overrides)
    out_dir = Path(cfg.out_dir)
    if _is_rank_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    start = time.time()
    summary = module.run(cfg) or {}
    summary.setdefault("command", command)
    summary.setdefault("seconds", round(time.time() - start, 2))
    if _is_rank_zero():
        write_json_atomic(out_dir / "summary.json", summary)
        print(f"[wm {command}] summary: {out_dir / 'summary.json'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    from worldmodel.config import COMMANDS

    if command not in COMMANDS:
        print(f"wm: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    if command == "bench" and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"target={rest[0]}"] + rest[1:]
    if "--help" in rest or "-h" in rest:
        from omegaconf import OmegaConf

        from worldmodel.config import compose_config

        cfg = compose_config(command, [r for r in rest if r not in ("--help", "-h")])
        print(f"wm {command} [key=value ...]; composed config:\n")
        print(OmegaConf.to_yaml(cfg))
        return 0
    from hydra.errors import HydraException

    try:
        run_command(command, rest)
    except HydraException as e:  # unknown key, wrong type, missing group option
        print(f"wm {command}: bad config: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:  # bad input: the message names the file/field; WM_DEBUG=1 for the trace
        if os.environ.get("WM_DEBUG"):
            raise
        print(f"wm {command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
