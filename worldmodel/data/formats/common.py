"""What every dataset format reader and writer shares: the episode dict, the key map, the time-step convention.

An episode is a dict: ``frames`` uint8 (T+1, H, W, 3) — the first observation, then one per step — ``actions``
float32 (T, A), ``proprio`` float32 (T+1, P) (the agent's own readings; P may be 0), and optionally ``rewards`` (T,),
``success`` (T,). Formats that store one action per *frame* (LeRobot, robomimic, most per-episode HDF5 files:
N frames, N actions, the last action taken after the last frame) are read by dropping that last action; writers
pad the last row with zeros and mark it (``wm_padded_last_action``), so a round trip gives back the same arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from worldmodel.config import to_dict


@dataclass
class KeyMap:
    """Which stored keys are the camera frames, the actions and the proprioception ("" = the format's default)."""

    image: str = ""  # camera / image key (LeRobot feature, robomimic obs key, HDF5 dataset)
    action: str = ""  # action key
    proprio: str = ""  # proprioception key(s), comma-separated to concatenate; "none" for no proprioception

    @classmethod
    def of(cls, node) -> "KeyMap":
        """A KeyMap from a config node (``dataset_keys`` of a command's config) or a plain dict."""
        return cls(**to_dict(node))


@dataclass
class SourceInfo:
    """Metadata of a dataset, read without decoding frames (``wm data inspect``)."""

    format: str
    path: str
    episodes: int
    lengths: list[int]  # steps T per episode
    fps: float
    keys: dict[str, str]  # role (image, action, proprio) -> the key used
    shapes: dict[str, list[int]]  # key -> per-frame shape
    dtypes: dict[str, str]
    action_low: list[float] = field(default_factory=list)  # the action space's bounds where the data records them
    action_high: list[float] = field(default_factory=list)  # (ours, or written by us), else the actions' range
    all_keys: list[str] = field(default_factory=list)  # every key the dataset has
    problems: list[str] = field(default_factory=list)


def split_per_frame(frames: np.ndarray, actions: np.ndarray, padded: bool, where: str) -> np.ndarray:
    """Actions of a per-frame layout -> (T, A) for T + 1 frames (see the module docstring)."""
    if len(actions) == len(frames):
        return actions[:-1]
    if len(actions) == len(frames) - 1 and not padded:
        return actions
    raise ValueError(f"{where}: {len(frames)} frames but {len(actions)} actions (expected as many, or one fewer)")


def pad_per_frame(actions: np.ndarray) -> np.ndarray:
    """(T, A) -> (T+1, A): a zero row after the last action (the per-frame layouts' shape)."""
    return np.concatenate([actions, np.zeros((1, actions.shape[1]), actions.dtype)])


def check_episode(ep: dict, where: str) -> dict:
    """Shapes, dtypes and finiteness of an episode dict; raises ValueError naming ``where`` and the key."""
    frames, actions, proprio = ep["frames"], ep["actions"], ep["proprio"]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{where}: frames are {frames.dtype} {frames.shape}; expected uint8 (T+1, H, W, 3)")
    if actions.ndim != 2 or len(actions) != len(frames) - 1:
        raise ValueError(f"{where}: actions have shape {actions.shape} for {len(frames)} frames")
    if proprio.ndim != 2 or len(proprio) != len(frames):
        raise ValueError(f"{where}: proprio has shape {proprio.shape} for {len(frames)} frames")
    for key in ("actions", "proprio"):
        if not np.isfinite(ep[key]).all():
            raise ValueError(f"{where}: non-finite values in {key}")
    return ep


def proprio_keys(spec: str, default: list[str]) -> list[str]:
    """The proprio key list of a KeyMap entry ("" -> ``default``, "none" -> [])."""
    if spec == "none":
        return []
    return [k for k in spec.split(",") if k] if spec else default


def choose_keys(keys: KeyMap, images: list[str], names, action_default: str, proprio_default: list[str],
                where, kind: str) -> tuple[str, str, list[str]]:
    """(image key, action key, proprio keys) from the key map, checked against the stored ``names``; ``images``: the
    keys holding frames; ``kind``: how the layout calls its keys (for the message)."""
    image = keys.image or (images[0] if images else "")
    if image not in names:
        raise ValueError(f"{where}: no camera {image!r}; its image {kind}s are {images} (set dataset_keys.image)")
    action = keys.action or action_default
    if action not in names:
        raise ValueError(f"{where}: no action {kind} {action!r} ({kind}s: {sorted(names)}; set dataset_keys.action)")
    proprio = proprio_keys(keys.proprio, [k for k in proprio_default if k in names])
    for k in proprio:
        if k not in names:
            raise ValueError(f"{where}: no proprio {kind} {k!r} ({kind}s: {sorted(names)})")
    return image, action, proprio


def action_scan(episodes) -> tuple[list[int], list, list, list[str]]:
    """(lengths, per-episode action minima, maxima, problems) over (index, episode) pairs read without frames."""
    lengths, lows, highs, problems = [], [], [], []
    for i, ep in episodes:
        lengths.append(len(ep["actions"]))
        if len(ep["actions"]):
            lows.append(ep["actions"].min(0))
            highs.append(ep["actions"].max(0))
        if not np.isfinite(ep["actions"]).all():
            problems.append(f"episode {i}: non-finite actions")
    return lengths, lows, highs, problems

