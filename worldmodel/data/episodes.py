"""Episode dataset format: writer, manifest, validation, episode loading (torch-free, so collection
workers start fast). The windowed torch reader is ``worldmodel.data.rollouts.RolloutDataset``; see that
module for the layout, the video settings and the time-step convention.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from worldmodel.contracts.manifest import MANIFEST, Manifest
from worldmodel.utils.atomic import fsync_path, write_json

EPISODE_DIR = "episodes"
ACTION_TOL = 1e-4  # actions may exceed the bounds by this much (float32 rounding)


class EpisodeError(ValueError):
    """An episode file is inconsistent with the manifest (shapes, action bounds)."""


def episode_paths(root: str | Path, index: int) -> tuple[Path, Path]:
    """(mp4, npz) paths of episode ``index``."""
    stem = Path(root) / EPISODE_DIR / f"ep_{index:06d}"
    return stem.with_suffix(".mp4"), stem.with_suffix(".npz")


# ---- video ----------------------------------------------------------------------------------------
class VideoWriter:
    """Stream uint8 (H, W, 3) frames into H.264 RGB (``libx264rgb``) at ``path`` (any suffix; mp4 container).

    The ffmpeg process starts on the first frame, so during collection its start-up (~75 ms, most of the
    cost of a short episode) overlaps the rollout instead of following it."""

    def __init__(self, path: str | Path, fps: float, crf: int = 0):
        self.path, self.fps, self.crf = str(path), float(fps), int(crf)
        self._gen, self.size, self.count = None, None, 0

    def add(self, frame: np.ndarray) -> None:
        import imageio_ffmpeg

        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        if self._gen is None:
            self.size = frame.shape[:2]
            self._gen = imageio_ffmpeg.write_frames(
                self.path, (frame.shape[1], frame.shape[0]), fps=self.fps, codec="libx264rgb",
                pix_fmt_in="rgb24", pix_fmt_out="rgb24", quality=None, macro_block_size=1,
                ffmpeg_log_level="error",
                output_params=["-preset", "ultrafast", "-threads", "1", "-crf", str(self.crf), "-f", "mp4"])
            self._gen.send(None)
        elif frame.shape[:2] != self.size:
            raise ValueError(f"frame size {frame.shape[:2]} differs from the first frame's {self.size}")
        self._gen.send(np.ascontiguousarray(frame))
        self.count += 1

    def close(self) -> None:
        """Finish the file (waits for ffmpeg)."""
        if self._gen is not None:
            self._gen.close()
            self._gen = None


def write_video(path: str | Path, frames: np.ndarray, fps: float, crf: int = 0) -> None:
    """Encode uint8 frames (N, H, W, 3) at ``path`` (see VideoWriter)."""
    writer = VideoWriter(path, fps, crf)
    for f in np.asarray(frames):
        writer.add(f)
    writer.close()


def read_video(path: str | Path, indices: list[int] | None = None) -> np.ndarray:
    """Decode frames (all, or ``indices``) with decord -> uint8 (N, H, W, 3).

    Where decord cannot, the ffmpeg executable decodes the whole file instead (same frames): AV1 video (LeRobot's
    default codec; decord 0.6 has no AV1 decoder), and some frame widths (8, 12, 16, 24, 48, 72 among 8..128;
    dmlc/decord#336, a row-stride mismatch). Prefer H.264 and other widths (32, 64, 96, ...) for videos read often."""
    import decord

    try:
        vr = decord.VideoReader(str(path), num_threads=1)
        idx = list(range(len(vr))) if indices is None else [int(i) for i in indices]
        return vr.get_batch(idx).asnumpy()
    except decord.DECORDError:
        frames = _read_video_ffmpeg(path)
        return frames if indices is None else frames[[int(i) for i in indices]]


def _read_video_ffmpeg(path: str | Path) -> np.ndarray:
    import imageio_ffmpeg

    if not Path(path).is_file():
        raise FileNotFoundError(f"video {path}: no such file")
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    header = next(gen)  # the stream's facts (size, fps, ...)
    w, h = header["size"]
    return np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen])


DECORD_BAD_WIDTHS = (8, 12, 16, 24, 48, 72)  # widths decord 0.6 cannot decode (read_video falls back)


def video_length(path: str | Path) -> int:
    """Frame count of a video (decord; no decoding)."""
    import decord

    return len(decord.VideoReader(str(path), num_threads=1))


# ---- writing --------------------------------------------------------------------------------------
class EpisodeWriter:
    """Write episode ``index`` incrementally: ``add_frame`` per rendered frame, then ``finish`` with the arrays.

    Files go to ``*.partial`` names; ``finish`` renames the mp4 into place and the npz last (the npz marks a
    complete episode); ``abort`` removes the partial files."""

    def __init__(self, root: str | Path, index: int, fps: float, crf: int = 0):
        self.index = int(index)
        self.mp4, self.npz = episode_paths(root, index)
        self.mp4.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_mp4 = self.mp4.with_name(self.mp4.name + ".partial")
        self.tmp_npz = self.npz.with_name(self.npz.name + ".partial")
        self.video = VideoWriter(self.tmp_mp4, fps, crf)

    def add_frame(self, frame: np.ndarray) -> None:
        self.video.add(frame)

    def finish(self, actions: np.ndarray, states: np.ndarray, rewards: np.ndarray, success: np.ndarray,
               **extra) -> dict:
        """Shapes: actions (T, A), states (T+1, S), rewards (T,), success (T,); ``extra`` goes into the npz.
        Returns the manifest entry ``{"id", "steps", **scalar extras}``."""
        self.video.close()
        steps = len(actions)
        if self.video.count != steps + 1 or len(states) != steps + 1:
            self.abort()
            raise EpisodeError(f"episode {self.index}: {self.video.count} frames / {len(states)} states for "
                               f"{steps} actions")
        with open(self.tmp_npz, "wb") as f:  # a file object keeps numpy from appending ".npz" to the name
            np.savez(f, actions=np.asarray(actions, np.float32), states=np.asarray(states, np.float32),
                     rewards=np.asarray(rewards, np.float32), success=np.asarray(success, bool),
                     **{k: np.asarray(v) for k, v in extra.items()})
        os.replace(self.tmp_mp4, self.mp4)
        os.replace(self.tmp_npz, self.npz)  # last: the npz marks the episode complete
        entry = {"id": self.index, "steps": int(steps)}
        entry.update({k: _scalar(v) for k, v in extra.items() if np.ndim(v) == 0})
        return entry

    def abort(self) -> None:
        self.video.close()
        self.tmp_mp4.unlink(missing_ok=True)
        self.tmp_npz.unlink(missing_ok=True)


def write_episode(root: str | Path, index: int, frames: np.ndarray, actions: np.ndarray, states: np.ndarray,
                  rewards: np.ndarray, success: np.ndarray, fps: float, crf: int = 0, **extra) -> dict:
    """Write a whole episode atomically (see EpisodeWriter). frames (T+1, H, W, 3) uint8."""
    writer = EpisodeWriter(root, index, fps, crf)
    for f in np.asarray(frames):
        writer.add_frame(f)
    return writer.finish(actions, states, rewards, success, **extra)


def _scalar(v):
    v = np.asarray(v).item()
    return float(v) if isinstance(v, float) else v


def sync_episodes(root: str | Path, ids) -> None:
    """Flush episodes ``ids`` (their video and arrays) and the episode folder to the disk: called before a manifest
    that lists them is written, so a power loss cannot leave a listed episode empty (one flush per manifest
    write, off the collection workers' path)."""
    ids = list(ids)
    for i in ids:
        for path in episode_paths(root, i):
            fsync_path(path)
    if ids:
        fsync_path(Path(root) / EPISODE_DIR)


def complete_episodes(root: str | Path, clean: bool = True) -> list[int]:
    """Indices of complete episodes (npz and mp4 present); with ``clean``, delete ``*.partial`` files and
    mp4s without an npz (left by an interrupted write)."""
    folder = Path(root) / EPISODE_DIR
    if not folder.exists():
        return []
    done = []
    for npz in sorted(folder.glob("ep_*.npz")):
        if npz.with_suffix(".mp4").exists():
            done.append(int(npz.stem[3:]))
    if clean:
        for p in folder.glob("*.partial"):
            p.unlink(missing_ok=True)
        for mp4 in folder.glob("ep_*.mp4"):
            if not mp4.with_suffix(".npz").exists():
                mp4.unlink(missing_ok=True)
    return done


def episode_entry(root: str | Path, index: int) -> dict:
    """Manifest entry of an existing episode, rebuilt from its npz (used when resuming)."""
    with np.load(episode_paths(root, index)[1]) as z:
        entry = {"id": int(index), "steps": int(len(z["actions"]))}
        for k in z.files:
            if k not in ("actions", "states", "rewards", "success") and z[k].ndim == 0:
                entry[k] = _scalar(z[k])
    return entry


def write_manifest(root: str | Path, manifest: Manifest) -> None:
    """Write manifest.json atomically (``worldmodel.utils.atomic``)."""
    write_json(Path(root) / MANIFEST, manifest.to_dict())


# ---- reading --------------------------------------------------------------------------------------
def read_manifest(root: str | Path) -> Manifest:
    """Load and validate manifest.json; raises ValueError naming the path and the offending field."""
    return Manifest.read(root)


def validate_episode(ep: dict, manifest: Manifest, index: int) -> None:
    """Check shapes and action bounds of a loaded episode against the manifest (EpisodeError names it)."""
    name = f"episode {index}"
    a, s = manifest.action_dim, manifest.state_dim
    acts, states = ep["actions"], ep["states"]
    if acts.ndim != 2 or acts.shape[1] != a:
        raise EpisodeError(f"{name}: actions have shape {acts.shape}, manifest says (T, {a})")
    t = acts.shape[0]
    if states.shape != (t + 1, s):
        raise EpisodeError(f"{name}: states have shape {states.shape}, expected ({t + 1}, {s})")
    for key in ("rewards", "success"):
        if ep[key].shape != (t,):
            raise EpisodeError(f"{name}: {key} has shape {ep[key].shape}, expected ({t},)")
    low, high = np.asarray(manifest.action_low), np.asarray(manifest.action_high)
    bad = (acts < low - ACTION_TOL) | (acts > high + ACTION_TOL)
    if bad.any():
        step, dim = np.argwhere(bad)[0]
        raise EpisodeError(f"{name}: action {acts[step, dim]:.4f} at step {step}, dim {dim} is outside "
                           f"[{low[dim]}, {high[dim]}]")
    if not (np.isfinite(acts).all() and np.isfinite(states).all()):
        raise EpisodeError(f"{name}: non-finite actions or states")


def load_arrays(root: str | Path, index: int) -> dict:
    """The npz arrays of episode ``index`` (no frames)."""
    with np.load(episode_paths(root, index)[1]) as z:
        return {k: z[k] for k in z.files}


def load_episode(root: str | Path, index: int, manifest: Manifest | None = None) -> dict:
    """Episode ``index`` with frames: dict(frames (T+1, H, W, 3) uint8, actions (T, A), states (T+1, S),
    rewards (T,), success (T,), ...), validated against the manifest."""
    manifest = read_manifest(root) if manifest is None else manifest
    ep = load_arrays(root, index)
    validate_episode(ep, manifest, index)
    ep["frames"] = read_video(episode_paths(root, index)[0])
    n = len(ep["actions"]) + 1
    if len(ep["frames"]) != n:
        raise EpisodeError(f"episode {index}: video has {len(ep['frames'])} frames, expected {n}")
    return ep


def split_episodes(manifest: Manifest, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic split of the manifest's episode ids: (train_ids, val_ids); at least one train id,
    and at least one val id when val_fraction > 0 and there are 2+ episodes."""
    ids = manifest.episode_ids
    perm = np.random.default_rng(seed).permutation(len(ids))
    n_val = int(round(val_fraction * len(ids)))
    if val_fraction > 0 and len(ids) > 1:
        n_val = min(max(n_val, 1), len(ids) - 1)
    val = sorted(ids[i] for i in perm[:n_val])
    train = sorted(ids[i] for i in perm[n_val:])
    return train, val
