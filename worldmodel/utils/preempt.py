"""Preemption: SIGTERM or SIGUSR1 ask a run to stop at its next safe point instead of dying mid-step.

Schedulers stop jobs with a signal and a grace period before SIGKILL (SLURM's ``--signal=B:USR1@120``,
Kubernetes' SIGTERM + ``terminationGracePeriodSeconds``). ``wm`` installs :func:`handling` around every command:
the handler only records the signal; loops poll :func:`requested` at safe points (after a training step, between
collected episodes, between replanning steps) and raise :class:`Preempted` once their state is on disk. The CLI
then writes ``out_dir/preempted.json`` and exits with :data:`REQUEUE_EXIT` (75, ``EX_TEMPFAIL``: "try again"),
which a job script turns into a requeue. Rerunning the same command resumes: training commands resume from
``out_dir/checkpoint.pt`` whenever that marker is present (as under a torchrun elastic restart), whatever
``train.resume`` says; collection keeps finished episodes; planning keeps finished evaluation phases.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

from worldmodel.utils.atomic import write_json

REQUEUE_EXIT = 75  # sysexits.h EX_TEMPFAIL: stopped on request, state saved, rerun the same command to resume
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
MARKER = "preempted.json"  # written in out_dir by the CLI when a run stops on a signal; removed when it finishes

_program = [False]  # record_from_now() was called: this process is the wm program
_received: list[int] = []  # signal numbers received since the outermost handling() began
_depth = [0]  # nesting of handling() (a pipeline's stages run commands in its process)


class Preempted(Exception):
    """A run stopped on SIGTERM/SIGUSR1 after saving its state; the message says what was kept."""


def _record(signum: int, frame) -> None:  # noqa: ARG001 (signal handler signature)
    _received.append(signum)


def record_from_now() -> None:
    """Record stop signals from this moment on, for the rest of the process: the ``wm`` program calls it before
    its few seconds of imports, so a signal then still ends in a clean stop (exit 75) rather than a kill."""
    if threading.current_thread() is threading.main_thread():
        _program[0] = True
        for s in SIGNALS:
            signal.signal(s, _record)


def settle() -> None:
    """Called by the wm program once its command has returned: stop signals from now on are ignored, since
    Python's shutdown puts back the default action of any signal with a Python handler (not of an ignored one),
    and a late signal would turn a finished run into a killed one."""
    if _program[0] and threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Record SIGTERM/SIGUSR1 (instead of dying) while the block runs; the previous handlers come back after,
    and the record is cleared. Re-entrant; outside the main thread (where Python cannot install handlers) it
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _record) for s in SIGNALS} if _depth[0] == 0 else {}
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if _depth[0] == 0:
            for s, h in previous.items():
                signal.signal(s, h)
            _received.clear()


def ignore_in_worker(_worker_id: int = 0) -> None:
    """``worker_init_fn`` of data-loader workers: leave SIGTERM/SIGUSR1 to the main process, which stops the
    run at a safe point and shuts its workers down (a worker killed by the signal would fail the step in flight)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def requested() -> str | None:
    """Name of the first stop signal received (``"SIGTERM"``), or None."""
    return signal.Signals(_received[0]).name if _received else None


def check(where: str) -> None:
    """Raise :class:`Preempted` when a stop signal was received; call at a safe point, state already saved."""
    name = requested()
    if name:
        raise Preempted(f"{where}: stopped on {name}")


def elastic_restart() -> bool:
    """True in a process that torchrun restarted after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def resuming(out_dir: str | Path) -> bool:
    """Whether a run in ``out_dir`` must continue from its checkpoint: it was preempted, or torchrun restarted it."""
    return (Path(out_dir) / MARKER).is_file() or elastic_restart()


def mark(out_dir: str | Path, message: str) -> Path:
    """Write ``out_dir/preempted.json`` (what stopped the run, when); the next run of the command resumes."""
    return write_json(Path(out_dir) / MARKER, {"signal": requested(), "message": message, "time": time.time(),
                                               "pid": os.getpid()})


def unmark(out_dir: str | Path) -> None:
    """Remove the marker once the run has finished."""
    (Path(out_dir) / MARKER).unlink(missing_ok=True)
