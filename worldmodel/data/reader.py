"""The one episode reader every command uses (train-ac's latent cache, train-pixel, drift, the planner's probe).

A corrupt episode — an npz that does not open (truncated, not a zip), a missing array, shapes that contradict the
manifest, non-finite actions or states, actions outside the bounds, a video that does not decode or whose frame
count is not steps + 1 — is skipped with a warning naming the episode, its file and what is wrong, and counted.
The run stops (``ValueError``, one line) only when the skipped share passes ``max_bad_fraction``, as video
pretraining does; ``summary()`` goes into the command's ``summary.json``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from worldmodel.contracts.manifest import Manifest
from worldmodel.data.episodes import (
    episode_paths,
    load_arrays,
    read_manifest,
    read_video,
    validate_episode,
    video_length,
)

log = logging.getLogger(__name__)

REQUIRED_ARRAYS = ("actions", "states", "rewards", "success")


class EpisodeReader:
    """Reads episodes of the dataset at ``root``, skipping and counting corrupt ones.

    Args:
        root: dataset folder (manifest.json + episodes/).
        max_bad_fraction: the largest share of corrupt episodes among those read before the run stops.
        manifest: the validated manifest when already read.
    """

    def __init__(self, root: str | Path, max_bad_fraction: float = 0.1, manifest: Manifest | None = None):
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction={max_bad_fraction}; expected a fraction in [0, 1]")
        self.root = Path(root)
        self.manifest = read_manifest(root) if manifest is None else manifest
        self.max_bad_fraction = float(max_bad_fraction)
        self.skipped: dict[int, str] = {}  # episode id -> what is wrong with it
        self.read = 0  # episodes attempted

    @property
    def ids(self) -> list[int]:
        """Every episode id the manifest lists, sorted."""
        return self.manifest.episode_ids

    def load(self, index: int, video: str = "decode") -> dict | None:
        """Episode ``index`` or None when corrupt: its arrays, and with ``video`` ``decode`` its ``frames``
        (T+1, H, W, 3) uint8; ``count`` only checks the video's frame count, ``skip`` does not open it."""
        self.read += 1
        mp4, npz = episode_paths(self.root, index)
        try:
            ep = load_arrays(self.root, index)
        except Exception as e:  # truncated file, not a zip, missing: corrupt, not fatal
            return self._skip(index, f"{npz.name} unreadable ({type(e).__name__}: {e})")
        missing = [k for k in REQUIRED_ARRAYS if k not in ep]
        if missing:
            return self._skip(index, f"{npz.name} has no array {missing[0]!r} (expected {', '.join(REQUIRED_ARRAYS)})")
        try:
            validate_episode(ep, self.manifest, index)
        except ValueError as e:
            return self._skip(index, f"{npz.name}: {str(e).removeprefix(f'episode {index}: ')}")
        if video == "skip":
            return ep
        try:
            if video == "decode":
                ep["frames"] = read_video(mp4)
            count = len(ep["frames"]) if video == "decode" else video_length(mp4)
        except Exception as e:  # decord raises its own error types
            return self._skip(index, f"{mp4.name} unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
        n = len(ep["actions"]) + 1
        if count != n:
            return self._skip(index, f"{mp4.name} has {count} frames, expected {n} (steps + 1)")
        return ep

    def episodes(self, ids: list[int] | None = None, video: str = "decode") -> Iterator[tuple[int, dict]]:
        """(id, episode) for the good episodes among ``ids`` (default: all), then ``check()``; ``video`` as in
        ``load``."""
        for i in self.ids if ids is None else ids:
            ep = self.load(int(i), video)
            if ep is not None:
                yield int(i), ep
        self.check()

    def check(self) -> None:
        """Raise when the skipped share of the episodes read passes ``max_bad_fraction`` (or nothing was usable)."""
        bad = len(self.skipped)
        if not bad:
            return
        frac = bad / max(self.read, 1)
        first = next(iter(self.skipped.items()))
        if bad == self.read or frac > self.max_bad_fraction:
            raise ValueError(f"{self.root}: {bad} of {self.read} episodes are corrupt ({frac:.0%} > max_bad_fraction "
                             f"{self.max_bad_fraction:.0%}); e.g. episode {first[0]}: {first[1]}")

    def summary(self) -> dict:
        """``episodes_skipped`` (count) and ``skipped_episodes`` {id: reason} for summary.json."""
        return {"episodes_skipped": len(self.skipped), "skipped_episodes": {str(k): v for k, v in self.skipped.items()}}

    def _skip(self, index: int, reason: str) -> None:
        log.warning("%s: skipping corrupt episode %d: %s", self.root, index, reason)
        self.skipped[index] = reason
        return None
