"""The ``wm`` command: ``wm <command> [hydra overrides]``.

Every command composes its config, runs, and writes ``out_dir/summary.json`` (its headline figures) plus
``out_dir/config.yaml`` (the resolved config); see :mod:`worldmodel.commands`. ``wm <command> --help`` lists
each setting with its one-line description and current value. Also runnable under torchrun:
``torchrun --nproc_per_node=2 -m worldmodel.cli pretrain preset=smoke``.

Errors in the user's input (a bad override, a missing file, a wrong value, a setting too large for memory, a
run folder another run holds) and a full disk print one line naming the culprit and exit with code 2;
``WM_DEBUG=1`` shows the traceback instead. A run stopped by SIGTERM/SIGUSR1 saves its state, says what it kept
in one line and exits with code 75 (``worldmodel.utils.preempt.REQUEUE_EXIT``): rerun it to resume.
"""
from __future__ import annotations

import os
import sys

from worldmodel.utils import preempt

if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "wm":  # the wm program itself, not an import
    preempt.record_from_now()  # before torch's imports: a stop signal during them still ends cleanly

os.environ.setdefault("MUJOCO_GL", "egl")

USAGE = """usage: wm <command> [key=value ...]

commands:
  data         inspect, preview or convert an episode dataset: wm data inspect|preview|convert dataset=PATH
  collect      roll out policies in an environment and write an episode dataset
  pretrain     V-JEPA self-supervised pretraining of a video encoder
  train-ac     train the action-conditioned predictor on a frozen encoder
  train-pixel  train the pixel-space baseline predictor
  drift        open-loop rollout error vs. horizon (latent, pixel, copy-last)
  plan         CEM model-predictive control, goal-reaching evaluation
  eval-offline without a simulator: plan toward recorded frames, compare with the recorded actions
  pipeline     the whole main job end to end, with a report
  bench        speed benchmarks: wm bench pretrain|collect|ac|plan|encode

Scale with preset=smoke|cpu|gpu; results go to out_dir=PATH (PATH/summary.json).
`wm <command> --help` lists that command's settings, what each means, and their values.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wm`` console script; returns the exit code."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    finally:
        preempt.settle()


def _main(argv: list[str]) -> int:
    # imported here, not at the top: a collection worker process re-imports this module (as multiprocessing's
    # __mp_main__) and needs none of torch, hydra or the commands
    from hydra.errors import HydraException

    from worldmodel.commands import COMMANDS, compose_config, run_command
    from worldmodel.confighelp import describe
    from worldmodel.train.core import NonFiniteLossError
    from worldmodel.utils.atomic import DiskFullError

    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"wm: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    if command in ("bench", "data") and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"{'target' if command == 'bench' else 'action'}={rest[0]}"] + rest[1:]
    try:
        if "--help" in rest or "-h" in rest:
            cfg = compose_config(command, [r for r in rest if r not in ("--help", "-h")])
            print(f"wm {command} [key=value ...]\n\n{describe(command, cfg)}")
            return 0
        run_command(command, rest)
    except HydraException as e:  # unknown key, wrong type, missing group option
        if os.environ.get("WM_DEBUG"):
            raise
        print(f"wm {command}: bad config: {config_error(e)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, NonFiniteLossError, DiskFullError) as e:  # the message names the culprit
        if os.environ.get("WM_DEBUG"):
            raise
        print(f"wm {command}: error: {e}", file=sys.stderr)
        return 2
    except preempt.Preempted as e:  # state saved: a scheduler requeues on this code, the rerun resumes
        print(f"wm {command}: preempted: {e}; rerun the same command to resume", file=sys.stderr)
        return preempt.REQUEUE_EXIT
    return 0


def config_error(e: Exception) -> str:
    """Hydra's composition error in one line: what failed, why (its cause: the key, the value and what was
    expected) and, for a missing group option, the options there are."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0].rstrip(".") if lines else type(e).__name__
    if e.__cause__ is not None and str(e.__cause__).strip():
        text += f": {str(e.__cause__).strip().splitlines()[0]}"
    if any(line.startswith("Available options") for line in lines):
        start = next(i for i, line in enumerate(lines) if line.startswith("Available options")) + 1
        options = [line for line in lines[start:] if not line.startswith(("Config search path", "provider="))
                   and not line.endswith("_schema")]  # an option's schema is not an option
        text += f"; available: {', '.join(options)}"
    return text


if __name__ == "__main__":
    sys.exit(main())
