"""One writer per run folder: ``out_dir/.wm.lock`` holds the owner's pid and host under an advisory lock.

A second ``wm`` command on the same folder stops at once with one line naming the owner. The lock is an
``fcntl.flock`` on the file, which the kernel drops when its process dies however it dies, so a lock left by a
killed run is simply taken over (the file's pid is only there to name the owner). Locks are re-entrant within
a process (a pipeline holds its folder while its in-process stages lock theirs). The file is removed when the
run ends.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".wm.lock"

_held: dict[Path, int] = {}  # resolved lock path -> depth, in this process


class RunLockedError(ValueError):
    """Another live process writes to this run folder."""


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a folder path; one line when it (or a parent) is an existing file."""
    out = Path(out_dir)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            what = "out_dir" if p == out else f"out_dir's parent {p}"
            raise ValueError(f"out_dir={out}: {what} is a file; expected a folder (new, or one of a run to resume)")
    return out


@contextlib.contextmanager
def run_lock(out_dir: str | Path, command: str) -> Iterator[Path]:
    """Hold ``out_dir/.wm.lock`` for the block; :class:`RunLockedError` when a live process holds it."""
    out = check_out_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = (out / LOCK_NAME).resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield path
        finally:
            _held[path] -= 1
        return
    fd = _acquire(path, command)
    _held[path] = 1
    try:
        yield path
    finally:
        del _held[path]
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # before the unlock: whoever opens the path next gets a fresh file
        os.close(fd)


def _acquire(path: Path, command: str) -> int:
    """Open, flock and stamp the lock file; retried when the file was replaced between open and lock."""
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(f"out_dir={path.parent}: another run writes here ({_owner(path)}); "
                                 f"wait for it, or use another out_dir") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # its owner finished and removed it after we opened it
            same = False
        if same:
            stamp = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                "started": round(time.time(), 3)}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, stamp, 0)
            return fd
        os.close(fd)
    raise RunLockedError(f"out_dir={path.parent}: the lock file {path.name} keeps changing; is another run starting?")


def _owner(path: Path) -> str:
    """'pid 123 on host-a, wm train-ac since 12:00:01' from the lock file, as far as it can be read."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        info = {}
    since = time.strftime("%H:%M:%S", time.localtime(info["started"])) if "started" in info else "?"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, wm {info.get('command', '?')} since {since}"
