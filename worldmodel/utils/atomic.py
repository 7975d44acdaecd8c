"""The one atomic writer: every artifact (summaries, configs, checkpoints, plots, GIFs, reports, videos) is
written to a temp file beside its destination, flushed to disk (``fsync``), and renamed into place, and the
rename is made durable by an ``fsync`` of the folder; so a reader — or a kill, or a power loss, at any moment —
sees either the previous complete file or the new complete file, never half of one. A write that fails for want
of space (ENOSPC, EDQUOT, EFBIG) removes its temp file, leaves the previous file in place, and raises
:class:`DiskFullError`, one line naming the file."""
from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any, Iterator

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFullError(RuntimeError):
    """No space left while writing a file; the previous version of the file is intact."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is renamed onto ``path``, on error it is removed.

    The temp name keeps the destination's suffix (``.x.tmp123.png``) so writers that pick a format by
    extension (matplotlib, imageio) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as e:
        if e.errno in NO_SPACE:
            raise DiskFullError(f"{path}: no space left on the device ({os.strerror(e.errno)}); the previous "
                                f"version of the file is kept: free space and rerun the same command") from e
        raise
    finally:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def fsync_path(path: Path) -> None:
    """Flush a written file (or a folder's entries, after a rename) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems cannot sync a folder, or a device file
        if e.errno not in (errno.EINVAL, errno.EBADF, errno.EROFS):
            raise
    finally:
        os.close(fd)


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of ``path`` left by writers that were killed (their process is gone)."""
    for old in path.parent.glob(f".{glob_escape(path.stem)}.tmp*{glob_escape(path.suffix)}"):
        pid = old.name[len(path.stem) + 5: len(old.name) - len(path.suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            old.unlink(missing_ok=True)


def glob_escape(text: str) -> str:
    """``text`` with glob metacharacters made literal."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a temp file's writer still running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy/torch scalars and arrays and paths become JSON)."""
    return write_text(path, json.dumps(obj, indent=2, default=json_default))


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback: ``.item()`` scalars, ``.tolist()`` arrays, paths as strings."""
    if hasattr(o, "item") and getattr(o, "ndim", 0) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
