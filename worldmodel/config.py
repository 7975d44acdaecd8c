"""Config plumbing shared by every command.

Each command has a root config ``configs/<name>.yaml`` (the repository's top-level ``configs/``, installed as
``worldmodel.configs``) whose defaults list starts with a structured schema (a dataclass registered in hydra's
ConfigStore as ``<name>_schema``), so unknown keys and wrong types fail at composition with hydra's message naming
the key. Scale is one override, ``preset=smoke|cpu|gpu``: the root
config pulls ``configs/<name>_preset/<preset>.yaml`` through a defaults-list interpolation. A group's options
each have their own schema (``register_group_schemas``). The library receives a composed config as its schema's
dataclass (``settings``) and records it as plain values (``to_dict``: choices become strings).
"""
from __future__ import annotations

import dataclasses
import enum
import functools
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


def register_group_schemas(group: str, schemas: dict[str, type]) -> None:
    """Register each option's schema of config group ``group`` as ``<group>/<option>_schema``; the option's file
    ``configs/<group>/<option>.yaml`` lists it first in its defaults."""
    for option, node in schemas.items():
        ConfigStore.instance().store(group=group, name=f"{option}_schema", node=node)


def settings(cfg: DictConfig) -> Any:
    """A composed structured config as its schema's dataclass instance (nested dataclasses, plain dicts and lists,
    interpolations resolved): what the commands hand the library."""
    return OmegaConf.to_object(cfg)


def to_dict(cfg: Any) -> dict:
    """Plain-python copy of settings (a dataclass, a config or a dict; for checkpoints and summary.json): choices
    become their plain string values, so a checkpoint loads with ``weights_only=True`` and hashes as before."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return _plain(dataclasses.asdict(cfg))
    if not OmegaConf.is_config(cfg):
        return _plain(dict(cfg)) if isinstance(cfg, dict) else cfg
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def _plain(x: Any) -> Any:
    """``x`` with every Enum member (at any depth of dicts and lists) replaced by its value."""
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    return x


def setting(cfg: Any, key: str) -> Any:
    """The value at a dotted ``key`` (``planner.samples``) of settings or a config."""
    return functools.reduce(getattr, key.split("."), cfg)


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
