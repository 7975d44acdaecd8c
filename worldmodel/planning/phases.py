"""Finished evaluation phases of a ``wm plan`` run, kept across a preemption.

A plan run is three phases over the same episodes: the planner, random actions, zero actions. Each phase's
outcome (:class:`EpisodeStats` plus the controller's counters) is stored in ``out_dir/.phases/<name>.npz`` as
soon as it finishes, under a key of the run's settings and the checkpoint file, so a run stopped by SIGTERM
(:mod:`worldmodel.utils.preempt`) and started again redoes only the phase it was in; a stale or foreign file is
ignored. The folder is removed when the run finishes. Phases are independent (every episode restarts from its
seeded start and every controller owns its generators), so a reused phase equals a recomputed one.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from worldmodel.planning.mpc import EpisodeStats
from worldmodel.utils.atomic import atomic_path

FOLDER = ".phases"


def run_key(config: dict, checkpoint: str | Path) -> str:
    """Key of a run: its settings (out_dir aside) and the checkpoint file's size and modification time."""
    stat = Path(checkpoint).stat()
    text = json.dumps({k: v for k, v in config.items() if k != "out_dir"}, sort_keys=True, default=str)
    return hashlib.sha1(f"{text}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


class PhaseStore:
    """``run(name, fn, counters)``: the stored outcome of phase ``name`` when present, else ``fn()`` stored."""

    def __init__(self, out_dir: str | Path, key: str):
        self.folder, self.key = Path(out_dir) / FOLDER, key
        self.reused: list[str] = []

    def run(self, name: str, fn: Callable[[], EpisodeStats],
            counters: Callable[[], dict] | None = None) -> tuple[EpisodeStats, dict]:
        """(stats, counters) of the phase; ``counters()`` (JSON-able) is saved beside the stats after ``fn``."""
        path = self.folder / f"{name}.npz"
        loaded = self._load(path)
        if loaded is not None:
            self.reused.append(name)
            return loaded
        stats = fn()
        extra = counters() if counters is not None else {}
        arrays = {"success": stats.success, "steps": stats.steps, "final_distance": stats.final_distance,
                  "key": np.array(self.key), "counters": np.array(json.dumps(extra)),
                  "recorded": np.array(sorted(stats.frames), dtype=np.int64)}
        arrays.update({f"frames_{e}": np.stack(f) for e, f in stats.frames.items()})
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return stats, extra

    def _load(self, path: Path) -> tuple[EpisodeStats, dict] | None:
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                if str(z["key"]) != self.key:
                    return None
                frames = {int(e): list(z[f"frames_{e}"]) for e in z["recorded"]}
                stats = EpisodeStats(success=z["success"], steps=z["steps"], final_distance=z["final_distance"],
                                     frames=frames)
                return stats, json.loads(str(z["counters"]))
        except (OSError, KeyError, ValueError):  # torn or foreign: recompute
            return None

    def clear(self) -> None:
        """Remove the stored phases (the run finished)."""
        shutil.rmtree(self.folder, ignore_errors=True)
