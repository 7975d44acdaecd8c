"""``wm pipeline``: the whole main job on built-in data, with stage caching and a report.

Chain (every stage is a ``wm`` command run through ``worldmodel.commands.run_command`` in its own folder under
``out_dir``; stage caching: :mod:`worldmodel.stages`)::

    collect_<task> ─┬─► pretrain (synthetic videos + env rollout videos) ─┐
                    └───────────────────────────────────────────────────┴─► train_ac_<task> ─► train_pixel_<task>
        ─► drift_<task> (latent vs pixel vs copy-last) ─► compare_<task> (pixel probe, pixel error; in-process)
        ─► plan_latent_<task>, plan_pixel_<task> (pure, latent energy), plan_proprio_<task> (pure, proprio-probe
           energy and roadmap), plan_oracle_<task> ─► report.html, report.md
    encoder ablation (``ablation_tasks``): pretrain_random (no step) ─► train_ac_random_<task> ─► drift_random_<task>,
        plan_random_<task>
    grid_probe (in-process): the pretrained and the random-init encoder's token grids probed for every state dim on
        held-out episodes of every task

Per-stage settings: ``<stage>.set`` (every task) and ``<stage>.tasks.<Task>`` (one task) become the command's
overrides (``+train_ac.set.use_state=false``); raw ``<stage>.overrides`` entries ``Task:key=value`` apply to one task.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from worldmodel.commands import compose_config
from worldmodel.config import CONFIG_DIR, to_dict
from worldmodel.contracts.headline import Headline
from worldmodel.contracts.records import from_dict
from worldmodel.contracts.summaries import CompareSummary, DriftSummary, GridProbeSummary, PlanSummary, load_summary
from worldmodel.data.synthetic import generate
from worldmodel.evaluation.compare import compare
from worldmodel.evaluation.encoder_probe import episode_frames, grid_probe_r2
from worldmodel.evaluation.report import HEADLINE_HEADER, build_report, headline_rows, headline_table, row_label
from worldmodel.evaluation.report_doc import last
from worldmodel.models.video_vit import VideoViT, load_encoder
from worldmodel.stages import Stage, StageRunner
from worldmodel.train.loggers import Logger, make_logger
from worldmodel.train.pretrain import synthetic_dirs
from worldmodel.utils.device import resolve_device

# stage kinds, in run order
STAGE_KINDS = ("collect", "pretrain", "train_ac", "train_pixel", "drift", "compare", "plan_latent", "plan_pixel",
               "plan_proprio", "plan_oracle", "pretrain_random", "train_ac_random", "drift_random", "plan_random",
               "grid_probe")


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
    # also plan with the latent model under the proprioception-probe energy and roadmap (pure mode), a separate row
    proprio: bool = True
    # overrides of those stages (after plan's): the predicted proprioception vs a probe's reading of the goal image
    proprio_overrides: list[str] = field(default_factory=lambda: [
        "energy.temporal_weight=0", "energy.state_weight=1", "subgoals.enabled=true", "subgoals.lookahead=6",
        "baselines=false", "gifs=0"])
    # also plan with the latent model in oracle mode (probes and roadmap on the full simulator state), beside pure
    oracle: bool = True
    # overrides of the oracle plan stages (after plan's): the aids the oracle row uses
    oracle_overrides: list[str] = field(default_factory=lambda: [
        "energy.temporal_weight=0", "energy.state_weight=1", "subgoals.enabled=true", "subgoals.lookahead=6",
        "energy.criterion_weight=3", "baselines=false", "gifs=0"])
    # tasks whose predictor is also trained (same data, budget, seeds) on a random-init encoder: the encoder ablation
    ablation_tasks: list[str] = field(default_factory=list)
    # share of the built-in synthetic videos in the pretraining mix (the rest: env rollout videos, split evenly)
    synthetic_weight: float = 0.5
    # side of the downsampled frame the pixel state probe reads (compare stage)
    pixel_probe_size: int = 16
    # GIFs per (task, model) shown in the report
    report_gifs: int = 2
    # grid probe of the pretrained and the random-init encoder on every task's episodes: frames per episode (0: off)
    grid_probe_frames: int = 10
    # experiment logger of every training stage and of the headline table: none | tensorboard | wandb (offline)
    logger: Logger = Logger.none




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


def pixel_shared(train_ac_overrides: list[str]) -> list[str]:
    """The train-ac overrides train-pixel shares: all but the encoder's (the pixel model has none to fine-tune)."""
    return [o for o in train_ac_overrides if not o.lstrip("+~").startswith("finetune.")]


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

    drift_summary = load_summary(params["drift_summary"], "drift")
    kw = {k: v for k, v in params.items() if k != "drift_summary"}
    return compare(out_dir=stage_dir, drift_summary=drift_summary, **kw)


def grid_probe_stage(params: dict, stage_dir: Path) -> dict:
    """In-process stage: held-out R² per state dim of a ridge probe on the token grid of the pretrained encoder and
    of the random-init one, on every task's episodes (:mod:`worldmodel.evaluation.encoder_probe`)."""
    device = resolve_device(params["device"])
    encoders = {"pretrained": load_encoder(params["encoder"], device)}
    if params["random_encoder"]:  # the ablation's random-init encoder
        encoders["random_init"] = load_encoder(params["random_encoder"], device)
    else:  # its twin: the same architecture at the pretraining seed's init
        torch.manual_seed(params["seed"])
        encoders["random_init"] = VideoViT(encoders["pretrained"].cfg).to(device).eval()
    out: dict = {"frames_per_episode": params["frames_per_episode"], "tasks": {}}
    for task, dataset in params["datasets"].items():
        data = episode_frames(dataset, params["frames_per_episode"])
        r2 = {name: grid_probe_r2(enc, data) for name, enc in encoders.items()}
        out["tasks"][task] = {"r2": r2["pretrained"], "r2_random_init": r2["random_init"],
                              "frames_train": len(data["train"][0]), "frames_test": len(data["test"][0])}
    return out


def build_stages(cfg: DictConfig, root: Path) -> list[Stage]:
    """The stage list with its wiring (datasets and checkpoints of upstream stages) for every task."""

    tasks = list(cfg.tasks)

    def sc(key: str, task: str | None = None) -> list[str]:
        trains = key in ("pretrain", "train_ac", "train_pixel") and cfg.logger != "none"
        return [f"preset={cfg[key].preset}"] + stage_overrides(cfg[key], task) + (
            [f"train.logger={cfg.logger}"] if trains else [])

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
            shared = pixel_shared(stage_overrides(cfg.train_ac, t))  # train-ac's budget applies to both models
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
        if cfg.proprio:
            stages.append(Stage(f"plan_proprio_{t}", "plan_proprio", "plan", sc("plan", t) + list(cfg.proprio_overrides)
                                + [f"checkpoint={q(latent)}"], inputs=[f"train_ac_{t}"], task=t,
                                model="latent, with proprio probe"))
        if cfg.oracle:
            stages.append(Stage(f"plan_oracle_{t}", "plan_oracle", "plan", sc("plan", t) + list(cfg.oracle_overrides)
                                + ["mode=oracle", f"checkpoint={q(latent)}"], inputs=[f"train_ac_{t}"], task=t,
                                model="latent, oracle"))
    stages += ablation_stages(cfg, root, pre_ovr, prepare, sc)
    if cfg.grid_probe_frames > 0:
        pre = to_dict(compose_config("pretrain", pre_ovr))
        has_random = bool(cfg.ablation_tasks)
        stages.append(Stage("grid_probe", "grid_probe", "grid-probe", [], inputs=["pretrain"] + (
            ["pretrain_random"] if has_random else []) + [f"collect_{t}" for t in tasks], func=grid_probe_stage,
            params={"encoder": str(encoder), "random_encoder": str(root / "pretrain_random" / "checkpoint.pt")
                    if has_random else "", "datasets": {t: str(root / f"collect_{t}") for t in tasks},
                    "frames_per_episode": int(cfg.grid_probe_frames), "seed": int(pre["train"]["seed"]),
                    "device": pre["train"]["device"]}))
    return stages


def ablation_stages(cfg: DictConfig, root: Path, pretrain_overrides: list[str], prepare, sc) -> list[Stage]:
    """The encoder ablation: a random-init encoder (pretraining with no step, same architecture), then train-ac,
    drift and pure planning on it with the same data, budget and seeds as the pretrained encoder's stages."""
    if not cfg.ablation_tasks:
        return []
    stages = [Stage("pretrain_random", "pretrain_random", "pretrain",
                    pretrain_overrides + ["train.steps=0", "probe.enabled=false"],
                    inputs=[f"collect_{t}" for t in cfg.tasks], prepare=prepare)]
    encoder = root / "pretrain_random" / "checkpoint.pt"
    for t in cfg.ablation_tasks:
        data, ckpt = root / f"collect_{t}", root / f"train_ac_random_{t}" / "checkpoint.pt"
        stages += [
            Stage(f"train_ac_random_{t}", "train_ac_random", "train-ac", sc("train_ac", t) + [
                f"encoder_checkpoint={q(encoder)}", f"dataset={q(data)}", "train.resume=true"],
                inputs=["pretrain_random", f"collect_{t}"], task=t, model="latent, random-init encoder"),
            Stage(f"drift_random_{t}", "drift_random", "drift", sc("drift", t) + [f"checkpoint={q(ckpt)}"],
                  inputs=[f"train_ac_random_{t}"], task=t, model="latent, random-init encoder"),
            Stage(f"plan_random_{t}", "plan_random", "plan", sc("plan", t) + [
                "baselines=false", "gifs=0", f"checkpoint={q(ckpt)}"], inputs=[f"train_ac_random_{t}"], task=t,
                model="latent, random-init encoder")]
    return stages


def headline(runner: StageRunner, tasks: list[str]) -> Headline:
    """Headline figures per task: drift at the largest horizon and planning success, latent vs pixel."""

    out: dict[str, Any] = {"drift": {}, "plan": {}, "grid_probe": {}}
    grid = runner.summary("grid_probe")
    for t, res in (grid.tasks if isinstance(grid, GridProbeSummary) else {}).items():  # mean R² over the dims
        mean = lambda r: float(np.mean([v for v in r.values() if v is not None]))  # noqa: E731
        out["grid_probe"][t] = {"mean_r2": mean(res.r2), "mean_r2_random_init": mean(res.r2_random_init)}
    for t in tasks:
        d, c = runner.summary(f"drift_{t}"), runner.summary(f"compare_{t}")
        r = runner.summary(f"drift_random_{t}")
        if isinstance(d, DriftSummary):
            out["drift"][t] = drift_row(d, c if isinstance(c, CompareSummary) else CompareSummary(),
                                        r if isinstance(r, DriftSummary) else None)
        row = {}
        for model, stage in (("latent", "plan_latent"), ("pixel", "plan_pixel"), ("latent_proprio", "plan_proprio"),
                             ("latent_oracle", "plan_oracle"),
                             ("latent_random_encoder", "plan_random")):
            s = runner.summary(f"{stage}_{t}")
            if isinstance(s, PlanSummary):
                row[model] = {"success_rate": s.success_rate, "success_ci95": s.success_ci95,
                              "seconds_per_plan": s.seconds_per_plan, "mode": s.mode,
                              "privileged_inputs": s.privileged_inputs}
                row.setdefault("random", s.success_rate_random)
                row.setdefault("zero", s.success_rate_zero)
        if row:
            out["plan"][t] = row
    return from_dict(Headline, _rounded(out), "pipeline headline")


def drift_row(d: DriftSummary, c: CompareSummary, r: DriftSummary | None) -> dict[str, Any]:
    """One task's drift at the largest horizon and its landscapes: latent (``d``), pixel (``c``), random-init
    encoder (``r``, when the ablation ran)."""
    row = {"horizon": last(d.horizons), "probe_error_latent": last(d.probe_error),
           "probe_error_pixel": last(d.probe_error_pixel), "probe_error_copy_last": last(d.probe_error_copy_last),
           "probe_error_pixel_direct": last(c.probe_error_pixel_direct), "pixel_error": last(c.pixel_error),
           "pixel_error_copy_last": last(c.pixel_error_copy_last)}
    if r is not None:
        row.update(probe_error_latent_random_encoder=last(r.probe_error),
                   landscape_rank_corr_latent_random_encoder=r.landscape_rank_corr,
                   landscape_temporal_latent_random_encoder=r.landscape_rank_corr_temporal)
    row.update(landscape_rank_corr_latent=d.landscape_rank_corr, landscape_rank_corr_pixel=d.landscape_rank_corr_pixel,
               landscape_temporal_latent=d.landscape_rank_corr_temporal,
               landscape_temporal_pixel=d.landscape_rank_corr_temporal_pixel)
    return row


def _rounded(x: Any) -> Any:
    """Floats to 4 significant digits, recursively (headline figures for humans)."""
    if isinstance(x, float):
        return float(f"{x:.4g}")
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


def log_headline(cfg: DictConfig, root: Path, records: list[dict], tasks: list[str]) -> None:
    """The headline table (text) and each row's success rate (scalars ``headline/<task>/<row>``) to the logger."""
    logger = make_logger(cfg.logger, root, {"tasks": tasks}, "pipeline", setting="logger")
    if logger is None:
        return
    summaries = {r["name"]: load_summary(r["summary"], r["command"]) for r in records if Path(r["summary"]).is_file()}
    rows = headline_rows(records, summaries, tasks)
    try:
        logger.table("headline", HEADLINE_HEADER, [[str(c) for c in row] for row in headline_table(rows)])
        logger.log({f"headline/{r['task']}/{row_label(r)}": r["success"] for r in rows if r["success"] is not None},
                   step=0)
    finally:
        logger.close()


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
    log_headline(cfg, root, runner.records, list(cfg.tasks))
    return {"report": paths["html"], "report_md": paths["md"],
            "stages": {r["name"]: {"summary": r["summary"], "seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"],
                                   "reused": r["reused"]} for r in runner.records},
            "headline": headline(runner, list(cfg.tasks)), "tasks": list(cfg.tasks),
            "seconds_stages": round(sum(r["seconds"] for r in runner.records), 2), "seconds_this_run": total}
