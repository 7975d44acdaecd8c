"""LeRobot dataset folders (v2.x and v3.0 layouts), read and written with pyarrow and decord; no lerobot import.

v2.x: ``meta/info.json`` (``codebase_version`` v2.0/v2.1, ``fps``, ``features``, ``data_path`` and ``video_path``
templates, ``chunks_size``), ``meta/episodes.jsonl``, one parquet file per episode
(``data/chunk-XXX/episode_XXXXXX.parquet``: ``action``, ``observation.state``, ``frame_index``, ...) and one mp4 per
episode and camera (``videos/chunk-XXX/<camera>/episode_XXXXXX.mp4``); cameras of dtype ``image`` are stored in the
parquet itself (encoded image bytes).
v3.0: many episodes per parquet file (``data/chunk-XXX/file-XXX.parquet``) and per mp4
(``videos/<camera>/chunk-XXX/file-XXX.mp4``), new files begun as files fill up or as a recording session resumes;
``meta/episodes/chunk-XXX/file-XXX.parquet`` (every one of them, read in order) says where each episode is (its
data and video file, ``dataset_from_index``/``dataset_to_index`` rows, ``videos/<camera>/from_timestamp``).
Rows are per frame: N frames and N actions per episode (see ``formats.common`` for the time-step convention).
Written videos are lossless RGB H.264 (``libx264rgb``, crf 0), so a round trip gives back the same frames.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

import imageio.v3 as iio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from worldmodel.data.episodes import read_video, write_video
from worldmodel.data.formats.common import (
    KeyMap,
    SourceInfo,
    action_scan,
    choose_keys,
    pad_per_frame,
    split_per_frame,
)
from worldmodel.utils.atomic import write_json, write_text

V2_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V3_DATA = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V3_EPISODES = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_IMAGE = "observation.image"


def is_lerobot(path: Path) -> bool:
    """Whether ``path`` is a LeRobot dataset folder (it has meta/info.json)."""
    return (path / "meta" / "info.json").is_file()


def read_info(root: Path) -> dict:
    """meta/info.json, checked for the fields the reader needs."""
    path = root / "meta" / "info.json"
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    for key in ("fps", "features"):
        if key not in info:
            raise ValueError(f"{path}: missing field {key!r}")
    return info


def version(info: dict) -> int:
    """The layout's major version: 2 (v2.x) or 3 (v3.0)."""
    return 3 if str(info.get("codebase_version", "v2.1")).startswith("v3") else 2


def resolve_keys(info: dict, keys: KeyMap, where: Path) -> tuple[str, str, list[str]]:
    """(image key, action key, proprio keys) from the key map and the features."""
    feats = info["features"]
    images = [k for k, f in feats.items() if f.get("dtype") in ("video", "image")]
    return choose_keys(keys, images, feats, "action", ["observation.state"], where, "feature")


def _table(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (listed by meta/)")
    return pq.read_table(path)


def _column(table, key: str) -> np.ndarray:
    """A list<float> (or scalar) column as float32 (rows, width), through arrow's flat values (no Python lists)."""
    col = table.column(key).combine_chunks()
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type):
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=np.float32).reshape(table.num_rows, -1)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(table.num_rows, -1)


def _episode_index(root: Path, info: dict) -> list[dict]:
    """[{episode_index, length, ...where}] of every episode the metadata lists, in order, without reading frames."""
    if version(info) == 3:
        files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise FileNotFoundError(f"{root / 'meta' / 'episodes'}: no chunk-*/file-*.parquet (a v3 LeRobot dataset "
                                    f"lists its episodes there)")
        return sorted((row for f in files for row in _table(f).to_pylist()), key=lambda r: int(r["episode_index"]))
    path = root / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a v2 LeRobot dataset lists its episodes there)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _episode_files(root: Path, info: dict, ep: dict, image: str) -> tuple[Path, Path | None]:
    """(data parquet, video file or None for image features) of one episode row of the metadata."""
    i, chunk = int(ep["episode_index"]), int(info.get("chunks_size", 1000))
    video = info["features"][image]["dtype"] == "video"
    if version(info) == 3:
        data = root / info.get("data_path", V3_DATA).format(chunk_index=ep["data/chunk_index"],
                                                             file_index=ep["data/file_index"])
        vid = root / info.get("video_path", V3_VIDEO).format(
            video_key=image, chunk_index=ep[f"videos/{image}/chunk_index"],
            file_index=ep[f"videos/{image}/file_index"]) if video else None
        return data, vid
    data = root / info.get("data_path", V2_DATA).format(episode_chunk=i // chunk, episode_index=i)
    vid = root / info.get("video_path", V2_VIDEO).format(episode_chunk=i // chunk, video_key=image,
                                                         episode_index=i) if video else None
    return data, vid


def _decode_images(column: list) -> np.ndarray:
    return np.stack([iio.imread(io.BytesIO(c["bytes"])) if isinstance(c, dict) else np.asarray(c) for c in column])


def read_episodes(root: Path, keys: KeyMap, frames: bool = True,
                  skip: frozenset[int] = frozenset()) -> Iterator[tuple[int, dict]]:
    """(episode index, episode dict) in order; ``frames=False`` leaves frames out (no decoding); episodes in
    ``skip`` are passed over."""
    info = read_info(root)
    image, action, proprio = resolve_keys(info, keys, root)
    v3 = version(info) == 3
    tables: dict[str, tuple] = {}  # the current many-episode data file: (table, first index, columns)
    decoded: dict[str, np.ndarray] = {}  # the one whole-file decode kept (videos decord cannot seek, e.g. AV1)
    for ep in _episode_index(root, info):
        i = int(ep["episode_index"])
        if i in skip:
            continue
        where, vid = _episode_files(root, info, ep, image)
        if v3:  # a file of many episodes: its columns converted once, episodes sliced out of them
            if str(where) not in tables:
                t = _table(where)
                tables.clear()
                tables[str(where)] = (t, int(t.column("index")[0].as_py()),
                                      {k: _column(t, k) for k in [action, *proprio]})
            full, first, cols = tables[str(where)]
            lo, n = int(ep["dataset_from_index"]) - first, int(ep["dataset_to_index"]) - int(ep["dataset_from_index"])
            table, arrays = full.slice(lo, n), {k: v[lo:lo + n] for k, v in cols.items()}
        else:
            table = _table(where)
            arrays = {k: _column(table, k) for k in [action, *proprio]}
        acts = arrays[action]
        prop = np.concatenate([arrays[k] for k in proprio], 1) if proprio else np.zeros((len(acts), 0), np.float32)
        out = {"proprio": prop}
        if frames:
            if vid is None:
                out["frames"] = _decode_images(table.column(image).to_pylist())
            elif v3:
                start = int(round(float(ep[f"videos/{image}/from_timestamp"]) * float(info["fps"])))
                out["frames"] = _file_frames(vid, start, len(acts), decoded)
            else:
                out["frames"] = read_video(vid)
            out["frames"] = np.ascontiguousarray(out["frames"][..., :3]).astype(np.uint8)
            out["actions"] = split_per_frame(out["frames"], acts, False, f"{where} episode {i}")
        else:
            out["actions"] = acts[:-1]
        yield i, out


def missing_files(root: Path, keys: KeyMap) -> dict[int, list[str]]:
    """{episode index: [missing data or video file, ...]} over the episodes the metadata lists."""
    info = read_info(root)
    image, _, _ = resolve_keys(info, keys, root)
    out = {}
    for ep in _episode_index(root, info):
        gone = [str(f.relative_to(root)) for f in _episode_files(root, info, ep, image) if f and not f.is_file()]
        if gone:
            out[int(ep["episode_index"])] = gone
    return out


def _file_frames(path: Path, start: int, n: int, decoded: dict) -> np.ndarray:
    """Frames start .. start+n-1 of a many-episode video: seeking with decord, else from one whole-file decode
    kept in ``decoded`` while the episodes of that file are read."""
    import decord

    if str(path) not in decoded:
        try:
            return decord.VideoReader(str(path), num_threads=1).get_batch(list(range(start, start + n))).asnumpy()
        except decord.DECORDError:
            decoded.clear()
            decoded[str(path)] = read_video(path)
    return decoded[str(path)][start:start + n]


def inspect(root: Path, keys: KeyMap) -> SourceInfo:
    """Episodes, lengths, keys, shapes and action ranges from meta/ and the parquet columns (no video decoding);
    problems name episodes whose files are missing and a count that differs from what meta/info.json declares."""
    info = read_info(root)
    image, action, proprio = resolve_keys(info, keys, root)
    missing = missing_files(root, keys)
    lengths, lows, highs, problems = action_scan(read_episodes(root, keys, frames=False, skip=frozenset(missing)))
    listed = len(lengths) + len(missing)
    if "total_episodes" in info and int(info["total_episodes"]) != listed:
        problems.insert(0, f"meta/info.json declares {info['total_episodes']} episodes, meta/ lists {listed}")
    problems += [f"episode {i}: missing {', '.join(files)}" for i, files in sorted(missing.items())]
    if "wm_action_bounds" in info:  # the action space's bounds, recorded by our writer
        lows, highs = [np.asarray(info["wm_action_bounds"]["low"])], [np.asarray(info["wm_action_bounds"]["high"])]
    feats = info["features"]
    shape = lambda k: list(feats[k].get("shape", []))  # noqa: E731
    return SourceInfo(
        format=f"lerobot-v{version(info)}", path=str(root), episodes=listed, lengths=lengths,
        fps=float(info["fps"]), keys={"image": image, "action": action, "proprio": ",".join(proprio)},
        shapes={k: shape(k) for k in [image, action, *proprio]},
        dtypes={k: str(feats[k].get("dtype")) for k in [image, action, *proprio]},
        action_low=np.min(lows, 0).tolist() if lows else [], action_high=np.max(highs, 0).tolist() if highs else [],
        all_keys=sorted(feats), problems=problems)


def _features(h: int, w: int, a: int, p: int, fps: float) -> dict:
    video = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
             "info": {"video.fps": fps, "video.height": h, "video.width": w, "video.channels": 3,
                      "video.codec": "h264", "video.pix_fmt": "rgb24", "has_audio": False}}
    scalar = lambda dtype: {"dtype": dtype, "shape": [1], "names": None}  # noqa: E731
    return {DEFAULT_IMAGE: video, "action": {"dtype": "float32", "shape": [a], "names": None},
            "observation.state": {"dtype": "float32", "shape": [p], "names": None},
            "timestamp": scalar("float32"), "frame_index": scalar("int64"), "episode_index": scalar("int64"),
            "index": scalar("int64"), "task_index": scalar("int64")}


def _rows(ep: dict, i: int, start: int, fps: float) -> dict:
    n = len(ep["frames"])
    return {"action": pad_per_frame(ep["actions"]).tolist(), "observation.state": ep["proprio"].tolist(),
            "timestamp": (np.arange(n) / fps).astype(np.float32).tolist(), "frame_index": list(range(n)),
            "episode_index": [i] * n, "index": list(range(start, start + n)), "task_index": [0] * n}


def write(root: Path, episodes: Iterator[dict], fps: float, layout: str = "v2.1",
          bounds: tuple[list, list] | None = None) -> int:
    """Write episodes as a LeRobot folder (``layout`` v2.1 or v3.0); returns the episode count."""
    root.mkdir(parents=True, exist_ok=True)
    v3 = layout.startswith("v3")
    meta, rows_all, frames_all, start, first = [], {}, [], 0, None
    for i, ep in enumerate(episodes):
        first = first or ep
        n = len(ep["frames"])
        rows = _rows(ep, i, start, fps)
        if v3:
            for k, v in rows.items():
                rows_all.setdefault(k, []).extend(v)
            frames_all.append(ep["frames"])
            meta.append({"episode_index": i, "length": n, "tasks": [""], "data/chunk_index": 0, "data/file_index": 0,
                         "dataset_from_index": start, "dataset_to_index": start + n,
                         f"videos/{DEFAULT_IMAGE}/chunk_index": 0, f"videos/{DEFAULT_IMAGE}/file_index": 0,
                         f"videos/{DEFAULT_IMAGE}/from_timestamp": start / fps,
                         f"videos/{DEFAULT_IMAGE}/to_timestamp": (start + n) / fps})
        else:
            path = root / V2_DATA.format(episode_chunk=0, episode_index=i)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(rows), path)
            vid = root / V2_VIDEO.format(episode_chunk=0, video_key=DEFAULT_IMAGE, episode_index=i)
            vid.parent.mkdir(parents=True, exist_ok=True)
            write_video(vid, ep["frames"], fps)
            meta.append({"episode_index": i, "tasks": [""], "length": n})
        start += n
    if first is None:
        raise ValueError(f"{root}: no episode to write")
    if v3:
        path = root / V3_DATA.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(rows_all), path)
        vid = root / V3_VIDEO.format(video_key=DEFAULT_IMAGE, chunk_index=0, file_index=0)
        vid.parent.mkdir(parents=True, exist_ok=True)
        write_video(vid, np.concatenate(frames_all), fps)
        episodes_file = root / V3_EPISODES.format(chunk_index=0, file_index=0)
        episodes_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(meta), episodes_file)
    else:
        write_text(root / "meta" / "episodes.jsonl", "".join(json.dumps(m) + "\n" for m in meta))
        write_text(root / "meta" / "tasks.jsonl", json.dumps({"task_index": 0, "task": ""}) + "\n")
    h, w = first["frames"].shape[1:3]
    write_json(root / "meta" / "info.json", {
        "codebase_version": "v3.0" if v3 else "v2.1", "robot_type": None, "total_episodes": len(meta),
        "total_frames": start, "total_tasks": 1, "chunks_size": 1000, "fps": fps, "splits": {"train": f"0:{len(meta)}"},
        "data_path": V3_DATA if v3 else V2_DATA, "video_path": V3_VIDEO if v3 else V2_VIDEO,
        "features": _features(h, w, first["actions"].shape[1], first["proprio"].shape[1], fps),
        "wm_padded_last_action": True,
        **({"wm_action_bounds": {"low": list(map(float, bounds[0])), "high": list(map(float, bounds[1]))}}
           if bounds else {})})
    return len(meta)
