"""Episode datasets: the on-disk format, its writer, and the windowed reader.

Layout of a dataset folder::

    manifest.json            env_id, env_kwargs, action_low/high, action_dim, state_dim, frame_skip (=1),
                             fps, resolution, episodes, frames, policy, episode_list [{id, steps, seed, ...}]
    episodes/ep_000000.mp4   T+1 RGB frames: the reset frame, then one per step
    episodes/ep_000000.npz   actions (T, A) float32, states (T+1, S) float32, rewards (T,), success (T,)

Video: H.264 in RGB (``libx264rgb``, ``-crf 0``): lossless, so frames decoded with decord equal the rendered
frames bit for bit (max abs pixel error 0; tests/test_rollouts.py checks it). ``crf > 0`` trades exactness
for size.

Atomicity: an episode is written as ``*.partial`` files, then the mp4 is renamed into place and the npz last;
an npz therefore marks a complete episode. ``complete_episodes`` removes leftovers of an interrupted write,
so a killed collection leaves only complete episodes and resumes by index.

Reader time step: ``RolloutDataset(root, num_frames, frame_skip=k)`` returns frames ``s, s+k, ...,
s+(num_frames-1)k``; the action between two returned frames is the *stack* of the k env actions taken
between them, in time order: ``actions[j] = concat(a[s+jk], ..., a[s+jk+k-1])`` with shape (k*A,)
(the planner executes exactly such a stack, each of its H actions repeated or varied per env step).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodel.data.episodes import (  # noqa: F401  (re-exported: the dataset API lives here)
    DECORD_BAD_WIDTHS,
    EPISODE_DIR,
    MANIFEST,
    EpisodeError,
    EpisodeWriter,
    VideoWriter,
    complete_episodes,
    episode_entry,
    episode_paths,
    load_arrays,
    load_episode,
    read_manifest,
    read_video,
    split_episodes,
    validate_episode,
    video_length,
    write_episode,
    write_manifest,
    write_video,
)
from worldmodel.data.reader import EpisodeReader


class RolloutDataset(torch.utils.data.Dataset):
    """Windows of ``num_frames`` frames, ``frame_skip`` env steps apart, with the stacked actions between them.

    Item: ``frames`` uint8 (num_frames, H, W, 3), ``actions`` float32 (num_frames-1, frame_skip*A) (see the
    module docstring for the stacking order), ``states`` float32 (num_frames, S), ``episode`` int, ``start``
    int (env step of the first frame).

    Args:
        root: dataset folder (manifest.json + episodes/).
        num_frames: frames per window (>= 1).
        frame_skip: env steps between consecutive returned frames.
        episodes: episode ids to use (e.g. from ``split_episodes``); None = all in the manifest.
        stride: env steps between the starts of consecutive windows of an episode.
        cache: keep decoded episodes in memory; None = yes when all frames fit in ``cache_mb``.
        strict: raise on any corrupt episode (``max_bad_fraction`` 0).
        max_bad_fraction: the largest share of corrupt episodes before the dataset is refused.

    Episodes are read by :class:`~worldmodel.data.reader.EpisodeReader`: corrupt ones (unreadable npz or mp4,
    shapes or bounds contradicting the manifest, non-finite values, frame count != steps + 1) are skipped with a
    warning, recorded in ``skipped`` {id: reason} and counted in ``num_skipped``.
    """

    def __init__(self, root: str | Path, num_frames: int, frame_skip: int = 1, episodes: list[int] | None = None,
                 stride: int = 1, cache: bool | None = None, cache_mb: float = 1024.0, strict: bool = False,
                 max_bad_fraction: float = 0.1):
        if num_frames < 1 or frame_skip < 1 or stride < 1:
            raise ValueError("num_frames, frame_skip and stride must be >= 1")
        self.root, self.num_frames, self.frame_skip = Path(root), int(num_frames), int(frame_skip)
        self.manifest = read_manifest(root)
        known = set(self.manifest.episode_ids)
        ids = sorted(known) if episodes is None else [int(i) for i in episodes]
        missing = [i for i in ids if i not in known]
        if missing:
            raise ValueError(f"{self.root}: episodes {missing[:5]} are not in manifest.json")
        self.reader = EpisodeReader(root, 0.0 if strict else max_bad_fraction, self.manifest)
        self.too_short: list[int] = []
        self.arrays: dict[int, dict] = {}
        span = (self.num_frames - 1) * self.frame_skip
        windows = []
        for i, arrays in self.reader.episodes(ids, video="count"):
            steps = len(arrays["actions"])
            if steps < span:
                self.too_short.append(i)
                continue
            self.arrays[i] = {"actions": arrays["actions"], "states": arrays["states"]}
            windows += [(i, s) for s in range(0, steps - span + 1, stride)]
        if not windows:
            raise ValueError(f"{self.root}: no window of {num_frames} frames with frame_skip {frame_skip} "
                             f"(usable episodes {len(self.arrays)}, skipped {len(self.skipped)}, "
                             f"too short {len(self.too_short)})")
        self.windows = np.asarray(windows, np.int64)  # (N, 2): episode id, start step
        h, w = self.manifest.height_width
        total = sum(len(a["states"]) for a in self.arrays.values()) * h * w * 3
        self.cache_enabled = bool(total <= cache_mb * 2**20) if cache is None else bool(cache)
        self._cache: dict[int, np.ndarray] = {}

    @property
    def skipped(self) -> dict[int, str]:
        """Corrupt episodes left out: {id: what is wrong}."""
        return self.reader.skipped

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    @property
    def action_dim_step(self) -> int:
        """Width of one returned action: frame_skip * env action dim."""
        return self.frame_skip * self.manifest.action_dim

    def __len__(self) -> int:
        return len(self.windows)

    def _frames(self, ep: int, idx: np.ndarray) -> np.ndarray:
        if not self.cache_enabled:
            return read_video(episode_paths(self.root, ep)[0], idx.tolist())
        if ep not in self._cache:
            self._cache[ep] = read_video(episode_paths(self.root, ep)[0])
        return self._cache[ep][idx]

    def __getitem__(self, index: int) -> dict:
        ep, start = (int(v) for v in self.windows[index])
        k, n = self.frame_skip, self.num_frames
        idx = start + k * np.arange(n)  # (n,) frame indices
        frames = self._frames(ep, idx)  # (n, H, W, 3) uint8
        arr = self.arrays[ep]
        acts = arr["actions"][start:start + (n - 1) * k]  # ((n-1)*k, A), time-ordered
        acts = acts.reshape(n - 1, k * acts.shape[1])  # (n-1, k*A): row j = a[s+jk], ..., a[s+jk+k-1]
        return {
            "frames": torch.from_numpy(np.ascontiguousarray(frames)),
            "actions": torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float32)),
            "states": torch.from_numpy(np.ascontiguousarray(arr["states"][idx], dtype=np.float32)),
            "episode": ep,
            "start": start,
        }
