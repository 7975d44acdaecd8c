"""Config plumbing shared by every command.

Each command has a root config ``configs/<name>.yaml`` (the repository's top-level ``configs/``, installed as
``worldmodel.configs``) whose defaults list starts with a structured schema (a dataclass registered in hydra's
ConfigStore as ``<name>_schema``), so unknown keys and wrong types fail at composition with hydra's message naming
the key. Scale is one override, ``preset=smoke|cpu|gpu``: the root
config pulls ``configs/<name>_preset/<preset>.yaml`` through a defaults-list interpolation.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from worldmodel import configs

CONFIG_DIR = Path(os.environ.get("WM_CONFIG_DIR", Path(configs.__file__).resolve().parent))


def register_schema(name: str, node: Any) -> None:
    """Register a structured-config dataclass as ``<name>_schema`` (called at import by command modules)."""
    ConfigStore.instance().store(name=f"{name}_schema", node=node)


def to_dict(cfg: DictConfig) -> dict:
    """Plain-python copy of a config (for checkpoints and summary.json); a plain dict or list is copied as it is."""
    if not OmegaConf.is_config(cfg):
        return dict(cfg) if isinstance(cfg, dict) else cfg
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def select(cfg: DictConfig, key: str) -> Any:
    """The value at a dotted ``key`` of a config (None when absent)."""
    return OmegaConf.select(cfg, key)


def open_schema(schema: type, *paths: str) -> DictConfig:
    """A structured schema whose nodes at ``paths`` stay open to new keys (``env.kwargs.width=64`` on the command
    line), the rest strict."""
    node = OmegaConf.structured(schema)
    for path in paths:
        OmegaConf.set_struct(OmegaConf.select(node, path), False)
    return node


def require(name: str, value: Any, minimum: float) -> None:
    """Fail with one line naming the setting when ``value`` is below ``minimum`` (counts, budgets, sizes)."""
    if value < minimum:
        raise ValueError(f"{name}={value}; expected a number >= {minimum:g}")
