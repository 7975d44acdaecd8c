"""Stage caching for ``wm pipeline``: run a chain of ``wm`` commands, reusing the finished ones.

Caching: a stage's fingerprint is the hash of its command, its resolved config (with the pipeline folder
replaced by a placeholder, so a moved pipeline folder still matches) and the identities of its inputs (their
fingerprint and the time their run finished). It is written to ``<stage>/fingerprint.json`` beside
``summary.json``. A stage whose fingerprint matches a finished run whose checkpoint/dataset still exist is
reused; a changed config re-runs it from an empty folder, and every stage downstream of a stage that ran
again runs again too; a stage that crashed with the same fingerprint is run again in place, so commands that
resume (collect, training with ``train.resume=true``) continue where they stopped. Code changes are not part
of the fingerprint: use ``force=[stage or kind,...]`` (or delete the stage folder) after editing code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from worldmodel.commands import compose_config, run_command
from worldmodel.config import to_dict
from worldmodel.contracts.records import to_dict as record_dict
from worldmodel.contracts.summaries import Summary, load_summary, summary_of
from worldmodel.utils.atomic import write_json


def fingerprint(command: str, config: dict, inputs: dict[str, str], root: Path) -> str:
    """Hash of (command, resolved config without out_dir, input fingerprints); the root folder is masked."""
    cfg = {k: v for k, v in config.items() if k != "out_dir"}
    if isinstance(cfg.get("train"), dict) and "logger" in cfg["train"]:  # where metrics also go changes no result
        cfg["train"] = {**cfg["train"], "logger": "none"}
    text = json.dumps({"command": command, "config": cfg, "inputs": inputs}, sort_keys=True, default=str)
    text = text.replace(str(root.resolve()), "<pipeline>").replace(str(root), "<pipeline>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children, e.g. collection workers."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def artefacts_present(summary: Summary) -> bool:
    """A finished stage is reusable only while the checkpoint/dataset its summary names still exists."""
    paths = [getattr(summary, k, None) for k in ("checkpoint", "dataset")]
    return all(Path(p).exists() for p in paths if isinstance(p, str) and p)


def saved_summary(path: Path, command: str) -> Summary | None:
    """The stage's summary.json as its command's Summary, None when absent or unreadable (the stage runs again)."""
    try:
        return load_summary(path, command) if path.exists() else None
    except ValueError as e:
        print(f"[pipeline] {e}: the stage runs again")
        return None


@dataclass
class Stage:
    """One pipeline step: a ``wm`` command with overrides, depending on the named upstream stages."""
    name: str
    kind: str
    command: str
    overrides: list[str]
    inputs: list[str] = field(default_factory=list)
    task: str | None = None
    model: str | None = None
    prepare: Callable[[], None] | None = None  # runs before the command (only when the stage is not reused)
    func: Callable[[dict, Path], dict] | None = None  # in-process stage: func(params, stage_dir) -> summary
    params: dict = field(default_factory=dict)  # func's arguments (fingerprinted like a config)


class StageRunner:
    """Runs stages in order, reusing finished ones by fingerprint, and keeps the records for the report."""

    def __init__(self, root: Path, force: list[str]):
        self.root = root
        self.force = set(force)
        self.fps: dict[str, str] = {}
        self.records: list[dict] = []
        self.summaries: dict[str, Summary] = {}
        self.configs: dict[str, dict] = {}  # resolved config (or params) of every stage run or reused

    def summary(self, name: str) -> Summary | None:
        """The summary of stage ``name``, None when it did not run."""
        return self.summaries.get(name)

    def forced(self, stage: Stage) -> bool:
        return bool({stage.name, stage.kind, stage.command, stage.kind.split("_")[0]} & self.force)

    def run(self, stage: Stage) -> Summary:
        """Run (or reuse) a stage; returns its summary."""

        stage_dir = self.root / stage.name
        overrides = stage.overrides + [f"out_dir={stage_dir}"]
        config = stage.params if stage.func else to_dict(compose_config(stage.command, overrides))
        self.configs[stage.name] = config
        fp = fingerprint(stage.command, config, {n: self.fps[n] for n in stage.inputs}, self.root)
        marker = stage_dir / "fingerprint.json"
        old = json.loads(marker.read_text()) if marker.exists() else {}
        summary_path = stage_dir / "summary.json"
        summary = saved_summary(summary_path, stage.command) if old.get("status") == "done" else None
        reused = (old.get("fingerprint") == fp and summary is not None and not self.forced(stage)
                  and artefacts_present(summary))
        if reused:
            seconds, cpu = old.get("seconds", 0.0), old.get("cpu_seconds")
            finished = old.get("finished")
            print(f"[pipeline] {stage.name}: reused ({fp})")
        else:
            if stage_dir.exists() and (old.get("fingerprint") != fp or self.forced(stage)):
                shutil.rmtree(stage_dir)  # stale results of another config must not leak into this run
            stage_dir.mkdir(parents=True, exist_ok=True)
            record = {"fingerprint": fp, "command": stage.command, "overrides": overrides,
                      "inputs": {n: self.fps[n] for n in stage.inputs}}
            write_json(marker, {**record, "status": "running"})
            what = f"in-process {stage.func.__name__}" if stage.func else f"wm {stage.command} {' '.join(overrides)}"
            print(f"[pipeline] {stage.name}: {what}")
            t0, c0 = time.time(), cpu_seconds()
            if stage.prepare is not None:
                stage.prepare()
            if stage.func is not None:
                summary = summary_of(stage.command, stage.func(stage.params, stage_dir), stage.name)
                summary = dataclasses.replace(summary, command=stage.command, seconds=round(time.time() - t0, 2))
                write_json(summary_path, record_dict(summary))
            else:
                summary = run_command(stage.command, overrides)
            seconds, cpu, finished = round(time.time() - t0, 2), round(cpu_seconds() - c0, 2), round(time.time(), 3)
            write_json(marker, {**record, "status": "done", "seconds": seconds, "cpu_seconds": cpu,
                                       "finished": finished})
            print(f"[pipeline] {stage.name}: done in {seconds:.1f}s ({cpu:.0f} CPU s)")
        self.fps[stage.name] = f"{fp}@{finished}"  # identity for downstream stages: a rerun changes it
        self.summaries[stage.name] = summary
        self.records.append({"name": stage.name, "kind": stage.kind, "command": stage.command,
                             "task": stage.task, "model": stage.model, "dir": str(stage_dir),
                             "summary": str(summary_path), "seconds": seconds, "cpu_seconds": cpu, "reused": reused,
                             "fingerprint": fp})
        return summary
