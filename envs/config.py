"""The ``env=`` settings every command shares (config group ``configs/env/``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EnvConfig:
    id: str = "worldmodel/PointReach-v0"  # gymnasium id: a worldmodel/* task or any registered env (adapter)
    kwargs: dict[str, Any] = field(default_factory=dict)  # env kwargs; adapter keys (state_key, ...) for others
