"""The dataset manifest (``manifest.json`` of an episode folder) as a typed record.

Written by ``wm collect`` and ``wm data convert``, read by every stage that takes a dataset, and copied into
train-ac / train-pixel checkpoints (:mod:`worldmodel.contracts.checkpoint_meta`) so a model knows the data it
learned from. Reading validates each field and the facts between them (bounds per action dim, one entry per
episode); an error names the file and the field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from worldmodel.contracts.records import from_dict, to_dict

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class EpisodeEntry:
    """One episode of the dataset: its id (file ep_<id>), its env steps, and how it was made."""

    id: int
    steps: int
    seed: int | None = None  # the env reset seed (policy-protocol goals replay it); None for recorded data
    extra: dict = field(default_factory=dict)  # anything else the writer recorded (policy, policy_seed, ...)


@dataclass(frozen=True)
class Manifest:
    """What an episode dataset holds. Frames are ``resolution`` [H, W] RGB, ``fps`` per second; actions are
    ``action_dim`` floats within [action_low, action_high]; states are ``state_dim`` floats (simulator state, for
    evaluation), of which ``proprio_dims`` are the agent's own body (what a model may read)."""

    env_id: str  # gymnasium id ("" for data recorded elsewhere)
    action_low: list[float]
    action_high: list[float]
    action_dim: int
    state_dim: int
    frame_skip: int  # env steps per recorded step
    fps: float
    resolution: list[int]  # [H, W]
    episodes: int  # = len(episode_list)
    frames: int  # sum of (steps + 1)
    episode_list: list[EpisodeEntry]
    env_kwargs: dict = field(default_factory=dict)  # keyword arguments the env was made with (variation, ...)
    state_labels: list[str] = field(default_factory=list)
    proprio_dims: list[int] | None = None  # None: the env declared no proprioception
    policy: str = ""  # the collection policy (or "recorded")
    seed: int | None = None  # collection base seed
    video: dict = field(default_factory=dict)  # codec settings
    protocol: dict | None = None  # the env's goal protocol settings (envs.protocol.settings), when it has one
    source: dict = field(default_factory=dict)  # where converted data came from
    extra: dict = field(default_factory=dict)  # fields this version does not know

    def __post_init__(self):
        a, where = self.action_dim, "manifest"
        if len(self.action_low) != a or len(self.action_high) != a:
            raise ValueError(f"{where}: action_low/action_high must have action_dim={a} entries")
        if any(lo > hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError(f"{where}: action_low > action_high")
        if len(self.resolution) != 2 or self.frame_skip < 1:
            raise ValueError(f"{where}: resolution must be [H, W] and frame_skip >= 1")
        if self.episodes != len(self.episode_list):
            raise ValueError(f"{where}: episodes={self.episodes} but episode_list has {len(self.episode_list)} "
                             f"entries")

    @classmethod
    def from_dict(cls, data: dict, where: str = "manifest") -> "Manifest":
        """Validate and build (ValueError names ``where`` and the field)."""
        try:
            return from_dict(cls, data, where)
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith(where) else f"{where}: {msg.removeprefix('manifest: ')}") from None

    @classmethod
    def read(cls, root: str | Path) -> "Manifest":
        """Load and validate ``root/manifest.json``."""
        path = Path(root) / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{path}: no manifest.json (is {root} an episode dataset from `wm collect`?)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict:
        return to_dict(self)

    @property
    def episode_ids(self) -> list[int]:
        """Every episode id, sorted."""
        return sorted(e.id for e in self.episode_list)

    @property
    def height_width(self) -> tuple[int, int]:
        return int(self.resolution[0]), int(self.resolution[1])

    def seed_of(self, episode: int) -> int | None:
        """The env reset seed of ``episode`` (None when it was not recorded)."""
        return next((e.seed for e in self.episode_list if e.id == episode), None)

    def state_token_dims(self, which: str) -> list[int]:
        """State dims a model's state token carries: ``proprio`` (the agent's own body, as the env declared it;
        none when it declared nothing) or ``all`` (the full simulator state: oracle runs)."""
        if which == "proprio":
            return [int(d) for d in self.proprio_dims or []]
        if which == "all":
            return list(range(self.state_dim))
        raise ValueError(f"state_dims={which!r}; expected proprio (the agent's own body) or all (oracle)")

    def labels(self, n: int | None = None) -> list[str]:
        """State labels, or s0, s1, ... for the ``n`` (default state_dim) dims when the env named none."""
        return list(self.state_labels) or [f"s{i}" for i in range(self.state_dim if n is None else n)]
