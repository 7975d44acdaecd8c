"""Kill harness: SIGKILL (or SIGTERM) every stage at random moments, rerun it, and compare with an uninterrupted run.

    python scripts/kill_harness.py --kills 30 --out runs/kill_harness                  # ~15 min on 2 cores
    python scripts/kill_harness.py --kills 30 --signal TERM --out runs/term_harness    # preemption

Stages (smoke preset, each writing to one folder): collect, pretrain, train-ac, train-pixel, plan, pipeline.
Training stages checkpoint every 2 steps and rerun with ``train.resume=true`` (what the pipeline does), so kills
land before, between and during checkpoint writes; collection resumes by episode index; plan and pipeline
rerun the same command. Per stage: one uninterrupted reference run, then ``kills / 6`` rounds of: start the
command, signal its process group after a uniform random delay in (0, reference duration), rerun it to
completion, compare every file with the reference.

With ``--signal TERM`` (what a scheduler sends before it kills) the training stages checkpoint only at the end
(``train.ckpt_every=0``), each signalled run must exit with 75 (preempted, state saved), and must have kept
everything it had finished when the signal came: training steps logged before it are in the checkpoint, episodes
finished before it are on disk, planning phases and pipeline stages finished before it are stored
(``lost_done_work`` per round; :func:`work_units`). Under SIGKILL the same figure says what a kill loses.

A file counts as ``identical`` (same bytes), ``same content`` (checkpoints: every tensor equal; npz: every array
equal; mp4: every decoded frame equal; json/jsonl: equal after dropping wall-clock fields such as ``seconds``,
``time``, ``frames_per_s``, and the fields that say what this invocation did: ``start_step``, ``new_episodes``,
``latent_cache_hit``, a pipeline stage's ``reused``), or ``differs`` (listed with the reason).
Writes ``<out>/kill_report.json`` and
prints a table. Needs nothing but the project; runs on CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

TIMING_KEYS = {"seconds", "time", "cpu_seconds", "finished", "frames_per_s", "seconds_per_step", "steps_per_s",
               "seconds_per_plan", "seconds_per_plan_full_batch", "seconds_per_plan_per_episode",
               "seconds_planner_episodes", "wall_seconds", "clips_per_s", "encode_seconds", "probe_seconds",
               "collect_seconds", "train_seconds", "tokens_per_s"}
# what this invocation did rather than what it produced: differ between a first run and a rerun by design
RUN_KEYS = {"start_step", "new_episodes", "new_frames", "latent_cache_hit", "reused"}


def stages(inputs: Path, work: Path, sig: str = "KILL") -> dict[str, list[str]]:
    """stage -> argv (after ``wm``); outputs go to work/<stage>, fixed inputs come from ``inputs``. Under a
    stop signal the training stages run longer (and the collection collects more), so that most signals land
    in the work rather than in the start-up, and checkpoint only at the end."""
    kill = sig == "KILL"
    train = [f"train.ckpt_every={2 if kill else 0}", "train.log_every=1", "train.resume=true"]
    pre, ac, eps = (8, 12, 8) if kill else (150, 300, 24)
    return {
        "collect": ["collect", "preset=smoke", f"episodes={eps}", "workers=2", "resolution=32",
                    f"out_dir={work / 'collect'}"],
        "pretrain": ["pretrain", "preset=smoke", f"data.synthetic_dir={work / 'pretrain' / 'synthetic'}",
                     f"train.steps={pre}", f"out_dir={work / 'pretrain'}", *train],
        "train-ac": ["train-ac", "preset=smoke", "bootstrap=false", f"dataset={inputs / 'data'}",
                     f"encoder_checkpoint={inputs / 'encoder' / 'checkpoint.pt'}", f"train.steps={ac}",
                     f"latent_cache_dir={work / 'train-ac' / 'cache'}", f"out_dir={work / 'train-ac'}", *train],
        "train-pixel": ["train-pixel", "preset=smoke", f"dataset={inputs / 'data'}",
                        f"latent_checkpoint={inputs / 'ac' / 'checkpoint.pt'}", f"train.steps={ac}",
                        f"out_dir={work / 'train-pixel'}", *train],
        "plan": ["plan", "preset=smoke", "bootstrap=false", f"checkpoint={inputs / 'ac' / 'checkpoint.pt'}",
                 "episodes=4", f"out_dir={work / 'plan'}"],
        "pipeline": ["pipeline", "preset=smoke", f"out_dir={work / 'pipeline'}"],
    }


def wm(argv: list[str], log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worldmodel.cli", *argv], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "2"})


def run_to_end(argv: list[str], log) -> float:
    t0 = time.time()
    proc = wm(argv, log)
    if proc.wait() != 0:
        raise SystemExit(f"wm {' '.join(argv)} failed (exit {proc.returncode}); see the log")
    return time.time() - t0


def kill_after(argv: list[str], delay: float, log, folder: Path, sig: str = "KILL") -> dict | None:
    """Start the command and send ``sig`` to its whole process group after ``delay`` s. None if it had finished;
    else its exit code and the work units finished at the signal and kept after the exit."""
    proc = wm(argv, log)
    try:
        proc.wait(timeout=delay)
        return None
    except subprocess.TimeoutExpired:
        done = work_units(folder, kept=False)
        os.killpg(proc.pid, getattr(signal, f"SIG{sig}"))
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:  # it did not stop: reported, then killed
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = "hung"
        return {"exit": code, "done_at_signal": done, "kept": work_units(folder, kept=True)}


def work_units(folder: Path, kept: bool) -> int:
    """Finished work in a run folder (a stage's, or a pipeline's with its stage folders): training steps (with
    ``kept``: the checkpoint's step, what survives; else the steps logged in metrics.jsonl, what was done),
    complete episodes, stored planning phases, and 1000 per finished command (a summary.json)."""
    units = 0
    for metrics in folder.rglob("metrics.jsonl"):
        ckpt = metrics.parent / "checkpoint.pt"
        if kept:
            units += int(torch.load(ckpt, map_location="cpu", weights_only=True)["step"]) if ckpt.is_file() else 0
        else:
            rows = [ln for ln in metrics.read_text().splitlines() if ln.endswith("}")]
            units += int(json.loads(rows[-1])["step"]) + 1 if rows else 0
    units += len(list(folder.rglob("episodes/ep_*.npz"))) + len(list(folder.rglob(".phases/*.npz")))
    return units + 1000 * len(list(folder.rglob("summary.json")))


# ---- comparison --------------------------------------------------------------------------------------------
def _is_timing(key: str) -> bool:
    return key in TIMING_KEYS or key.startswith("seconds") or key.endswith(("_seconds", "_per_s"))


def _drop_timings(x):
    if isinstance(x, dict):
        return {k: _drop_timings(v) for k, v in x.items() if not (_is_timing(k) or k in RUN_KEYS)}
    if isinstance(x, list):
        return [_drop_timings(v) for v in x]
    return x


def _same_tree(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
            a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b))
    return a == b


def same_content(ref: Path, got: Path) -> tuple[bool, str]:
    """(equal, what was compared) for two files of the same name."""
    suffix = ref.suffix
    if ref.parent.name == "latent_cache":  # a cache whose key hashes the dataset files' mtimes by design
        a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (ref, got))
        return _same_tree({**a, "fingerprint": 0}, {**b, "fingerprint": 0}), "cached latents, key aside"
    if ref.name == "report.md":  # rendered from the summaries, with this run's seconds in its tables
        return _report_md(ref.read_text()) == _report_md(got.read_text()), "report without wall-clock columns"
    if ref.name == "report.html":
        return _report_html(ref.read_text()) == _report_html(got.read_text()), "report without wall-clock columns"
    if suffix == ".pt":
        a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (ref, got))
        return _same_tree(a, b), "every tensor"
    if suffix == ".npz":
        with np.load(ref) as a, np.load(got) as b:
            return a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files), "every array"
    if suffix == ".mp4":
        from worldmodel.data.episodes import read_video
        return np.array_equal(read_video(ref), read_video(got)), "every decoded frame"
    if ref.name == "fingerprint.json":  # pipeline stage caching: input identities carry finish times by design
        a, b = ({k: v for k, v in json.loads(p.read_text()).items() if k not in ("inputs", "fingerprint")}
                for p in (ref, got))
        return _drop_timings(a) == _drop_timings(b), "stage record without input finish times"
    if suffix == ".json":
        a, b = (json.loads(p.read_text()) for p in (ref, got))
        return _drop_timings(a) == _drop_timings(b), "json without wall-clock fields"
    if suffix == ".jsonl":
        rows = [[_drop_timings(json.loads(ln)) for ln in p.read_text().splitlines()] for p in (ref, got)]
        return rows[0] == rows[1], "json lines without wall-clock fields"
    return False, "bytes"


def _timing_column(header: str) -> bool:
    header = header.strip().lower()
    return "seconds" in header or header in ("reused", "s/step")


def _report_md(text: str) -> str:
    """A report.md without wall-clock content: the "total ... this run" line and every table column headed
    seconds / CPU seconds / s/step / reused."""
    out, drop = [], None
    for line in text.splitlines():
        if line.startswith("total ") and "this run" in line:
            continue
        if line.startswith("|"):
            cells = line.strip().strip("|").split("|")
            if drop is None:  # a table's header row
                drop = {i for i, c in enumerate(cells) if _timing_column(c)}
            line = "|".join(c for i, c in enumerate(cells) if i not in drop)
        else:
            drop = None
        out.append(line)
    return "\n".join(out)


def _report_html(text: str) -> str:
    """report.html with the same content left out as ``_report_md``."""
    text = re.sub(r"<p>total [^<]*this run[^<]*</p>", "", text)

    def table(m: re.Match) -> str:
        rows = re.findall(r"<tr>(.*?)</tr>", m.group(0), flags=re.S)
        if not rows:
            return m.group(0)
        heads = re.findall(r"<th>(.*?)</th>", rows[0], flags=re.S)
        drop = {i for i, h in enumerate(heads) if _timing_column(h)}
        keep = [[c for i, c in enumerate(re.findall(r"<t[hd]>(.*?)</t[hd]>", r, flags=re.S)) if i not in drop]
                for r in rows]
        return repr(keep)

    return re.sub(r"<table>.*?</table>", table, text, flags=re.S)


def compare(ref: Path, got: Path) -> dict:
    """{relative path: identical | same content (...) | differs (...) | missing | extra}."""
    out = {}
    ref_files = {p.relative_to(ref) for p in ref.rglob("*") if p.is_file()}
    got_files = {p.relative_to(got) for p in got.rglob("*") if p.is_file()}
    for rel in sorted(ref_files | got_files, key=str):
        if rel not in got_files:
            out[str(rel)] = "missing"
        elif rel not in ref_files:
            out[str(rel)] = "extra"
        elif (ref / rel).read_bytes() == (got / rel).read_bytes():
            out[str(rel)] = "identical"
        else:
            ok, what = same_content(ref / rel, got / rel)
            out[str(rel)] = f"same content ({what})" if ok else f"differs ({what})"
    return out


# ---- main --------------------------------------------------------------------------------------------------
def build_inputs(inputs: Path, log) -> None:
    """The fixed inputs of train-ac, train-pixel and plan: a smoke train-ac run with its bootstrap data."""
    if (inputs / "ac" / "checkpoint.pt").is_file():
        return
    run_to_end(["train-ac", "preset=smoke", f"out_dir={inputs / 'ac'}"], log)
    shutil.move(inputs / "ac" / "bootstrap" / "data", inputs / "data")
    shutil.move(inputs / "ac" / "bootstrap" / "encoder", inputs / "encoder")
    shutil.rmtree(inputs / "ac")
    run_to_end(["train-ac", "preset=smoke", "bootstrap=false", f"dataset={inputs / 'data'}",
                f"encoder_checkpoint={inputs / 'encoder' / 'checkpoint.pt'}", f"out_dir={inputs / 'ac'}"], log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=30, help="kills in all, spread evenly over the stages")
    ap.add_argument("--out", default="runs/kill_harness", help="working folder (inputs, references, runs, report)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--stages", default="", help="comma-separated subset of stages (default: all)")
    ap.add_argument("--signal", default="KILL", choices=["KILL", "TERM", "USR1"], help="what to send")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    inputs, work, refs = out / "inputs", out / "work", out / "reference"
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "commands.log", "a")
    build_inputs(inputs, log)
    rng = random.Random(args.seed)
    plan = stages(inputs, work, args.signal)
    names = [s for s in plan if not args.stages or s in args.stages.split(",")]
    per_stage = [args.kills // len(names) + (i < args.kills % len(names)) for i in range(len(names))]
    report = {"kills": args.kills, "signal": args.signal, "seed": args.seed, "stages": {}}
    for name, kills in zip(names, per_stage):
        argv = plan[name]
        shutil.rmtree(work, ignore_errors=True)
        seconds = run_to_end(argv, log)
        shutil.rmtree(refs / name, ignore_errors=True)
        shutil.move(work / name, refs / name)
        rounds = []
        for k in range(kills):
            span = seconds
            for _ in range(5):  # a run faster than the reference may finish first: draw again, earlier
                shutil.rmtree(work, ignore_errors=True)
                delay = rng.uniform(0.0, span)
                stop = kill_after(argv, delay, log, work / name, args.signal)
                if stop is not None:
                    break
                span = max(delay, 0.5)
            rerun = run_to_end(argv, log)
            files = compare(refs / name, work / name)
            bad = {f: v for f, v in files.items() if not (v == "identical" or v.startswith("same content"))}
            killed = stop is not None
            lost = max(0, stop["done_at_signal"] - stop["kept"]) if killed else 0
            if killed and args.signal != "KILL" and stop["exit"] not in (0, 75):  # 0: it finished all the same
                bad["<exit code>"] = f"{stop['exit']}, expected 75 (preempted)"
            if lost and args.signal != "KILL":
                bad["<work lost>"] = f"{lost} units finished before the signal are not kept"
            rounds.append({"delay_s": round(delay, 2), "killed": killed, **(stop or {}), "lost_done_work": lost,
                           "rerun_s": round(rerun, 1),
                           "files": len(files), "identical": sum(v == "identical" for v in files.values()),
                           "same_content": sum(v.startswith("same content") for v in files.values()),
                           "not_equal": bad})
            if bad:  # kept for inspection
                shutil.rmtree(out / "failed" / f"{name}_{k}", ignore_errors=True)
                shutil.copytree(work / name, out / "failed" / f"{name}_{k}")
            outcome = f"exit {stop['exit']}, lost {lost}" if killed else "had finished"
            print(f"{name:12s} {args.signal} {k + 1}/{kills} at {delay:5.1f}s of {seconds:5.1f}s ({outcome}): "
                  f"{len(files) - len(bad)}/{len(files)} files equal"
                  + (f"; differ: {bad}" if bad else ""), flush=True)
        report["stages"][name] = {"command": "wm " + " ".join(argv), "reference_s": round(seconds, 1),
                                  "rounds": rounds}
    shutil.rmtree(work, ignore_errors=True)
    (out / "kill_report.json").write_text(json.dumps(report, indent=2))
    total = sum(len(s["rounds"]) for s in report["stages"].values())
    killed = sum(r["killed"] for s in report["stages"].values() for r in s["rounds"])
    clean = sum(not r["not_equal"] for s in report["stages"].values() for r in s["rounds"])
    kept = sum(r["killed"] and not r["lost_done_work"] for s in report["stages"].values() for r in s["rounds"])
    print(f"\n{total} rounds, {killed} signalled mid-run ({args.signal}), {clean} with every file equal to the "
          f"reference, {kept} of {killed} kept all work finished before the signal; report: {out / 'kill_report.json'}")


if __name__ == "__main__":
    main()
