"""Dataset formats users have, behind one reader/writer registry, and their conversion to this project's folders.

Formats (``dataset_format=``; ``auto`` detects from the layout):
    worldmodel       this project's folders (manifest.json + episodes/*.mp4|npz)
    lerobot          LeRobot folders, v2.x and v3.0 layouts (meta/info.json); written as lerobot-v2.1 / lerobot-v3.0
    hdf5-robomimic   one HDF5 file with data/demo_<i>/{obs/<camera>, actions, obs/<proprio>}
    hdf5-episodes    a folder of HDF5 files, one per episode: pixels, action, proprio

``as_native(path)`` gives a folder every command reads: the path itself for ours, else a converted copy beside the
source (``<source>.wm/``), made once and reused while the source files and the key map are unchanged. Every entry
point also takes a hub id (``lerobot/pusht``, :mod:`worldmodel.data.hub`) in place of a path.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from worldmodel.data import hub
from worldmodel.data.formats import hdf5, lerobot
from worldmodel.data.formats.common import KeyMap, SourceInfo, check_episode
from worldmodel.data.formats.native import inspect_native, is_native, read_native, write_native
from worldmodel.utils.atomic import write_json

READ_FORMATS = ("worldmodel", "lerobot", "hdf5-robomimic", "hdf5-episodes")
WRITE_FORMATS = ("worldmodel", "lerobot-v2.1", "lerobot-v3.0", "hdf5-robomimic", "hdf5-episodes")


def detect(path: str | Path, fmt: str = "auto") -> str:
    """The format of the dataset at ``path`` (``fmt`` other than auto is checked against the known ones)."""
    path = Path(path)
    if fmt != "auto":
        if fmt not in READ_FORMATS:
            raise ValueError(f"dataset_format={fmt!r}; expected auto or one of {list(READ_FORMATS)}")
        return fmt
    if not path.exists():
        raise FileNotFoundError(f"dataset {path}: no such file or folder")
    if is_native(path):
        return "worldmodel"
    if lerobot.is_lerobot(path):
        return "lerobot"
    if path.is_file() and hdf5.is_robomimic(path):
        return "hdf5-robomimic"
    if hdf5.episode_files(path):
        return "hdf5-episodes"
    raise ValueError(f"dataset {path}: not a known layout (a worldmodel folder with manifest.json, a LeRobot folder "
                     f"with meta/info.json, a robomimic HDF5 file, or a folder of per-episode HDF5 files)")


def detect_or_none(path: str | Path) -> str | None:
    """``detect`` that answers None for a path of no known layout."""
    try:
        return detect(path)
    except (ValueError, FileNotFoundError):
        return None


def read(path: str | Path, fmt: str = "auto", keys: KeyMap | None = None, frames: bool = True
         ) -> Iterator[tuple[int, dict]]:
    """(index, episode dict) of every episode (``formats.common`` describes the dict), checked."""
    path, keys = hub.resolve(path), keys or KeyMap()
    fmt = detect(path, fmt)
    reader = {"worldmodel": read_native, "lerobot": lerobot.read_episodes, "hdf5-robomimic": hdf5.read_robomimic,
              "hdf5-episodes": hdf5.read_episode_files}[fmt]
    for i, ep in reader(path, keys, frames):
        yield i, (check_episode(ep, f"{path} episode {i}") if frames else ep)


def inspect(path: str | Path, fmt: str = "auto", keys: KeyMap | None = None) -> SourceInfo:
    """Metadata without decoding frames."""
    path, keys = hub.resolve(path), keys or KeyMap()
    fmt = detect(path, fmt)
    return {"worldmodel": inspect_native, "lerobot": lerobot.inspect, "hdf5-robomimic": hdf5.inspect,
            "hdf5-episodes": hdf5.inspect}[fmt](path, keys)


def write(path: str | Path, episodes: Iterator[dict], fmt: str, fps: float, source: dict | None = None,
          bounds: tuple[list, list] | None = None) -> int:
    """Write episodes in ``fmt`` (one of WRITE_FORMATS); returns the episode count. ``bounds``: the action space's
    (low, high) when known, recorded so that a conversion keeps them (else readers take the data's range)."""
    path = Path(path)
    if fmt == "worldmodel":
        return write_native(path, episodes, fps, source, bounds)
    if fmt.startswith("lerobot"):
        return lerobot.write(path, episodes, fps, fmt.removeprefix("lerobot-"), bounds)
    if fmt == "hdf5-robomimic":
        return hdf5.write_robomimic(path, episodes, fps, bounds)
    if fmt == "hdf5-episodes":
        return hdf5.write_episode_files(path, episodes, fps, bounds)
    raise ValueError(f"to={fmt!r}; expected one of {list(WRITE_FORMATS)}")


def convert(src: str | Path, dst: str | Path, to: str, fmt: str = "auto", keys: KeyMap | None = None) -> int:
    """Convert the dataset at ``src`` into ``to`` at ``dst`` (written to a temp name, renamed when complete)."""
    src, dst = hub.resolve(src), Path(dst)
    info = inspect(src, fmt, keys)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    episodes = (ep for _, ep in read(src, detect(src, fmt), keys))
    n = write(tmp, episodes, to, info.fps, {"format": info.format, "path": str(src), "keys": info.keys},
              (info.action_low, info.action_high) if info.action_low else None)
    if dst.exists():
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    os.replace(tmp, dst)
    return n


def source_fingerprint(path: Path, keys: KeyMap) -> str:
    """Hash of the key map and of (name, size, mtime) of every file under ``path``."""
    h = hashlib.sha1(json.dumps(vars(keys), sort_keys=True).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(path.parent)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def as_native(path: str | Path, fmt: str = "auto", keys: KeyMap | None = None) -> Path:
    """A worldmodel folder with the dataset at ``path``: itself, or its converted copy ``<path>.wm``."""
    path, keys = hub.resolve(path).resolve(), keys or KeyMap()
    if detect(path, fmt) == "worldmodel":
        return path
    out = hub.converted_copy(path)
    fp = source_fingerprint(path, keys)
    marker = out / "source.json"
    if marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fp:
        return out
    try:
        convert(path, out, "worldmodel", fmt, keys)
        write_json(marker, {"path": str(path), "fingerprint": fp})
    except PermissionError as e:
        raise ValueError(f"dataset {path}: cannot write its converted copy {out} ({e.strerror}); convert it where you "
                         f"can write: wm data convert dataset={path} to=worldmodel output=PATH") from e
    return out


__all__ = ["KeyMap", "SourceInfo", "READ_FORMATS", "WRITE_FORMATS", "detect", "detect_or_none", "read", "inspect",
           "write", "convert", "as_native"]
