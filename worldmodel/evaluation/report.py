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

from worldmodel.evaluation.report_doc import Doc, ci_text, fmt, last, pct, pick, read_json
from worldmodel.evaluation.report_plots import plot_curves, plot_drift, plot_headline

# plan stage kind -> (model, encoder), in the headline's row order
PLAN_ROWS = (("plan_latent", "latent", "pretrained"), ("plan_random", "latent", "random init"),
             ("plan_pixel", "pixel", "none (pixel patches)"),
             ("plan_proprio", "latent, with proprio probe", "pretrained"), ("plan_oracle", "latent", "pretrained"))


def energy_label(summary: dict, model: str) -> str:
    """What ranked the plans, from a plan summary's protocol: the goal distance and any added terms."""
    p = summary.get("protocol") or {}
    e, sg = p.get("energy") or {}, p.get("subgoals") or {}
    space, plural = ("pixel-patch", "pixel patches") if model == "pixel" else ("latent", "latents")
    parts = [f"{e.get('metric', 'l1').upper()} {space} distance to the goal image"]
    if e.get("temporal_weight"):
        parts.append(f"temporal-distance metric on {plural} (fit without labels) ×{e['temporal_weight']:g}")
    if e.get("probe_weight"):
        parts.append(f"latent-to-state metric ×{e['probe_weight']:g}")
    if e.get("state_weight"):
        what = "proprioception" if summary.get("mode", "pure") == "pure" else "state"
        parts.append(f"predicted {what} vs probe(goal) ×{e['state_weight']:g}")
    if sg.get("enabled"):
        parts.append(f"{sg.get('space', 'state')}-space subgoals")
    return " + ".join(parts)


def headline_rows(records: list[dict], summaries: dict[str, dict], tasks: list[str]) -> list[dict]:
    """One row per (task, planner row): model, encoder, mode, inputs, energy, episodes, success, ci, s/step;
    random and zero actions on the same episodes close each task's rows."""
    rows: list[dict] = []
    for t in tasks:
        base: dict = {}
        for kind, model, encoder in PLAN_ROWS:
            rec = next((r for r in records if r.get("kind") == kind and r.get("task") == t), None)
            s = summaries.get(rec["name"], {}) if rec else {}
            if not s:
                continue
            privileged = s.get("privileged_inputs") or []
            rows.append({"task": t, "model": model, "encoder": encoder, "mode": s.get("mode") or "pure",
                         "inputs": "frames, proprioception, goal image" + "".join(f"; {p}" for p in privileged),
                         "energy": energy_label(s, model), "episodes": s.get("episodes"),
                         "success": s.get("success_rate"), "ci": s.get("success_ci95"),
                         "seconds_per_step": pick(s, "seconds_per_plan", "seconds_per_step")})
            base = base or s
        for name in ("random", "zero"):
            if base.get(f"success_rate_{name}") is not None:
                rows.append({"task": t, "model": f"{name} actions", "encoder": "—", "mode": "—", "inputs": "none",
                             "energy": "—", "episodes": base.get("episodes"), "success": base[f"success_rate_{name}"],
                             "ci": base.get(f"success_ci95_{name}"), "seconds_per_step": None})
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


PRETRAIN_ROWS = (("attentive probe R², features", "probe_r2"), ("attentive probe R², features + token coordinates",
                 "probe_r2_coords"), ("ridge probe R²", "probe_r2_ridge"), ("effective rank", "effective_rank"))
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
    summaries = {r["name"]: read_json(r.get("summary")) for r in records}
    stage = lambda kind, task=None: next((r for r in records  # noqa: E731
                                          if r.get("kind") == kind and r.get("task") == task), None)
    summary = lambda kind, task=None: summaries.get((stage(kind, task) or {}).get("name"), {})  # noqa: E731
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
               for g in list(summary(kind, task).get("gifs") or [])[:max_gifs]]
    if figures:
        doc.heading("Planned episodes", 3)
        doc.gallery(figures, width=260)
    d, c, r = summary("drift", task), summary("compare", task), summary("drift_random", task)
    if d:
        doc.heading("Drift: open-loop error vs horizon", 3)
        lines = [("latent, pretrained encoder", d.get("probe_error"), "o-"),
                 ("latent, random-init encoder", r.get("probe_error"), "s--"),
                 ("pixel model (frames encoded, same probe)", d.get("probe_error_pixel"), "^-"),
                 ("pixel model (probe on pixels)", c.get("probe_error_pixel_direct"), "v:"),
                 ("copy the last frame", d.get("probe_error_copy_last"), "k-.")]
        doc.image(plot_drift(task, list(d.get("horizons") or []), lines, assets / f"drift_{task}.png"),
                  f"drift vs horizon, {task}", width=760)
        doc.table(["at horizon " + fmt(last(d.get("horizons"))), "state-probe error"],
                  [[label, fmt(last(ys))] for label, ys, _ in lines if ys],
                  caption="State-probe error at the largest horizon (lower is better)")
        scape = [[f"{label}, {energy}", fmt(src.get(f"landscape_rank_corr{tail}")),
                  fmt(src.get(f"landscape_rank_corr_steps{tail}"))]
                 for energy, pre in (("temporal metric (the planner's energy)", "_temporal"), ("token L1", ""))
                 for label, src, tail in (("latent, pretrained encoder", d, pre),
                                          ("latent, random-init encoder", r, pre), ("pixel model", d, f"{pre}_pixel"))
                 if src.get(f"landscape_rank_corr{tail}") is not None]
        if scape:
            dims = d.get("landscape_dims")
            doc.table(["model, energy", "vs true distance", "vs steps to the goal"], scape,
                      caption="Energy landscape: rank correlation of the planner's distance to a held-out goal frame "
                              f"with the true distance over {', '.join(dims) if isinstance(dims, list) else dims} "
                              "(1 is a perfect slope)")
    if r:
        doc.heading("Encoder ablation: the same predictor, data and budget on a random-init encoder", 3)
        ac, ac_r = summary("train_ac", task), summary("train_ac_random", task)
        plan, plan_r = summary("plan_latent", task), summary("plan_random", task)
        doc.table(["encoder", "val loss, rollout", "drift at largest horizon", "planning success", "95% CI"],
                  [["pretrained", fmt(ac.get("val_loss_rollout")), fmt(last(d.get("probe_error"))),
                    pct(plan.get("success_rate")), ci_text(plan.get("success_ci95"))],
                   ["random init", fmt(ac_r.get("val_loss_rollout")), fmt(last(r.get("probe_error"))),
                    pct(plan_r.get("success_rate")), ci_text(plan_r.get("success_ci95"))]],
                  caption=f"{task}: pretrained vs random-init encoder")


def _training_section(doc: Doc, records: list[dict], summaries: dict, assets: Path) -> None:
    """Pretraining probes and curves, then the predictors' losses and curves."""
    doc.heading("Training", anchor="training")
    for r in [r for r in records if r.get("kind") == "pretrain"]:
        s = summaries[r["name"]]
        doc.heading("Pretraining (V-JEPA)", 3)
        doc.para(f"{fmt(s.get('steps'))} steps, final loss {fmt(s.get('final_loss'))}, regularizer "
                 f"{s.get('regularizer', '—')}, width {fmt(s.get('embed_dim'))}, {fmt(s.get('videos'))} videos "
                 f"({fmt(s.get('bad_videos'))} unreadable).")
        probe_rows = [[label, fmt(s.get(key)), fmt(s.get(f"{key}_random_init"))] for label, key in PRETRAIN_ROWS
                      if key in s]
        if probe_rows:
            doc.table(["figure", "pretrained", "random init"], probe_rows,
                      caption="Probes on frozen features: the pretrained encoder vs the same architecture at "
                              "random init")
        per, per_r = s.get("probe_r2_per_factor") or {}, s.get("probe_r2_per_factor_random_init") or {}
        if per:
            doc.table(["factor of variation", "R², pretrained", "R², random init"],
                      [[k, fmt(v), fmt(per_r.get(k))] for k, v in per.items()],
                      caption="Attentive-probe R² per factor of the synthetic videos")
        grid = next((summaries[g["name"]] for g in records if g.get("kind") == "grid_probe"), {})
        for task, res in (grid.get("tasks") or {}).items():
            rand = res.get("r2_random_init") or {}
            doc.table(["state dim", "R², pretrained", "R², random init", "difference"],
                      [[k, fmt(v), fmt(rand.get(k)), fmt(None if v is None or rand.get(k) is None else v - rand[k])]
                       for k, v in res["r2"].items()],
                      caption=f"Grid probe on held-out {task} episodes ({res.get('frames_test')} frames): ridge on "
                              f"the flattened token grid, R² per state dim")
        doc.image(plot_curves([r], assets / f"curves_{r['name']}.png", "pretrain"), "pretraining curves")
    for kind, label in (("train_ac", "Latent action-conditioned predictor"), ("train_pixel", "Pixel baseline"),
                        ("train_ac_random", "Latent predictor on the random-init encoder")):
        recs = [r for r in records if r.get("kind") == kind]
        if not recs:
            continue
        doc.heading(label, 3)
        cols = [(h, k) for h, k in AC_COLUMNS if any(k in summaries[r["name"]] for r in recs)]
        doc.table(["task"] + [h for h, _ in cols],
                  [[r.get("task") or "—"] + [fmt(summaries[r["name"]].get(k), 4) for _, k in cols] for r in recs],
                  caption=f"{label}: losses on held-out episodes")
        doc.image(plot_curves(recs, assets / f"curves_{kind}.png", kind.replace("_", "-")), f"{label} curves")


def _protocol_section(doc: Doc, tasks: list[str], summary) -> None:
    """Each task's planning protocol as a table: episodes, budget, goal, success criterion, planner."""
    rows = []
    for t in tasks:
        s = summary("plan_latent", t)
        p = s.get("protocol") or {}
        if not p:
            continue
        pl = p.get("planner") or {}
        rows.append([t, p.get("env_id") or p.get("env") or "—", s.get("episodes"), p.get("budget"),
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
