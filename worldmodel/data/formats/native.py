"""This project's own episode folders (``worldmodel.data.episodes``) as one format among the others.

Reading gives the agent's proprioception (the manifest's ``proprio_dims`` columns of the recorded states) — the
other formats carry nothing else. Writing makes a folder every command reads: frames as lossless RGB H.264, the
proprioception as ``states`` (all of it declared ``proprio_dims``), action bounds from the data, no env
(``env_id`` "": training and offline evaluation need none).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from worldmodel.contracts.manifest import EpisodeEntry, Manifest
from worldmodel.contracts.records import from_dict
from worldmodel.data.episodes import EpisodeWriter, read_manifest, write_manifest
from worldmodel.data.formats.common import KeyMap, SourceInfo
from worldmodel.data.reader import EpisodeReader


def is_native(path: Path) -> bool:
    """Whether ``path`` is one of our episode folders."""
    return (path / "manifest.json").is_file() and (path / "episodes").is_dir()


def read_native(path: Path, keys: KeyMap, frames: bool = True) -> Iterator[tuple[int, dict]]:
    """(id, episode dict) of our folder, proprioception as ``proprio`` (corrupt episodes skipped and counted)."""
    reader = EpisodeReader(path)
    dims = reader.manifest.state_token_dims("proprio")
    for i, ep in reader.episodes(video="decode" if frames else "skip"):
        out = {"actions": ep["actions"], "proprio": ep["states"][:, dims].astype(np.float32),
               "rewards": ep["rewards"], "success": ep["success"]}
        if frames:
            out["frames"] = ep["frames"]
        yield i, out


def inspect_native(path: Path, keys: KeyMap) -> SourceInfo:
    """Metadata of our folder from its manifest alone."""
    m = read_manifest(path)
    lengths = [e.steps for e in m.episode_list]
    dims = m.state_token_dims("proprio")
    return SourceInfo(format="worldmodel", path=str(path), episodes=len(lengths), lengths=lengths, fps=float(m.fps),
                      keys={"image": "episodes/*.mp4", "action": "actions", "proprio": f"states{dims}"},
                      shapes={"frames": [*m.resolution, 3], "actions": [m.action_dim], "states": [m.state_dim]},
                      dtypes={"frames": "uint8", "actions": "float32", "states": "float32"},
                      action_low=list(m.action_low), action_high=list(m.action_high),
                      all_keys=["frames", "actions", "states", "rewards", "success"])


def write_native(path: Path, episodes: Iterator[dict], fps: float, source: dict | None = None,
                 bounds: tuple[list, list] | None = None) -> int:
    """Write episodes as our folder and its manifest (action bounds: ``bounds``, else the data's range); returns the
    episode count."""
    entries, lows, highs, first = [], [], [], None
    for i, ep in enumerate(episodes):
        first = first or ep
        t = len(ep["actions"])
        writer = EpisodeWriter(path, i, fps)
        for frame in ep["frames"]:
            writer.add_frame(frame)
        entries.append(writer.finish(ep["actions"], ep["proprio"], ep.get("rewards", np.zeros(t)),
                                     ep.get("success", np.zeros(t, bool))))
        if t:
            lows.append(ep["actions"].min(0))
            highs.append(ep["actions"].max(0))
    if first is None:
        raise ValueError(f"{path}: no episode to write")
    a, p = first["actions"].shape[1], first["proprio"].shape[1]
    low = np.asarray(bounds[0]) if bounds else np.min(lows, 0) if lows else np.zeros(a)
    high = np.asarray(bounds[1]) if bounds else np.max(highs, 0) if highs else np.zeros(a)
    episode_list = [from_dict(EpisodeEntry, e, f"{path}: episode entry") for e in entries]
    write_manifest(path, Manifest(
        env_id="", env_kwargs={}, action_low=low.astype(float).tolist(), action_high=high.astype(float).tolist(),
        action_dim=int(a), state_dim=int(p), proprio_dims=list(range(p)),
        state_labels=[f"proprio{i}" for i in range(p)], frame_skip=1, fps=float(fps),
        resolution=[int(n) for n in first["frames"].shape[1:3]], episodes=len(entries),
        frames=int(sum(e.steps + 1 for e in episode_list)), policy="recorded", episode_list=episode_list,
        source=source or {}))
    return len(entries)
