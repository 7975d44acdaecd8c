"""Bring your own data: every layout written by the formats' own libraries (pyarrow, h5py) reads back the same."""
import io
import json
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worldmodel.data import formats
from worldmodel.data.formats import KeyMap
from worldmodel.data.rollouts import RolloutDataset

LENGTHS = (7, 11, 5)  # steps T per episode


def episodes(seed: int = 0) -> list[dict]:
    """Episodes with structured frames (a square moving with the action), float actions and proprioception."""
    rng = np.random.default_rng(seed)
    out = []
    for T in LENGTHS:
        frames = rng.integers(0, 256, (T + 1, 32, 32, 3), dtype=np.uint8)
        for t in range(T + 1):
            frames[t, 4:12, t: t + 8] = (255, 0, 0)
        out.append({"frames": frames, "actions": rng.uniform(-1, 1, (T, 2)).astype(np.float32),
                    "proprio": rng.normal(size=(T + 1, 3)).astype(np.float32)})
    return out


def assert_same(got: list[dict], want: list[dict]):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for key in ("frames", "actions", "proprio"):
            assert g[key].shape == w[key].shape, key
            assert np.array_equal(g[key], w[key]), key


def read_all(path, fmt="auto", keys=None) -> list[dict]:
    return [ep for _, ep in formats.read(path, fmt, keys)]


@pytest.mark.parametrize("fmt", ["worldmodel", "lerobot-v2.1", "lerobot-v3.0", "hdf5-robomimic", "hdf5-episodes"])
def test_round_trip_per_layout(tmp_path, fmt):
    """write, detect, read, window, convert, read again: identical frames, actions and proprioception."""
    eps = episodes()
    path = tmp_path / ("data.hdf5" if fmt == "hdf5-robomimic" else "data")
    assert formats.write(path, iter(eps), fmt, fps=10) == len(eps)
    assert formats.detect(path) == fmt.split("-v")[0]
    assert_same(read_all(path), eps)
    info = formats.inspect(path)
    assert info.episodes == 3 and info.lengths == list(LENGTHS) and info.fps == 10
    assert np.allclose(info.action_low, np.min([e["actions"].min(0) for e in eps], 0))
    native = formats.as_native(path)
    assert formats.detect(native) == "worldmodel"
    assert_same(read_all(native), eps)
    windows = RolloutDataset(native, num_frames=3, frame_skip=2)  # the windowed reader every trainer uses
    assert len(windows) == sum(T - 4 + 1 for T in LENGTHS)
    assert formats.as_native(path) == native  # reused while the source is unchanged
    for to in ("lerobot-v3.0", "hdf5-episodes"):  # and on to another layout
        assert formats.convert(native, tmp_path / f"again-{to}", to) == 3
        assert_same(read_all(tmp_path / f"again-{to}"), eps)


def test_lerobot_image_features_and_key_map(tmp_path):
    """A v2.1 folder whose camera is stored in the parquet as encoded images (dtype image), two cameras, a
    proprio key chosen by the key map."""
    eps = episodes(1)
    root = tmp_path / "lr"
    (root / "meta").mkdir(parents=True)
    feats = {"observation.images.top": {"dtype": "image", "shape": [32, 32, 3]},
             "observation.images.wrist": {"dtype": "image", "shape": [32, 32, 3]},
             "action": {"dtype": "float32", "shape": [2]}, "observation.state": {"dtype": "float32", "shape": [3]},
             "observation.joints": {"dtype": "float32", "shape": [3]}}
    (root / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 15, "features": feats,
                                                         "chunks_size": 1000}))
    lines = []
    for i, ep in enumerate(eps):
        png = [{"bytes": iio.imwrite("<bytes>", f, extension=".png"), "path": None} for f in ep["frames"]]
        acts = np.concatenate([ep["actions"], np.full((1, 2), 9.0, np.float32)])  # the last action: after the end
        table = pa.table({"observation.images.top": png, "observation.images.wrist": png[::-1],
                          "action": acts.tolist(), "observation.state": np.zeros_like(ep["proprio"]).tolist(),
                          "observation.joints": ep["proprio"].tolist()})
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / f"data/chunk-000/episode_{i:06d}.parquet")
        lines.append(json.dumps({"episode_index": i, "length": len(ep["frames"])}))
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    keys = KeyMap(image="observation.images.top", proprio="observation.joints")
    assert_same(read_all(root, keys=keys), eps)
    info = formats.inspect(root, keys=keys)
    assert info.format == "lerobot-v2" and info.keys["proprio"] == "observation.joints" and info.fps == 15
    with pytest.raises(ValueError, match="no camera 'cam'"):
        read_all(root, keys=KeyMap(image="cam"))
    assert iio.imread(io.BytesIO(pq.read_table(root / "data/chunk-000/episode_000000.parquet")
                                  .column("observation.images.top")[0].as_py()["bytes"])).shape == (32, 32, 3)


def test_robomimic_with_next_obs(tmp_path):
    """robomimic's own convention: obs and next_obs, N actions for N + 1 frames, proprio split over keys."""
    eps = episodes(2)
    path = tmp_path / "demo.hdf5"
    with h5py.File(path, "w") as f:
        for i, ep in enumerate(eps):
            g = f.create_group(f"data/demo_{i}")
            g["obs/agentview_image"], g["next_obs/agentview_image"] = ep["frames"][:-1], ep["frames"][1:]
            g["obs/eef_pos"], g["next_obs/eef_pos"] = ep["proprio"][:-1, :2], ep["proprio"][1:, :2]
            g["obs/gripper"], g["next_obs/gripper"] = ep["proprio"][:-1, 2:], ep["proprio"][1:, 2:]
            g["actions"] = ep["actions"]
    keys = KeyMap(proprio="eef_pos,gripper")
    assert_same(read_all(path, keys=keys), eps)
    assert formats.inspect(path, keys=keys).keys["image"] == "agentview_image"


def test_malformed_data_names_file_episode_and_key(tmp_path):
    eps = episodes()
    path = tmp_path / "eps"
    formats.write(path, iter(eps), "hdf5-episodes", fps=10)
    with h5py.File(path / "episode_000001.h5", "a") as f:
        del f["action"]
        f["action"] = np.zeros((3, 2), np.float32)  # wrong length
    with pytest.raises(ValueError, match=r"episode_000001.h5: 12 frames but 3 actions"):
        read_all(path)
    with h5py.File(path / "episode_000001.h5", "a") as f:
        del f["action"]
        f["action"] = np.full((11, 2), np.nan, np.float32)
    with pytest.raises(ValueError, match="episode 1: non-finite values in actions"):
        read_all(path)
    with pytest.raises(ValueError, match="no dataset 'obs'"):
        read_all(path, keys=KeyMap(image="obs"))
    with pytest.raises(ValueError, match="not a known layout"):
        formats.detect(tmp_path)


def test_conversion_keeps_action_bounds(tmp_path):
    eps = episodes()
    formats.write(tmp_path / "ours", iter(eps), "worldmodel", fps=10, bounds=([-2.0, -3.0], [2.0, 3.0]))
    for to in ("lerobot-v2.1", "hdf5-robomimic", "hdf5-episodes"):
        dst = tmp_path / (to + (".hdf5" if to == "hdf5-robomimic" else ""))
        formats.convert(tmp_path / "ours", dst, to)
        back = json.loads((formats.as_native(dst) / "manifest.json").read_text())
        assert back["action_low"] == [-2.0, -3.0] and back["action_high"] == [2.0, 3.0], to


def test_cli_end_to_end_same_figures_in_every_layout(tmp_path):
    """collect -> convert to LeRobot and HDF5 with `wm data` -> train-ac and drift on each: identical figures."""
    from helpers import run_json

    from worldmodel.cli import main

    data = tmp_path / "native"
    assert main(["collect", "preset=smoke", "resolution=32", "episodes=6", f"out_dir={data}"]) == 0
    assert main(["data", "convert", f"dataset={data}", "to=lerobot-v3.0", f"output={tmp_path / 'lr'}"]) == 0
    assert main(["data", "convert", f"dataset={data}", "to=hdf5-robomimic", f"output={tmp_path / 'demo.hdf5'}"]) == 0
    assert main(["data", "inspect", f"dataset={tmp_path / 'demo.hdf5'}", f"out_dir={tmp_path / 'insp'}"]) == 0
    enc = tmp_path / "enc"
    run_json("pretrain", ["preset=smoke", f"out_dir={enc}", "probe.enabled=false",
                             f"data.synthetic_dir={tmp_path / 'synth'}"])
    figures = {}
    for name, path in (("native", data), ("lerobot", tmp_path / "lr"), ("hdf5", tmp_path / "demo.hdf5")):
        ac = run_json("train-ac", ["preset=smoke", "bootstrap=false", f"dataset={path}",
                                      f"encoder_checkpoint={enc / 'checkpoint.pt'}", f"out_dir={tmp_path / name}"])
        drift = run_json("drift", ["preset=smoke", "bootstrap=false", f"checkpoint={ac['checkpoint']}",
                                      f"out_dir={tmp_path / name / 'drift'}"])
        offline = run_json("eval-offline", ["preset=smoke", "bootstrap=false", f"checkpoint={ac['checkpoint']}",
                                               f"out_dir={tmp_path / name / 'offline'}"])
        figures[name] = (ac["final_loss"], ac["val_loss_tf"], drift["ratio_to_copy_last"], offline["action_error"],
                         offline["action_error_random"], offline["action_error_zero"])
    assert figures["native"] == figures["lerobot"] == figures["hdf5"], figures


@pytest.mark.parametrize("layout", ["lerobot-v2.1", "lerobot-v3.0"])
def test_lerobot_av1_videos_decode(tmp_path, layout):
    """LeRobot records AV1 by default, which decord cannot decode: the ffmpeg fallback reads it (lossy codec, so
    the frames are close, not equal)."""
    import subprocess

    import imageio_ffmpeg

    eps = episodes(3)
    for ep in eps:  # smooth frames an AV1 encoder keeps well: a gradient and the moving square
        ep["frames"][:] = np.linspace(0, 200, 32, dtype=np.uint8)[None, None, :, None]
        for t in range(len(ep["frames"])):
            ep["frames"][t, 8:16, t: t + 8] = (255, 0, 0)
    root = tmp_path / "lr"
    formats.write(root, iter(eps), layout, fps=10)
    for mp4 in root.rglob("*.mp4"):  # re-encode every video as LeRobot does
        av1 = mp4.with_suffix(".av1.mp4")
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(mp4), "-c:v",
                        "libsvtav1", "-crf", "20", "-pix_fmt", "yuv420p", str(av1)], check=True, capture_output=True)
        av1.replace(mp4)
    got = read_all(root)
    for g, w in zip(got, eps):
        assert g["frames"].shape == w["frames"].shape and np.array_equal(g["actions"], w["actions"])
        assert np.abs(g["frames"].astype(int) - w["frames"]).mean() < 8


def _lerobot_v3_many_files(root, eps: list[dict], fps: float = 10) -> None:
    """A LeRobot v3.0 folder laid out as lerobot writes a dataset recorded in two sessions: episodes' metadata in
    two files (the second begun by the resumed session), data in two parquet files and videos in two files of two
    chunks, with data and video files breaking at different episodes."""
    from worldmodel.data.episodes import write_video
    from worldmodel.data.formats.lerobot import DEFAULT_IMAGE, V3_DATA, V3_EPISODES, V3_VIDEO, _features, _rows

    data_file = {0: (0, 0), 1: (0, 0), 2: (0, 1), 3: (0, 1), 4: (0, 1)}  # episode -> (chunk, file)
    video_file = {0: (0, 0), 1: (0, 0), 2: (0, 0), 3: (1, 0), 4: (1, 0)}
    meta_file = {0: (0, 0), 1: (0, 0), 2: (0, 0), 3: (0, 1), 4: (0, 1)}
    rows, frames, meta, start, vstart = {}, {}, {}, 0, {}
    for i, ep in enumerate(eps):
        n = len(ep["frames"])
        for k, v in _rows(ep, i, start, fps).items():
            rows.setdefault(data_file[i], {}).setdefault(k, []).extend(v)
        frames.setdefault(video_file[i], []).append(ep["frames"])
        offset = vstart.get(video_file[i], 0)
        vstart[video_file[i]] = offset + n
        meta.setdefault(meta_file[i], []).append({
            "episode_index": i, "length": n, "tasks": [""], "dataset_from_index": start, "dataset_to_index": start + n,
            "data/chunk_index": data_file[i][0], "data/file_index": data_file[i][1],
            f"videos/{DEFAULT_IMAGE}/chunk_index": video_file[i][0],
            f"videos/{DEFAULT_IMAGE}/file_index": video_file[i][1],
            f"videos/{DEFAULT_IMAGE}/from_timestamp": offset / fps,
            f"videos/{DEFAULT_IMAGE}/to_timestamp": (offset + n) / fps,
            "meta/episodes/chunk_index": meta_file[i][0], "meta/episodes/file_index": meta_file[i][1]})
        start += n
    for (c, f), cols in rows.items():
        path = root / V3_DATA.format(chunk_index=c, file_index=f)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), path)
    for (c, f), chunks in frames.items():
        path = root / V3_VIDEO.format(video_key=DEFAULT_IMAGE, chunk_index=c, file_index=f)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, np.concatenate(chunks), fps)
    for (c, f), entries in meta.items():
        path = root / V3_EPISODES.format(chunk_index=c, file_index=f)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(entries), path)
    (root / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "total_episodes": len(eps), "total_frames": start, "chunks_size": 1000,
        "fps": fps, "data_path": V3_DATA, "video_path": V3_VIDEO,
        "features": _features(32, 32, eps[0]["actions"].shape[1], eps[0]["proprio"].shape[1], fps)}))


def test_lerobot_v3_dataset_over_several_files_is_read_whole(tmp_path):
    eps = episodes() + episodes(seed=1)[:2]  # 5 episodes
    root = tmp_path / "lr"
    _lerobot_v3_many_files(root, eps)
    assert_same(read_all(root), eps)  # every episode: frames, actions and proprioception
    info = formats.inspect(root)
    assert info.episodes == 5 and info.lengths == [len(e["actions"]) for e in eps] and info.problems == []
    windows = RolloutDataset(formats.as_native(root), num_frames=3, frame_skip=1)
    assert len(windows) == sum(len(e["actions"]) - 2 + 1 for e in eps)


def test_lerobot_inspect_says_what_is_missing(tmp_path):
    eps = episodes() + episodes(seed=1)[:2]
    root = tmp_path / "lr"
    _lerobot_v3_many_files(root, eps)
    (root / "videos" / "observation.image" / "chunk-001" / "file-000.mp4").unlink()
    info_path = root / "meta" / "info.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "total_episodes": 6}))
    info = formats.inspect(root)
    assert info.episodes == 5 and len(info.lengths) == 3
    assert info.problems[0] == "meta/info.json declares 6 episodes, meta/ lists 5"
    assert [p.split(":")[0] for p in info.problems[1:]] == ["episode 3", "episode 4"]
    assert "videos/observation.image/chunk-001/file-000.mp4" in info.problems[1]


def test_lerobot_v2_dataset_over_several_chunks_is_read_whole(tmp_path):
    eps = episodes() + episodes(seed=1)[:2]
    root = tmp_path / "lr"
    formats.write(root, iter(eps), "lerobot-v2.1", fps=10)
    for i in range(len(eps)):  # chunks of 2 episodes, as lerobot lays out a dataset with chunks_size 2
        for old in (root / f"data/chunk-000/episode_{i:06d}.parquet",
                    root / f"videos/chunk-000/observation.image/episode_{i:06d}.mp4"):
            new = Path(str(old).replace("chunk-000", f"chunk-{i // 2:03d}"))
            new.parent.mkdir(parents=True, exist_ok=True)
            old.rename(new)
    info_path = root / "meta" / "info.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "chunks_size": 2}))
    assert_same(read_all(root), eps)
    assert formats.inspect(root).problems == []
