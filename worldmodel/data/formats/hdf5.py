"""HDF5 datasets, read and written with h5py: robomimic-style files and folders of one file per episode.

robomimic (one file): ``data/demo_<i>/obs/<camera>`` uint8 (N, H, W, 3), ``data/demo_<i>/actions`` (N, A),
``data/demo_<i>/obs/<proprio keys>`` (N, ...); optional ``next_obs/<camera>`` (the frame after each action: its last
frame completes the episode), ``rewards``, ``dones``; ``data`` attrs ``fps`` (or ``env_args``) when known.
Per-episode (DINO-WM / LeWorldModel style): a folder of ``*.h5``/``*.hdf5`` files, each holding ``pixels``
(N, H, W, 3), ``action`` (N or N-1, A) and optionally ``proprio`` (N, P) (names set by the key map).
Frames are stored as arrays (read directly, no video codec); lengths and shapes come from the datasets' headers.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from worldmodel.data.formats.common import (
    KeyMap,
    SourceInfo,
    action_scan,
    choose_keys,
    pad_per_frame,
    proprio_keys,
    split_per_frame,
)

SUFFIXES = (".h5", ".hdf5")
DEFAULT_FPS = 10.0  # when a file does not say


def is_robomimic(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file with robomimic's data/demo_<i> groups."""
    if not (path.is_file() and path.suffix in SUFFIXES):
        return False
    with h5py.File(path, "r") as f:
        return "data" in f and any(k.startswith("demo_") for k in f["data"].keys())


def episode_files(path: Path) -> list[Path]:
    """The HDF5 files of a one-file-per-episode folder, sorted ([] for anything else)."""
    return sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) if path.is_dir() else []


def _demos(f: h5py.File) -> list[str]:
    return sorted(f["data"].keys(), key=lambda k: int(re.sub(r"\D", "", k) or 0))


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from e


def _robomimic_keys(group: h5py.Group, keys: KeyMap, where: str) -> tuple[str, str, list[str]]:
    obs = group["obs"]
    images = [k for k, d in obs.items() if d.ndim == 4 and d.dtype == np.uint8]
    names = set(obs) | {k for k in group if k != "obs"}  # cameras and proprio under obs/, actions beside it
    image, action, proprio = choose_keys(keys, images, names, "actions", ["proprio"], where, "dataset")
    if image not in obs or action in obs or any(k not in obs for k in proprio):
        raise ValueError(f"{where}: cameras and proprio are read from obs/, actions beside obs/ (image {image!r}, "
                         f"action {action!r}, proprio {proprio})")
    return image, action, proprio


def _flat(d) -> np.ndarray:
    a = np.asarray(d, dtype=np.float32)
    return a.reshape(len(a), -1)


def read_robomimic(path: Path, keys: KeyMap, frames: bool = True) -> Iterator[tuple[int, dict]]:
    """(index, episode dict) of a robomimic file, demos in numeric order."""
    with _open(path) as f:
        padded = bool(f["data"].attrs.get("wm_padded_last_action", False))
        for i, name in enumerate(_demos(f)):
            g = f["data"][name]
            where = f"{path}:data/{name}"
            image, action, proprio = _robomimic_keys(g, keys, where)
            acts = _flat(g[action])
            prop = np.concatenate([_flat(g["obs"][k]) for k in proprio], 1) if proprio else None
            nxt = "next_obs" in g and image in g["next_obs"]
            if frames:
                obs = np.asarray(g["obs"][image])
                if nxt:  # obs + the frame after the last action: N + 1 frames for N actions
                    obs = np.concatenate([obs, np.asarray(g["next_obs"][image][-1:])])
                    if prop is not None:
                        last = [_flat(g["next_obs"][k][-1:]) for k in proprio if k in g["next_obs"]]
                        prop = np.concatenate([prop, np.concatenate(last, 1) if len(last) == len(proprio)
                                               else prop[-1:]])
                ep = {"frames": obs, "actions": split_per_frame(obs, acts, padded or not nxt, where)}
            else:
                ep = {"actions": acts if nxt else acts[:-1]}
            n = len(ep["actions"]) + 1
            ep["proprio"] = prop[:n] if prop is not None else np.zeros((n, 0), np.float32)
            yield i, ep


def read_episode_files(path: Path, keys: KeyMap, frames: bool = True) -> Iterator[tuple[int, dict]]:
    """(index, episode dict) of a folder of per-episode HDF5 files, in file-name order."""
    image, action = keys.image or "pixels", keys.action or "action"
    for i, file in enumerate(episode_files(path)):
        with _open(file) as f:
            for k in (image, action):
                if k not in f:
                    raise ValueError(f"{file}: no dataset {k!r} (datasets: {sorted(f.keys())}; set dataset_keys)")
            proprio = proprio_keys(keys.proprio, ["proprio"] if "proprio" in f else [])
            acts = _flat(f[action])
            n_frames = f[image].shape[0]
            padded = bool(f.attrs.get("wm_padded_last_action", False))
            ep = {}
            if frames:
                ep["frames"] = np.asarray(f[image])
                ep["actions"] = split_per_frame(ep["frames"], acts, padded, str(file))
            else:
                ep["actions"] = acts[: n_frames - 1]
            n = len(ep["actions"]) + 1
            ep["proprio"] = np.concatenate([_flat(f[k])[:n] for k in proprio], 1) if proprio else \
                np.zeros((n, 0), np.float32)
            yield i, ep


def inspect(path: Path, keys: KeyMap) -> SourceInfo:
    """Lengths, keys, shapes, dtypes and action ranges from the datasets (frames are not read)."""
    robo = path.is_file()
    reader = read_robomimic if robo else read_episode_files
    lengths, lows, highs, problems = action_scan(reader(path, keys, frames=False))
    first = path if robo else episode_files(path)[0]
    with _open(first) as f:
        g = f["data"][_demos(f)[0]] if robo else f
        if robo:
            image, action, proprio = _robomimic_keys(g, keys, str(first))
            fps = float(f["data"].attrs.get("fps", DEFAULT_FPS))
            ds = {image: g["obs"][image], action: g[action], **{k: g["obs"][k] for k in proprio}}
            names = [f"obs/{k}" for k in g["obs"]] + [k for k in g if k != "obs"]
        else:
            image, action = keys.image or "pixels", keys.action or "action"
            proprio = proprio_keys(keys.proprio, ["proprio"] if "proprio" in f else [])
            fps = float(f.attrs.get("fps", DEFAULT_FPS))
            ds = {k: f[k] for k in [image, action, *proprio]}
            names = list(f.keys())
        attrs = f["data"].attrs if robo else f.attrs
        if "action_low" in attrs:  # the action space's bounds, recorded by our writer
            lows, highs = [np.asarray(attrs["action_low"])], [np.asarray(attrs["action_high"])]
        shapes = {k: list(d.shape[1:]) for k, d in ds.items()}
        dtypes = {k: str(d.dtype) for k, d in ds.items()}
    return SourceInfo(format="hdf5-robomimic" if robo else "hdf5-episodes", path=str(path), episodes=len(lengths),
                      lengths=lengths, fps=fps, keys={"image": image, "action": action, "proprio": ",".join(proprio)},
                      shapes=shapes, dtypes=dtypes, action_low=np.min(lows, 0).tolist() if lows else [],
                      action_high=np.max(highs, 0).tolist() if highs else [], all_keys=sorted(names),
                      problems=problems)


def write_robomimic(path: Path, episodes: Iterator[dict], fps: float, bounds: tuple[list, list] | None = None) -> int:
    """One robomimic-style file: obs/image (T+1 frames), actions padded to T+1 rows, obs/proprio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["fps"], data.attrs["wm_padded_last_action"] = fps, True
        if bounds:
            data.attrs["action_low"], data.attrs["action_high"] = bounds
        for i, ep in enumerate(episodes):
            g = data.create_group(f"demo_{i}")
            g.create_dataset("obs/image", data=ep["frames"], compression="gzip", compression_opts=1)
            g.create_dataset("obs/proprio", data=ep["proprio"])
            g.create_dataset("actions", data=pad_per_frame(ep["actions"]))
            g.attrs["num_samples"] = len(ep["frames"])
            n += 1
        data.attrs["total"] = n
    return n


def write_episode_files(path: Path, episodes: Iterator[dict], fps: float,
                        bounds: tuple[list, list] | None = None) -> int:
    """A folder of ``episode_XXXXXX.h5``: pixels (T+1 frames), action (T rows), proprio (T+1 rows)."""
    path.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, ep in enumerate(episodes):
        with h5py.File(path / f"episode_{i:06d}.h5", "w") as f:
            f.attrs["fps"] = fps
            if bounds:
                f.attrs["action_low"], f.attrs["action_high"] = bounds
            f.create_dataset("pixels", data=ep["frames"], compression="gzip", compression_opts=1)
            f.create_dataset("action", data=ep["actions"])
            f.create_dataset("proprio", data=ep["proprio"])
        n += 1
    return n
