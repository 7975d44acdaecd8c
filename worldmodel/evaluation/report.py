"""The main job's report: ``report.html`` (self-contained: images embedded, no script) and ``report.md``.

Input is the pipeline's list of stage records ``{name, kind, command, task, model, dir, summary, seconds, reused}``
(``summary`` = path of the stage's summary.json). Order, result first:

1. **Headline**: planning success with its 95% interval per task and row (latent model on the pretrained encoder,
   on a random-init encoder, the pixel model, the oracle, random and zero actions), as a chart and a table naming
   each row's encoder, inputs and energy; one sentence per task on what was compared and what it shows.
2. **Per task**: planned episodes as GIFs (camera beside goal image), drift vs horizon (latent, random-init
   encoder, pixel, copy-last), the encoder ablation.
3. **Training**: pretraining probes (pretrained vs random init, per factor), predictor losses, curves.
4. **Protocol** and **stage timings**, as tables.

Missing figures show as "—" rather than failing, so a partial pipeline still gets a report.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from worldmodel.contracts.robustness import load_table
from worldmodel.contracts.summaries import (
    CompareSummary,
    DriftSummary,
    GridProbeSummary,
    PlanSummary,
    PredictorSummary,
    PretrainSummary,
    Summary,
    TrainACSummary,
    load_summary,
)
from worldmodel.evaluation.report_doc import Doc, ci_text, fmt, last, pct
from worldmodel.evaluation.report_plots import plot_curves, plot_drift, plot_headline

# plan stage kind -> (model, encoder), in the headline's row order
PLAN_ROWS = (("plan_latent", "latent", "pretrained"), ("plan_random", "latent", "random init"),
             ("plan_pixel", "pixel", "none (pixel patches)"),
             ("plan_proprio", "latent, with proprio probe", "pretrained"), ("plan_oracle", "latent", "pretrained"))


def read_summaries(records: list[dict]) -> dict[str, Summary]:
    """Stage name -> its summary, for the stages whose summary.json exists (a partial pipeline still reports)."""
    return {r["name"]: load_summary(r["summary"], r["command"]) for r in records
            if r.get("summary") and Path(r["summary"]).is_file()}


def energy_label(summary: PlanSummary, model: str) -> str:
    """What ranked the plans, from a plan summary's protocol: the goal distance and any added terms."""
    p = summary.protocol
    e, sg = p.get("energy") or {}, p.get("subgoals") or {}
    space, plural = ("pixel-patch", "pixel patches") if model == "pixel" else ("latent", "latents")
    parts = [f"{e.get('metric', 'l1').upper()} {space} distance to the goal image"]
    if e.get("temporal_weight"):
        parts.append(f"temporal-distance metric on {plural} (fit without labels) ×{e['temporal_weight']:g}")
    if e.get("probe_weight"):
        parts.append(f"latent-to-state metric ×{e['probe_weight']:g}")
    if e.get("state_weight"):
        what = "proprioception" if (summary.mode or "pure") == "pure" else "state"
        parts.append(f"predicted {what} vs probe(goal) ×{e['state_weight']:g}")
    if sg.get("enabled"):
        parts.append(f"{sg.get('space', 'state')}-space subgoals")
    return " + ".join(parts)


def headline_rows(records: list[dict], summaries: dict[str, Summary], tasks: list[str]) -> list[dict]:
    """One row per (task, planner row): model, encoder, mode, inputs, energy, episodes, success, ci, s/step;
    random and zero actions on the same episodes close each task's rows."""
    rows: list[dict] = []
    for t in tasks:
        base: PlanSummary | None = None
        for kind, model, encoder in PLAN_ROWS:
            rec = next((r for r in records if r.get("kind") == kind and r.get("task") == t), None)
            s = summaries.get(rec["name"]) if rec else None
            if not isinstance(s, PlanSummary):
                continue
            inputs = "frames, proprioception, goal image" + "".join(f"; {p}" for p in s.privileged_inputs)
            rows.append({"task": t, "model": model, "encoder": encoder, "mode": s.mode or "pure", "inputs": inputs,
                         "energy": energy_label(s, model), "episodes": s.episodes,
                         "success": s.success_rate, "ci": s.success_ci95, "seconds_per_step": s.seconds_per_plan})
            base = base or s
        baselines = (("random", base.success_rate_random, base.success_ci95_random),
                     ("zero", base.success_rate_zero, base.success_ci95_zero)) if base else ()
        for name, rate, ci in baselines:
            if rate is not None:
                rows.append({"task": t, "model": f"{name} actions", "encoder": "—", "mode": "—", "inputs": "none",
                             "energy": "—", "episodes": base.episodes, "success": rate, "ci": ci,
                             "seconds_per_step": None})
    return rows


def row_label(row: dict) -> str:
    """Short name of a headline row (chart legend, sentences)."""
    if row["model"].endswith("actions"):
        return row["model"]
    enc = {"pretrained": "pretrained encoder", "random init": "random-init encoder"}.get(row["encoder"])
    return f"{row['model']}" + (f", {enc}" if enc else "") + f" ({row['mode']})"


HEADLINE_HEADER = ["task", "model", "encoder", "mode", "inputs", "energy", "episodes", "success", "95% CI", "s/step"]


def headline_table(rows: list[dict]) -> list[list[Any]]:
    """Headline rows as table cells (HEADLINE_HEADER's columns)."""
    return [[r["task"], r["model"], r["encoder"], r["mode"], r["inputs"], r["energy"], r["episodes"], pct(r["success"]),
             ci_text(r["ci"]), fmt(r["seconds_per_step"])] for r in rows]


def _versus(a: dict | None, b: dict | None) -> str:
    """How row ``a`` compares with row ``b`` by their 95% intervals."""
    if not a or not b or not a.get("ci") or not b.get("ci"):
        return ""
    if a["ci"][0] > b["ci"][1]:
        return f"ahead of {row_label(b)}"
    if a["ci"][1] < b["ci"][0]:
        return f"behind {row_label(b)}"
    return f"not distinguishable from {row_label(b)} at this sample size (intervals overlap)"


def task_sentence(task: str, rows: list[dict]) -> str:
    """One sentence per task: what was compared, on what, and what the intervals say."""
    own = [r for r in rows if r["task"] == task]
    if not own:
        return f"{task}: no planning stage ran."
    get = lambda model, enc: next((r for r in own if r["model"] == model and r["encoder"] == enc  # noqa: E731
                                   and r["mode"] == "pure"), None)
    main, rand, pix = get("latent", "pretrained"), get("latent", "random init"), get("pixel", "none (pixel patches)")
    said = "; ".join(f"{row_label(r)} {pct(r['success'])} {ci_text(r['ci'])}" for r in own)
    verdicts = [v for v in (_versus(main, rand), _versus(main, pix)) if v]
    tail = f" The pretrained-encoder latent model is {' and '.join(verdicts)}." if main and verdicts else ""
    return (f"{task}: {own[0]['episodes']} episodes per row from the same start states and goal images — "
            f"{said}.{tail}")




def pretrain_rows(s: PretrainSummary) -> list[tuple[str, float | None, float | None]]:
    """(figure, pretrained, random init) of the pretraining probes."""
    return [("attentive probe R², features", s.probe_r2, s.probe_r2_random_init),
            ("attentive probe R², features + token coordinates", s.probe_r2_coords, s.probe_r2_coords_random_init),
            ("ridge probe R²", s.probe_r2_ridge, s.probe_r2_ridge_random_init),
            ("effective rank", s.effective_rank, s.effective_rank_random_init)]


AC_COLUMNS = (("steps", "steps"), ("final train loss", "final_loss"), ("val loss, teacher forcing", "val_loss_tf"),
              ("val loss, rollout", "val_loss_rollout"), ("val loss, copy last frame", "val_loss_copy_last"),
              ("val state loss", "val_loss_state_tf"), ("parameters", "parameters"), ("tokens per frame",
              "tokens_per_frame"), ("seconds", "seconds"))


def build_report(out_dir: str | Path, records: list[dict], tasks: list[str], title: str = "worldmodel report",
                 notes: list[str] | None = None, max_gifs: int = 2) -> dict[str, str]:
    """Write ``out_dir/report.html`` and ``out_dir/report.md`` from the pipeline's stage records.

    Args:
        out_dir: report folder (figures go to ``out_dir/report_assets``).
        records: stage records ``{name, kind, command, task, model, dir, summary, seconds, reused}``.
        tasks: task names in display order.
        notes: free lines shown under the title (e.g. preset, total time).
        max_gifs: GIFs shown per (task, model).
    Returns:
        {"html": path, "md": path}.
    """
    root = Path(out_dir)
    assets = root / "report_assets"
    assets.mkdir(parents=True, exist_ok=True)
    summaries = read_summaries(records)

    def summary(kind: str, task: str | None = None, cls: type[Summary] = Summary):
        """The summary of stage ``kind`` (for ``task``), an empty ``cls`` when that stage did not run."""
        rec = next((r for r in records if r.get("kind") == kind and r.get("task") == task), None)
        found = summaries.get(rec["name"]) if rec else None
        return found if isinstance(found, cls) else cls()

    doc = Doc(root)
    doc.heading(title, 1)
    for line in notes or []:
        doc.para(line)

    rows = headline_rows(records, summaries, tasks)
    doc.heading("Headline: goal reaching from pixels", anchor="headline")
    bars = {t: [(row_label(r), r["success"], r["ci"]) for r in rows if r["task"] == t] for t in tasks}
    doc.image(plot_headline(bars, assets / "headline.png"), "planning success per task and row")
    doc.table(HEADLINE_HEADER, headline_table(rows), caption="Planning success per task, model, encoder and energy "
              "(95% Wilson intervals; s/step: seconds per batched replanning step)", css_class="headline")
    doc.items([task_sentence(t, rows) for t in tasks])

    for t in tasks:
        _task_section(doc, t, summary, assets, max_gifs)
    _training_section(doc, records, summaries, assets)
    _protocol_section(doc, tasks, summary)
    _robustness_section(doc, root, assets)
    doc.heading("Stage timings", anchor="timings")
    doc.table(["stage", "command", "seconds", "CPU seconds", "reused from an earlier run"],
              [[r["name"], r["command"], fmt(r.get("seconds"), 4), fmt(r.get("cpu_seconds"), 4), bool(r.get("reused"))]
               for r in records], caption="Every stage of the pipeline, in run order")
    return doc.save(title)


def _gif_caption(path: str, label: str) -> str:
    m = re.search(r"episode_(\d+)_(\w+)\.gif$", str(path))
    outcome = {"success": "reached the goal", "fail": "did not reach the goal"}.get(m[2], m[2]) if m else ""
    return f"{label}, episode {int(m[1]) if m else '?'}: {outcome}. Left: camera; right: goal image."


def _task_section(doc: Doc, task: str, summary, assets: Path, max_gifs: int) -> None:
    """Per task: planned episodes, drift vs horizon, the encoder ablation."""
    doc.heading(task, anchor=f"task-{task}")
    figures = [(g, _gif_caption(g, label)) for kind, label in (("plan_latent", "latent, pretrained encoder"),
                                                               ("plan_pixel", "pixel model"))
               for g in summary(kind, task, PlanSummary).gifs[:max_gifs]]
    if figures:
        doc.heading("Planned episodes", 3)
        doc.gallery(figures, width=260)
    d, r = summary("drift", task, DriftSummary), summary("drift_random", task, DriftSummary)
    c = summary("compare", task, CompareSummary)
    if d.horizons:
        doc.heading("Drift: open-loop error vs horizon", 3)
        lines = [("latent, pretrained encoder", d.probe_error, "o-"),
                 ("latent, random-init encoder", r.probe_error, "s--"),
                 ("pixel model (frames encoded, same probe)", d.probe_error_pixel, "^-"),
                 ("pixel model (probe on pixels)", c.probe_error_pixel_direct, "v:"),
                 ("copy the last frame", d.probe_error_copy_last, "k-.")]
        doc.image(plot_drift(task, list(d.horizons), lines, assets / f"drift_{task}.png"),
                  f"drift vs horizon, {task}", width=760)
        doc.table(["at horizon " + fmt(last(d.horizons)), "state-probe error"],
                  [[label, fmt(last(ys))] for label, ys, _ in lines if ys],
                  caption="State-probe error at the largest horizon (lower is better)")
        scape = [[f"{label}, {energy}", fmt(corr), fmt(steps)]
                 for energy, label, corr, steps in landscape_rows(d, r) if corr is not None]
        if scape:
            dims = d.landscape_dims
            doc.table(["model, energy", "vs true distance", "vs steps to the goal"], scape,
                      caption="Energy landscape: rank correlation of the planner's distance to a held-out goal frame "
                              f"with the true distance over {', '.join(dims) if isinstance(dims, list) else dims} "
                              "(1 is a perfect slope)")
    if r.horizons:
        doc.heading("Encoder ablation: the same predictor, data and budget on a random-init encoder", 3)
        ac, ac_r = summary("train_ac", task, TrainACSummary), summary("train_ac_random", task, TrainACSummary)
        plan, plan_r = summary("plan_latent", task, PlanSummary), summary("plan_random", task, PlanSummary)
        doc.table(["encoder", "val loss, rollout", "drift at largest horizon", "planning success", "95% CI"],
                  [["pretrained", fmt(ac.val_loss_rollout), fmt(last(d.probe_error)),
                    pct(plan.success_rate if plan.episodes else None), ci_text(plan.success_ci95)],
                   ["random init", fmt(ac_r.val_loss_rollout), fmt(last(r.probe_error)),
                    pct(plan_r.success_rate if plan_r.episodes else None), ci_text(plan_r.success_ci95)]],
                  caption=f"{task}: pretrained vs random-init encoder")


def landscape_rows(d: DriftSummary, r: DriftSummary) -> list[tuple[str, str, float | None, float | None]]:
    """(energy, model, ρ vs true distance, ρ vs steps) of the latent, random-init and pixel models."""
    return [("temporal metric (the planner's energy)", "latent, pretrained encoder", d.landscape_rank_corr_temporal,
             d.landscape_rank_corr_steps_temporal),
            ("temporal metric (the planner's energy)", "latent, random-init encoder", r.landscape_rank_corr_temporal,
             r.landscape_rank_corr_steps_temporal),
            ("temporal metric (the planner's energy)", "pixel model", d.landscape_rank_corr_temporal_pixel,
             d.landscape_rank_corr_steps_temporal_pixel),
            ("token L1", "latent, pretrained encoder", d.landscape_rank_corr, d.landscape_rank_corr_steps),
            ("token L1", "latent, random-init encoder", r.landscape_rank_corr, r.landscape_rank_corr_steps),
            ("token L1", "pixel model", d.landscape_rank_corr_pixel, d.landscape_rank_corr_steps_pixel)]


def _training_section(doc: Doc, records: list[dict], summaries: dict[str, Summary], assets: Path) -> None:
    """Pretraining probes and curves, then the predictors' losses and curves."""
    doc.heading("Training", anchor="training")
    for r in [r for r in records if r.get("kind") == "pretrain"]:
        s = summaries.get(r["name"])
        if not isinstance(s, PretrainSummary):
            continue
        doc.heading("Pretraining (V-JEPA)", 3)
        doc.para(f"{fmt(s.steps)} steps, final loss {fmt(s.final_loss)}, regularizer "
                 f"{s.regularizer or '—'}, width {fmt(s.embed_dim)}, {fmt(s.videos)} videos "
                 f"({fmt(s.bad_videos)} unreadable).")
        probe_rows = [[label, fmt(ours), fmt(rand)] for label, ours, rand in pretrain_rows(s) if ours is not None]
        if probe_rows:
            doc.table(["figure", "pretrained", "random init"], probe_rows,
                      caption="Probes on frozen features: the pretrained encoder vs the same architecture at "
                              "random init")
        per, per_r = s.probe_r2_per_factor or {}, s.probe_r2_per_factor_random_init or {}
        if per:
            doc.table(["factor of variation", "R², pretrained", "R², random init"],
                      [[k, fmt(v), fmt(per_r.get(k))] for k, v in per.items()],
                      caption="Attentive-probe R² per factor of the synthetic videos")
        grid = next((summaries.get(g["name"]) for g in records if g.get("kind") == "grid_probe"), None)
        for task, res in (grid.tasks if isinstance(grid, GridProbeSummary) else {}).items():
            rand = res.r2_random_init
            doc.table(["state dim", "R², pretrained", "R², random init", "difference"],
                      [[k, fmt(v), fmt(rand.get(k)), fmt(None if v is None or rand.get(k) is None else v - rand[k])]
                       for k, v in res.r2.items()],
                      caption=f"Grid probe on held-out {task} episodes ({res.frames_test} frames): ridge on "
                              f"the flattened token grid, R² per state dim")
        doc.image(plot_curves([r], assets / f"curves_{r['name']}.png", "pretrain"), "pretraining curves")
    for kind, label in (("train_ac", "Latent action-conditioned predictor"), ("train_pixel", "Pixel baseline"),
                        ("train_ac_random", "Latent predictor on the random-init encoder")):
        recs = [r for r in records if r.get("kind") == kind]
        if not recs:
            continue
        doc.heading(label, 3)
        found = [summaries.get(r["name"]) or PredictorSummary() for r in recs]
        cols = [(h, k) for h, k in AC_COLUMNS if any(getattr(s, k, None) is not None for s in found)]
        doc.table(["task"] + [h for h, _ in cols],
                  [[r.get("task") or "—"] + [fmt(getattr(s, k, None), 4) for _, k in cols]
                   for r, s in zip(recs, found)],
                  caption=f"{label}: losses on held-out episodes")
        doc.image(plot_curves(recs, assets / f"curves_{kind}.png", kind.replace("_", "-")), f"{label} curves")


def _protocol_section(doc: Doc, tasks: list[str], summary) -> None:
    """Each task's planning protocol as a table: episodes, budget, goal, success criterion, planner."""
    rows = []
    for t in tasks:
        s = summary("plan_latent", t, PlanSummary)
        p = s.protocol
        if not p:
            continue
        pl = p.get("planner") or {}
        rows.append([t, p.get("env_id") or s.env or "—", s.episodes, p.get("budget"),
                     p.get("goal_offset"), p.get("criterion") or "—",
                     f"{pl.get('name', '—')}: horizon {pl.get('horizon')}, {pl.get('samples')} samples, "
                     f"{pl.get('elites')} elites, {pl.get('iterations')} iterations",
                     p.get("execute_steps"), p.get("resolution"), p.get("precision") or "—",
                     f"{p['seeds'][0]}–{p['seeds'][-1]}" if p.get("seeds") else "—"])
    if rows:
        doc.heading("Protocol", anchor="protocol")
        doc.table(["task", "environment", "episodes", "budget (env steps)", "goal offset (steps)", "success",
                   "planner", "steps executed per plan", "frame size (px)", "precision", "seeds"], rows,
                  caption="How each task was planned and judged (the same for every row of the task)")


def _robustness_section(doc: Doc, root: Path, assets: Path) -> None:
    """The robustness tables ``scripts/robustness.py`` wrote under ``root/robustness/<task>/table.json``: success per
    model under each factor of variation set at plan time, as a table and grouped bars."""
    paths = sorted((root / "robustness").glob("*/table.json"))
    if not paths:
        return
    doc.heading("Robustness: factors of variation at plan time", anchor="robustness")
    for path in paths:
        t = load_table(path)
        factors = t.factors()
        bars = {f: [(m, c.success_rate, c.success_ci95) for m in t.models() if (c := t.cell(m, f))] for f in factors}
        doc.image(plot_headline(bars, assets / f"robustness_{t.task}.png", title=f"{t.task}: success under each "
                                f"factor of variation (95% Wilson intervals)"), f"robustness of {t.task}")
        rows = []
        for m in t.models():
            cells = [t.cell(m, f) for f in factors]
            rows.append([m, *[f"{c.success_rate:.0%} [{c.success_ci95[0]:.0%}, {c.success_ci95[1]:.0%}]"
                              if c else "—" for c in cells]])
        doc.table(["model", *factors], rows, caption=f"{t.task}: {t.episodes} episodes per cell (goals of seed "
                  f"{t.seed} on), the variation set at plan time only; made by scripts/robustness.py")
