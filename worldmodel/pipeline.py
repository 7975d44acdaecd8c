"""``wm pipeline``: the whole main job on built-in data, with stage caching and a report.

Chain (every stage is a ``wm`` command run through ``worldmodel.cli.run_command`` in its own folder under
``out_dir``)::

    collect_<task> ─┬─► pretrain (synthetic videos + env rollout videos) ─┐
                    └───────────────────────────────────────────────────┴─► train_ac_<task> ─► train_pixel_<task>
        ─► drift_<task> (latent vs pixel vs copy-last) ─► compare_<task> (pixel probe, pixel error; in-process)
        ─► plan_latent_<task>, plan_pixel_<task> ─► report.html, report.md

Caching: a stage's fingerprint is the hash of its command, its resolved config (with the pipeline folder
replaced by a placeholder, so a moved pipeline folder still matches) and the identities of its inputs (their
fingerprint and the time their run finished). It is written to ``<stage>/fingerprint.json`` beside
``summary.json``. A stage whose fingerprint matches a finished run whose checkpoint/dataset still exist is
reused; a changed config re-runs it from an empty folder, and every stage downstream of a stage that ran
again runs again too; a stage that crashed with the same fingerprint is run again in place, so commands that
resume (collect, training with ``train.resume=true``) continue where they stopped. Code changes are not part
of the fingerprint: use ``force=[stage or kind,...]`` (or delete the stage folder) after editing code.

Per-task overrides: an override ``Task:key=value`` in a stage's ``overrides`` applies to that task only.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from worldmodel.commands import compose_config, run_command
from worldmodel.config import CONFIG_DIR, register_schema, to_dict
from worldmodel.data.synthetic import generate
from worldmodel.evaluation.compare import compare
from worldmodel.evaluation.report import build_report, last, pick
from worldmodel.train.core import resolve_device
from worldmodel.train.pretrain import synthetic_dirs
from worldmodel.utils.atomic import write_json

# stage kinds, in run order
STAGE_KINDS = ("collect", "pretrain", "train_ac", "train_pixel", "drift", "compare", "plan_latent", "plan_pixel")


@dataclass
class StageConfig:
    preset: str = "cpu"  # preset of the stage's command (smoke|cpu|gpu)
    overrides: list[str] = field(default_factory=list)  # hydra overrides for the command; "Task:key=value": one task
    set: dict[str, Any] = field(default_factory=dict)  # settings for every task: +train_ac.set.use_state=false
    tasks: dict[str, Any] = field(default_factory=dict)  # settings for one task: +plan.tasks.PushBlock.episodes=50


@dataclass
class PipelineConfig:
    # pipeline folder: one sub-folder per stage, report.html / report.md at the top
    out_dir: str = "runs/pipeline"
    # tasks (our env names without namespace/version, or full gymnasium ids)
    tasks: list[str] = field(default_factory=lambda: ["PointReach", "ArmReach", "TwoRoom"])
    # train and evaluate the pixel baseline next to the latent model
    pixel: bool = True
    # stages to re-run even when their fingerprint matches (names like "drift_PointReach" or kinds like "plan")
    force: list[str] = field(default_factory=list)
    # per-command settings; the wiring between stages (datasets, checkpoints) is added by the pipeline;
    # train_ac.overrides also apply to train-pixel (placed before train_pixel.overrides): same budget
    collect: StageConfig = field(default_factory=StageConfig)
    pretrain: StageConfig = field(default_factory=StageConfig)
    train_ac: StageConfig = field(default_factory=StageConfig)
    train_pixel: StageConfig = field(default_factory=StageConfig)
    drift: StageConfig = field(default_factory=StageConfig)
    plan: StageConfig = field(default_factory=StageConfig)
    # extra overrides for the pixel model's plan stages only (after plan.overrides); empty = same planner
    plan_pixel_overrides: list[str] = field(default_factory=list)
    # share of the built-in synthetic videos in the pretraining mix (the rest: env rollout videos, split evenly)
    synthetic_weight: float = 0.5
    # side of the downsampled frame the pixel state probe reads (compare stage)
    pixel_probe_size: int = 16
    # GIFs per (task, model) shown in the report
    report_gifs: int = 2


register_schema("pipeline", PipelineConfig)


def env_id(task: str) -> str:
    """'PointReach' -> 'worldmodel/PointReach-v0'; a full id (with '/' or '-v') is passed through."""
    return task if ("/" in task or "-v" in task) else f"worldmodel/{task}-v0"


def flat_overrides(settings: dict, prefix: str = "") -> list[str]:
    """Nested settings {"a": {"b": 1}} -> hydra overrides ["a.b=1"] (lists and strings in hydra's syntax)."""
    out = []
    for key, value in settings.items():
        if isinstance(value, dict):
            out += flat_overrides(value, f"{prefix}{key}.")
        else:
            text = json.dumps(value) if isinstance(value, (list, bool)) or value is None else str(value)
            out.append(f"{prefix}{key}={text}")
    return out


def stage_overrides(stage: DictConfig, task: str | None) -> list[str]:
    """A stage's overrides for one task: ``overrides`` (plain and matching ``Task:key=value``), then ``set``,
    then ``tasks.<Task>``."""
    settings = to_dict(stage)
    out = task_overrides(list(settings["overrides"]), task) + flat_overrides(settings["set"])
    return out + (flat_overrides(settings["tasks"].get(task, {})) if task else [])


def task_overrides(overrides: list[str], task: str | None) -> list[str]:
    """Overrides for one task: plain ones plus ``Task:key=value`` ones whose Task matches."""
    out = []
    for o in overrides:
        head, sep, rest = o.partition(":")
        if sep and "=" not in head:
            if head == task:
                out.append(rest)
        else:
            out.append(o)
    return out


def fingerprint(command: str, config: dict, inputs: dict[str, str], root: Path) -> str:
    """Hash of (command, resolved config without out_dir, input fingerprints); the root folder is masked."""
    cfg = {k: v for k, v in config.items() if k != "out_dir"}
    text = json.dumps({"command": command, "config": cfg, "inputs": inputs}, sort_keys=True, default=str)
    text = text.replace(str(root.resolve()), "<pipeline>").replace(str(root), "<pipeline>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children, e.g. collection workers."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def artefacts_present(summary_path: Path) -> bool:
    """A finished stage is reusable only while the checkpoint/dataset its summary names still exists."""
    summary = json.loads(summary_path.read_text())
    paths = [summary.get(k) for k in ("checkpoint", "dataset")]
    return all(Path(p).exists() for p in paths if isinstance(p, str) and p)


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
        self.summaries: dict[str, dict] = {}
        self.configs: dict[str, dict] = {}  # resolved config (or params) of every stage run or reused

    def forced(self, stage: Stage) -> bool:
        return bool({stage.name, stage.kind, stage.command, stage.kind.split("_")[0]} & self.force)

    def run(self, stage: Stage) -> dict:
        """Run (or reuse) a stage; returns its summary."""

        stage_dir = self.root / stage.name
        overrides = stage.overrides + [f"out_dir={stage_dir}"]
        config = stage.params if stage.func else to_dict(compose_config(stage.command, overrides))
        self.configs[stage.name] = config
        fp = fingerprint(stage.command, config, {n: self.fps[n] for n in stage.inputs}, self.root)
        marker = stage_dir / "fingerprint.json"
        old = json.loads(marker.read_text()) if marker.exists() else {}
        summary_path = stage_dir / "summary.json"
        reused = (old.get("fingerprint") == fp and old.get("status") == "done" and summary_path.exists()
                  and not self.forced(stage) and artefacts_present(summary_path))
        if reused:
            summary, seconds, cpu = json.loads(summary_path.read_text()), old.get("seconds", 0.0), old.get("cpu_seconds")
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
                summary = stage.func(stage.params, stage_dir)
                summary["seconds"] = round(time.time() - t0, 2)
                write_json(summary_path, summary)
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


def q(value: Any) -> str:
    """A value quoted for a hydra override (paths may hold characters hydra's grammar reserves)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def env_overrides(task: str) -> list[str]:
    """``env=<group>`` for our tasks (configs/env/<task>.yaml), else ``env.id=<gymnasium id>``."""

    group = task.lower()
    return [f"env={group}"] if (CONFIG_DIR / "env" / f"{group}.yaml").is_file() else [f"env.id={q(env_id(task))}"]


def pretrain_data(cfg: DictConfig, root: Path, datasets: list[Path], overrides: list[str]):
    """Overrides mixing the built-in synthetic videos with the env rollout videos, and the hook generating the
    synthetic videos (pretrain generates them itself only when no path is given)."""

    overrides = overrides + [f"data.synthetic_dir={q(root / 'synthetic')}"]
    if not datasets or cfg.synthetic_weight >= 1:
        return overrides, None
    train_dir, gen, _, _ = synthetic_dirs(compose_config("pretrain", overrides))
    sources = [train_dir / "train.csv"] + [d / "episodes" for d in datasets]
    env_w = (1 - cfg.synthetic_weight) / len(datasets)
    weights = [cfg.synthetic_weight] + [env_w] * len(datasets)
    return overrides + [f"data.paths=[{','.join(q(p) for p in sources)}]",
                        f"data.weights=[{','.join(f'{w:.6g}' for w in weights)}]"], lambda: generate(train_dir, gen)


def compare_stage(params: dict, stage_dir: Path) -> dict:
    """In-process stage: pixel probe and pixel error on drift's windows (worldmodel.evaluation.compare)."""

    drift_summary = json.loads(Path(params["drift_summary"]).read_text())
    kw = {k: v for k, v in params.items() if k != "drift_summary"}
    return compare(out_dir=stage_dir, drift_summary=drift_summary, **kw)


def build_stages(cfg: DictConfig, root: Path) -> list[Stage]:
    """The stage list with its wiring (datasets and checkpoints of upstream stages) for every task."""

    tasks = list(cfg.tasks)

    def sc(key: str, task: str | None = None) -> list[str]:
        return [f"preset={cfg[key].preset}"] + stage_overrides(cfg[key], task)

    stages: list[Stage] = []
    for t in tasks:
        stages.append(Stage(f"collect_{t}", "collect", "collect", sc("collect", t) + env_overrides(t), task=t))
    datasets = [root / f"collect_{t}" for t in tasks]
    pre_ovr, prepare = pretrain_data(cfg, root, datasets, sc("pretrain"))
    stages.append(Stage("pretrain", "pretrain", "pretrain", pre_ovr, inputs=[f"collect_{t}" for t in tasks],
                        prepare=prepare))
    encoder = root / "pretrain" / "checkpoint.pt"
    for t in tasks:
        data, latent = root / f"collect_{t}", root / f"train_ac_{t}" / "checkpoint.pt"
        stages.append(Stage(f"train_ac_{t}", "train_ac", "train-ac", sc("train_ac", t) + [
            f"encoder_checkpoint={q(encoder)}", f"dataset={q(data)}", "train.resume=true"],
            inputs=["pretrain", f"collect_{t}"], task=t, model="latent"))
        if cfg.pixel:
            shared = stage_overrides(cfg.train_ac, t)  # train-ac's budget applies to both models
            own = sc("train_pixel", t)  # [preset=..., *train_pixel.overrides]
            stages.append(Stage(f"train_pixel_{t}", "train_pixel", "train-pixel", own[:1] + shared + own[1:] + [
                f"dataset={q(data)}", f"latent_checkpoint={q(latent)}", "train.resume=true"],
                inputs=[f"collect_{t}", f"train_ac_{t}"], task=t, model="pixel"))
    for t in tasks:
        latent, pixel = root / f"train_ac_{t}" / "checkpoint.pt", root / f"train_pixel_{t}" / "checkpoint.pt"
        models = [f"train_ac_{t}"] + ([f"train_pixel_{t}"] if cfg.pixel else [])
        drift_ovr = sc("drift", t) + [f"checkpoint={q(latent)}"]
        if cfg.pixel:
            drift_ovr.append(f"compare_checkpoints=[{q(pixel)}]")
        stages.append(Stage(f"drift_{t}", "drift", "drift", drift_ovr, inputs=models, task=t))
        if cfg.pixel:
            d = to_dict(compose_config("drift", drift_ovr))
            params = {"latent_checkpoint": str(latent), "pixel_checkpoint": str(pixel),
                      "drift_summary": str(root / f"drift_{t}" / "summary.json"), "dataset": d["dataset"],
                      "horizon": d["horizon"], "windows_per_episode": d["windows_per_episode"],
                      "max_episodes": d["max_episodes"], "probe_frames": d["probe_frames"],
                      "probe_lambdas": list(d["probe_lambdas"]), "probe_min_r2": d["probe_min_r2"],
                      "probe_size": cfg.pixel_probe_size, "batch_size": d["batch_size"],
                      "device": resolve_device(d["device"]).type if d["device"] == "auto" else d["device"]}
            stages.append(Stage(f"compare_{t}", "compare", "compare", [], inputs=[f"drift_{t}"] + models, task=t,
                                func=compare_stage, params=params))
        for model, ckpt, src in (("latent", latent, f"train_ac_{t}"), ("pixel", pixel, f"train_pixel_{t}")):
            if model == "latent" or cfg.pixel:
                extra = task_overrides(list(cfg.plan_pixel_overrides), t) if model == "pixel" else []
                stages.append(Stage(f"plan_{model}_{t}", f"plan_{model}", "plan",
                                    sc("plan", t) + extra + [f"checkpoint={q(ckpt)}"], inputs=[src], task=t,
                                    model=model))
    return stages


def headline(runner: StageRunner, tasks: list[str]) -> dict[str, Any]:
    """Headline figures per task: drift at the largest horizon and planning success, latent vs pixel."""

    out: dict[str, Any] = {"drift": {}, "plan": {}}
    for t in tasks:
        d = runner.summaries.get(f"drift_{t}", {})
        c = runner.summaries.get(f"compare_{t}", {})
        if d:
            out["drift"][t] = {"horizon": last(d.get("horizons")),
                               "probe_error_latent": last(d.get("probe_error")),
                               "probe_error_pixel": last(d.get("probe_error_pixel")),
                               "probe_error_copy_last": last(d.get("probe_error_copy_last")),
                               "probe_error_pixel_direct": last(c.get("probe_error_pixel_direct")),
                               "pixel_error": last(c.get("pixel_error")),
                               "pixel_error_copy_last": last(c.get("pixel_error_copy_last"))}
        row = {}
        for model in ("latent", "pixel"):
            s = runner.summaries.get(f"plan_{model}_{t}", {})
            if s:
                row[model] = {"success_rate": s.get("success_rate"), "success_ci95": s.get("success_ci95"),
                              "seconds_per_plan": pick(s, "seconds_per_plan", "seconds_per_step")}
                row.setdefault("random", s.get("success_rate_random"))
                row.setdefault("zero", s.get("success_rate_zero"))
        if row:
            out["plan"][t] = row
    return _rounded(out)


def _rounded(x: Any) -> Any:
    """Floats to 4 significant digits, recursively (headline figures for humans)."""
    if isinstance(x, float):
        return float(f"{x:.4g}")
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


def run(cfg: DictConfig) -> dict:
    """Run (or continue) the whole chain and write the report; returns the pipeline summary."""

    root = Path(cfg.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    runner = StageRunner(root, list(cfg.force))
    for stage in build_stages(cfg, root):
        runner.run(stage)
    total = round(time.time() - t0, 2)
    notes = [f"wm pipeline, tasks: {', '.join(cfg.tasks)}; stage presets: "
             + ", ".join(f"{k}={cfg[k].preset}" for k in ("collect", "pretrain", "train_ac", "train_pixel",
                                                         "drift", "plan")),
             f"total {total:.0f} s this run ({sum(r['reused'] for r in runner.records)} of "
             f"{len(runner.records)} stages reused); stage seconds are those of the run that produced them."]
    paths = build_report(root, runner.records, list(cfg.tasks), title="worldmodel — main job report",
                         notes=notes, max_gifs=cfg.report_gifs)
    print(f"[pipeline] report: {Path(paths['html']).resolve()}")
    return {"report": paths["html"], "report_md": paths["md"],
            "stages": {r["name"]: {"summary": r["summary"], "seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"],
                                   "reused": r["reused"]} for r in runner.records},
            "headline": headline(runner, list(cfg.tasks)), "tasks": list(cfg.tasks),
            "seconds_stages": round(sum(r["seconds"] for r in runner.records), 2), "seconds_this_run": total}
