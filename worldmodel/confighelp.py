"""``wm <command> --help``: every setting of a composed config with its value and its one-line description.

Descriptions are the comments written beside (or just above) each field of the structured-config dataclasses,
read from their source, so the schema is the one place a setting is documented.
"""
from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import textwrap
from functools import lru_cache

from omegaconf import DictConfig, ListConfig, OmegaConf

_FIELD = re.compile(r"^(\w+)\s*:\s*[^=]+?(\s*=.*)?$")


@lru_cache(maxsize=None)
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment (inline ``# ...`` after the field, else the comment lines above it), for a
    dataclass and its dataclass bases (the subclass's comment wins where it has one)."""
    out: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        try:
            lines = textwrap.dedent(inspect.getsource(klass)).splitlines()[1:]
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines:
            text = line.strip()
            if text.startswith("#"):
                pending.append(text.lstrip("#").strip())
                continue
            code, _, inline = line.partition("  # ")
            match = _FIELD.match(code.strip())
            if match and not code.strip().startswith(("def ", "@", "return ", "class ")) and line.startswith("    ") \
                    and not line.startswith("     "):
                note = inline.strip() or " ".join(pending)
                if note or match.group(1) not in out:  # a subclass's field without a comment keeps its base's
                    out[match.group(1)] = note
            pending = []
    return out


def _value(v) -> str:
    if isinstance(v, ListConfig):
        return str(OmegaConf.to_container(v, resolve=True))
    if isinstance(v, enum.Enum):  # a choice: shown as it is written
        return repr(v.value)
    return repr(v) if isinstance(v, str) else str(v)


def _walk(node: DictConfig, prefix: str, rows: list[tuple[str, str, str]]) -> None:
    kind = OmegaConf.get_type(node)
    notes = field_comments(kind) if kind is not None and dataclasses.is_dataclass(kind) else {}
    for key in node.keys():
        child = node._get_node(key)
        name = f"{prefix}{key}"
        if isinstance(child, DictConfig) and OmegaConf.get_type(child) is not dict:
            rows.append((name, "", notes.get(str(key), "")))
            _walk(child, f"{name}.", rows)
        else:
            rows.append((name, _value(node[key]), notes.get(str(key), "")))


def describe(command: str, cfg: DictConfig) -> str:
    """One line per setting: ``key = value  # description`` (groups as headers)."""
    rows: list[tuple[str, str, str]] = []
    _walk(cfg, "", rows)
    width = min(48, max(len(k) + len(v) + 3 for k, v, _ in rows))
    lines = [f"settings of wm {command} (override any with key=value):"]
    for key, value, note in rows:
        left = f"{key} = {value}" if value else f"{key}:"
        lines.append(f"  {left:<{width}}  # {note}" if note else f"  {left}")
    return "\n".join(lines)
