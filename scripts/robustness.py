"""Robustness table: the main job's planners, trained on nominal frames, planning on shifted ones.

    python scripts/robustness.py runs/main --task PointReach --episodes 50
    python scripts/robustness.py runs/main --task PointReach --model "latent, varied=runs/varied/train_ac_PointReach"

For each model the main job trained on the task (latent: ``train_ac_<task>``; pixel: ``train_pixel_<task>``;
random-init encoder: ``train_ac_random_<task>`` where it exists; ``--model "name=folder"`` adds a row, e.g. a
predictor trained on varied data) and each factor of variation below, runs
``wm plan preset=cpu`` with the same goals (seed 100000, as the main job's plan stages), the main job's latent
energy, and the env's ``variation`` set at plan time only (the training data stay nominal), then prints one markdown
table of success with 95% intervals and writes it as ``<run>/robustness/<task>/table.json``, which the pipeline's
report shows (re-run ``wm pipeline`` with the same settings: every stage is reused, the report is rebuilt). Every
row's ``privileged_inputs`` must be empty, or the script stops.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from worldmodel.cli import main as wm
from worldmodel.contracts.records import to_dict
from worldmodel.contracts.robustness import RobustnessCell, RobustnessTable
from worldmodel.contracts.summaries import PlanSummary, load_summary
from worldmodel.utils.atomic import write_text

SEED = 100_000  # the main job's plan stages' goals

FACTORS = {  # name -> env.kwargs.variation at plan time; always given: a plan otherwise inherits the data's variation
    "nominal": "{}",
    "floor colour": "{floor_rgb: [0.45, 0.6, 0.85]}",
    "lighting": "{light: 0.6}",
    "moving distractors": "{distractors: 3, distractor_speed: 0.05}",
    "frame noise": "{frame_noise: 10.0}",
}
MODELS = {"latent": "train_ac_{task}", "pixel": "train_pixel_{task}", "random-init encoder": "train_ac_random_{task}"}


def plan(checkpoint: Path, variation: str, episodes: int, out: Path) -> PlanSummary:
    """One ``wm plan`` run (reused when its summary exists); its summary."""
    if not (out / "summary.json").is_file():
        argv = ["plan", "preset=cpu", f"checkpoint={checkpoint}", f"episodes={episodes}", f"seed={SEED}",
                "baselines=false", "gifs=0", f"out_dir={out}", f"env.kwargs.variation={variation}"]
        if wm(argv) != 0:
            sys.exit(f"robustness: wm {' '.join(argv)} failed")
    summary = load_summary(out / "summary.json", "plan")
    if summary.privileged_inputs:
        sys.exit(f"robustness: {out} used privileged inputs {summary.privileged_inputs}")
    if summary.protocol.get("variation") != yaml.safe_load(variation):
        sys.exit(f"robustness: {out} planned under {summary.protocol.get('variation')}, not {variation}")
    return summary


def shifted_drift(ckpts: dict[str, Path], variation: str, out: Path) -> dict[str, float]:
    """Open-loop drift under a shift: the latent model's dataset collected again with the same seeds and settings
    (the same states and actions) under ``variation``, then ``wm drift`` of every model on its held-out episodes;
    the state-probe error at the largest horizon per model (in training state stds)."""
    latent = ckpts["latent"]
    source = Path(load_summary(latent.parent / "summary.json", "train-ac").dataset)
    settings = yaml.safe_load((source / "config.yaml").read_text())
    data = out / "data"
    if not (data / "summary.json").is_file():
        argv = ["collect", "preset=cpu", f"env.id={settings['env']['id']}", f"episodes={settings['episodes']}",
                f"steps={settings['steps']}", f"seed={settings['seed']}", f"policy={settings['policy']}",
                f"resolution={settings['resolution']}", f"env.kwargs.variation={variation}", f"out_dir={data}"]
        if wm(argv) != 0:
            sys.exit(f"robustness: wm {' '.join(argv)} failed")
    drift = out / "drift"
    if not (drift / "summary.json").is_file():
        others = [str(c) for name, c in ckpts.items() if name == "pixel"]
        argv = ["drift", "preset=cpu", f"checkpoint={latent}", f"dataset={data}", f"out_dir={drift}",
                f"compare_checkpoints=[{','.join(others)}]"]
        if wm(argv) != 0:
            sys.exit(f"robustness: wm {' '.join(argv)} failed")
    d = load_summary(drift / "summary.json", "drift")
    out_errors = {"latent": d.probe_error[-1] if d.probe_error else None,
                  "copy last": d.probe_error_copy_last[-1] if d.probe_error_copy_last else None}
    if d.probe_error_pixel:
        out_errors["pixel"] = d.probe_error_pixel[-1]
    return out_errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a main-job folder (wm pipeline out_dir)")
    ap.add_argument("--task", default="PointReach")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None, help="plan folders and table.json (default: <run>/robustness, "
                    "where the pipeline's report finds them)")
    ap.add_argument("--model", action="append", default=[], help="an extra row: 'name=run folder of a checkpoint'")
    ap.add_argument("--drift", action="store_true", help="also the open-loop drift of the latent and pixel models "
                    "under each shift (the latent model's dataset collected again under it)")
    args = ap.parse_args()
    out = args.out or args.run / "robustness"
    models = {name: args.run / pattern.format(task=args.task) / "checkpoint.pt" for name, pattern in MODELS.items()}
    for extra in args.model:
        name, _, folder = extra.partition("=")
        models[name] = Path(folder) / "checkpoint.pt"
    models = {name: ckpt for name, ckpt in models.items() if ckpt.is_file()}
    if not models:
        sys.exit(f"robustness: no checkpoint of {args.task} under {args.run}")
    print(f"| {args.task}, {args.episodes} episodes | " + " | ".join(FACTORS) + " |")
    print("|---" * (len(FACTORS) + 1) + "|")
    table = RobustnessTable(task=args.task, episodes=args.episodes, seed=SEED)
    for name, ckpt in models.items():
        texts = []
        for factor, variation in FACTORS.items():
            tag = factor.replace(" ", "_")
            row = "".join(c if c.isalnum() else "_" for c in name)
            folder = out / args.task / row / tag
            s = plan(ckpt, variation, args.episodes, folder)
            lo, hi = s.success_ci95
            texts.append(f"{s.success_rate:.0%} [{lo:.0%}, {hi:.0%}]")
            table.cells.append(RobustnessCell(
                model=name, factor=factor, variation=s.protocol.get("variation") or {},
                train_variation=s.protocol.get("train_variation") or {}, success_rate=s.success_rate,
                success_ci95=[lo, hi], summary=str(folder / "summary.json")))
        print(f"| {name} | " + " | ".join(texts) + " |", flush=True)
    if args.drift:
        print(f"\n| {args.task}: probe error at the largest horizon | " + " | ".join(FACTORS) + " |")
        print("|---" * (len(FACTORS) + 1) + "|")
        errors = {f: shifted_drift(models, v, out / args.task / "shift" / f.replace(" ", "_"))
                  for f, v in FACTORS.items()}
        for name in ("latent", "pixel", "copy last"):
            print(f"| {name} | " + " | ".join(f"{errors[f].get(name, float('nan')):.3f}" for f in FACTORS) + " |")
        table = replace(table, drift={f: {k: v for k, v in e.items() if v is not None} for f, e in errors.items()})
    write_text(out / args.task / "table.json", json.dumps(to_dict(table), indent=1))
    print(f"robustness: {out / args.task / 'table.json'}")


if __name__ == "__main__":
    main()
