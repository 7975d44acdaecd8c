"""Config plumbing shared by every command.

Each command has a root config ``configs/<name>.yaml`` whose defaults list starts with a structured schema
(a dataclass registered in hydra's ConfigStore as ``<name>_schema``), so unknown keys and wrong types fail at
composition with hydra's message naming the key. Scale is one override, ``preset=smoke|cpu|gpu``: the root
config pulls ``configs/<name>_preset/<preset>.yaml`` through a defaults-list interpolation.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(os.environ.get("WM_CONFIG_DIR", Path(__file__).resolve().parent.parent / "configs"))

# command name -> (module defining ``run(cfg) -> dict`` and registering the schema, root config name)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("worldmodel.data.collect", "collect"),
    "pretrain": ("worldmodel.train.pretrain", "pretrain"),
    "train-ac": ("worldmodel.train.ac", "train_ac"),
    "train-pixel": ("worldmodel.train.pixel", "train_pixel"),
    "drift": ("worldmodel.evaluation.drift", "drift"),
    "plan": ("worldmodel.planning.evaluate", "plan"),
    "pipeline": ("worldmodel.pipeline", "pipeline"),
    "bench": ("worldmodel.bench", "bench"),
}


def register_schema(name: str, node: Any) -> None:
    """Register a structured-config dataclass as ``<name>_schema`` (called at import by command modules)."""
    ConfigStore.instance().store(name=f"{name}_schema", node=node)


def load_command(command: str):
    """Import the module behind ``command`` (which registers its schema) and return (module, config name)."""
    if command not in COMMANDS:
        raise KeyError(f"unknown command {command!r}; expected one of {sorted(COMMANDS)}")
    module_name, config_name = COMMANDS[command]
    return importlib.import_module(module_name), config_name


def compose_config(command: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose the config of ``command`` with hydra overrides, e.g. ``["preset=smoke", "out_dir=/tmp/x"]``.

    Usable from code and tests as well as from the CLI; the result is read-only-typed (struct mode).
    """
    _, config_name = load_command(command)
    gh = GlobalHydra.instance()
    if gh.is_initialized():
        gh.clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    return cfg


def to_dict(cfg: DictConfig) -> dict:
    """Plain-python copy of a config (for checkpoints and summary.json)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
