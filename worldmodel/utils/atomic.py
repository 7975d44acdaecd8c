"""The one atomic writer: every artifact (summaries, configs, checkpoints, plots, GIFs, reports, videos) is
written to a temp file beside its destination and renamed into place, so a reader — or a kill at any moment —
sees either the previous complete file or the new complete file, never half of one."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator


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
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
