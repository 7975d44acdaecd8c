"""The ``wm`` commands: one module each (``worldmodel/commands/<name>.py``: its schema and ``run``), how a config is
composed, and how one is run and recorded.

Every command composes its config (``configs/<name>.yaml``, schema first, then the preset, then the
user's overrides), runs ``worldmodel.commands.<name>.run(cfg)`` (which hands the library typed settings), and
writes ``out_dir/config.yaml`` (the resolved config) and
``out_dir/summary.json`` (its headline figures), both atomically. While it runs, the command holds
``out_dir/.wm.lock`` (one writer per run folder, :mod:`worldmodel.utils.runlock`) and records SIGTERM/SIGUSR1
instead of dying (:mod:`worldmodel.utils.preempt`): a run stopped that way leaves ``out_dir/preempted.json``,
which the next run of the same command resumes from and removes when it finishes.

Smoke bootstrapping lives here, not in the library: a smoke run of train-ac, train-pixel, drift or plan given
no inputs (``bootstrap=true`` in their smoke presets) first builds them with the upstream commands at
``preset=smoke`` under ``out_dir/bootstrap/`` (reused when present), so each command runs alone on a fresh
checkout.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import time
from pathlib import Path

import torch
import torchvision  # noqa: F401  (loaded after a MuJoCo EGL context exists, its CUDA libraries segfault: load it first)
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from worldmodel.config import CONFIG_DIR
from worldmodel.contracts.records import to_dict
from worldmodel.contracts.summaries import Summary, summary_of
from worldmodel.utils import preempt
from worldmodel.utils.atomic import write_json, write_text
from worldmodel.utils.runlock import check_out_dir, run_lock

# command name -> root config name; the command itself is ``worldmodel.commands.<config name>`` (its schema + run)
COMMANDS: dict[str, str] = {
    "data": "data", "collect": "collect", "pretrain": "pretrain", "train-ac": "train_ac", "train-pixel": "train_pixel",
    "drift": "drift", "plan": "plan", "eval-offline": "eval_offline", "pipeline": "pipeline", "bench": "bench",
}


def load_command(command: str):
    """Import the module behind ``command`` (which registers its schema) and return (module, config name)."""
    if command not in COMMANDS:
        raise KeyError(f"unknown command {command!r}; expected one of {sorted(COMMANDS)}")
    config_name = COMMANDS[command]
    return importlib.import_module(f"worldmodel.commands.{config_name}"), config_name


def compose_config(command: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose the config of ``command`` with hydra overrides, e.g. ``["preset=smoke", "out_dir=/tmp/x"]``.

    Usable from code and tests as well as from the CLI; the result is typed (struct mode).
    """
    _, config_name = load_command(command)
    gh = GlobalHydra.instance()
    if gh.is_initialized():
        gh.clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def is_rank_zero() -> bool:
    """True outside torchrun and on its rank 0 (the process that writes summaries)."""
    return int(os.environ.get("RANK", "0")) == 0


def bootstrap(command: str, cfg: DictConfig) -> None:
    """Fill the missing inputs of a smoke run (``cfg.bootstrap``) by running upstream commands at
    ``preset=smoke`` under ``out_dir/bootstrap/``; finished ones are reused."""
    if not cfg.get("bootstrap", False):
        return
    root = Path(cfg.out_dir) / "bootstrap"
    extra = list(cfg.get("bootstrap_overrides", []))

    def build(cmd: str, folder: Path, marker: str, overrides: list[str]) -> str:
        if not (folder / marker).is_file():
            run_command(cmd, ["preset=smoke", f"out_dir={folder}", *overrides])
        return str(folder if marker == "manifest.json" else folder / marker)

    if command in ("train-ac", "train-pixel") and not cfg.dataset:
        cfg.dataset = build("collect", root / "data", "manifest.json", list(cfg.bootstrap_collect))
    if command == "train-ac" and not cfg.encoder_checkpoint and not cfg.encoder:
        cfg.encoder_checkpoint = build("pretrain", root / "encoder", "checkpoint.pt", list(cfg.bootstrap_pretrain))
    if command == "train-pixel" and not cfg.latent_checkpoint:
        cfg.latent_checkpoint = build("train-ac", root / "train_ac", "checkpoint.pt", [f"dataset={cfg.dataset}"])
    if command in ("drift", "plan", "eval-offline") and not cfg.checkpoint:
        cfg.checkpoint = build("train-ac", root / "train_ac", "checkpoint.pt", extra)


def run_command(command: str, overrides: list[str]) -> Summary:
    """Compose, bootstrap, run and record one command; returns its summary (``contracts.summaries``), as written
    to ``out_dir/summary.json``."""
    module, _ = load_command(command)
    cfg = compose_config(command, overrides)
    out_dir = check_out_dir(cfg.out_dir)
    main = is_rank_zero()
    with (run_lock(out_dir, command) if main else contextlib.nullcontext()), preempt.handling():
        if main:
            write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        preempt.check(f"{command}: before it started")  # a signal during start-up: nothing to save yet
        bootstrap(command, cfg)
        start = time.time()
        threads = torch.get_num_threads()
        try:
            result = module.run(cfg)
        except preempt.Preempted as e:
            if main:
                preempt.mark(out_dir, str(e))
            raise
        except Exception as e:  # a stop signal sent to the whole process group also ends children mid-work
            if not preempt.requested():
                raise
            if main:
                preempt.mark(out_dir, f"{command}: stopped on {preempt.requested()} ({type(e).__name__})")
            raise preempt.Preempted(f"{command}: stopped on {preempt.requested()}; a child process it stopped "
                                    f"failed the step in flight ({type(e).__name__}: {e})") from e
        finally:  # a command's thread setting must not leak into the next one of an in-process pipeline
            torch.set_num_threads(threads)
        summary = summary_of(command, result, f"{command} summary")
        summary = dataclasses.replace(summary, command=summary.command or command,
                                      seconds=round(time.time() - start, 2) if summary.seconds is None
                                      else summary.seconds)
        if main:
            write_json(out_dir / "summary.json", to_dict(summary))
            preempt.unmark(out_dir)
            print(f"[wm {command}] summary: {out_dir / 'summary.json'}")
    return summary
