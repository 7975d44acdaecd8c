"""The main job's report: ``report.html`` (self-contained, images embedded as base64) and ``report.md``
(images as relative paths under ``report_assets/``).

Input is the pipeline's list of stage records, each a dict ``{name, command, task, model, dir, summary,
seconds, reused}`` (``summary`` = path of the stage's summary.json). The report reads each stage's
summary.json and metrics.jsonl and shows: stage timings, loss and collapse curves of every training stage,
probe results of pretraining, drift plots and figures, the planning table (latent vs pixel side by side, with
random/zero-action baselines on the same episodes) and a few GIFs. Missing figures show as "—" rather than
failing, so a partial pipeline still gets a report.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from worldmodel.utils.atomic import atomic_path, write_text  # noqa: E402

# metric-name prefixes plotted as curves, one panel each
CURVE_GROUPS = ("loss/", "collapse/")


def read_json(path: str | Path | None) -> dict:
    """Read a JSON file, {} when absent (a stage that did not run)."""
    if not path or not Path(path).exists():
        return {}
    return json.loads(Path(path).read_text())


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl file (one dict per logged step); bad lines are skipped."""
    rows: list[dict] = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def pick(d: dict, *keys: str, default: Any = None) -> Any:
    """First present key among ``keys`` (summaries of different commands name similar things differently)."""
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def fmt(x: Any, digits: int = 3) -> str:
    """Number formatting for tables: '—' for missing, percentages left to the caller."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, float)):
        if isinstance(x, float) and not math.isfinite(x):
            return "—"
        return f"{x:.{digits}g}" if isinstance(x, float) else str(x)
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(fmt(v, digits) for v in x) + "]"
    return str(x)


def last(x: Any) -> Any:
    """Last element of a per-horizon list (the largest horizon), or the value itself."""
    if isinstance(x, (list, tuple)):
        return x[-1] if x else None
    return x


def plot_curves(records: list[dict], path: Path, title: str) -> Path | None:
    """Training curves -> PNG (None if no data): one panel of ``loss/*`` per stage (one line per key), then one
    panel per ``collapse/*`` key (one line per stage), since those have different scales."""
    panels: list[tuple[str, list[tuple[str, list, list]]]] = []
    collapse: dict[str, list[tuple[str, list, list]]] = {}
    for rec in records:
        rows = read_metrics(Path(rec["dir"]) / "metrics.jsonl")
        keys = sorted({k for r in rows for k in r if k.startswith(CURVE_GROUPS)})
        lines = []
        for k in keys:
            pts = [(r.get("step", i), r[k]) for i, r in enumerate(rows) if isinstance(r.get(k), (int, float))]
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            if k.startswith("loss/"):
                lines.append((k[len("loss/"):], xs, ys))
            else:
                collapse.setdefault(k, []).append((rec.get("task") or rec["name"], xs, ys))
        if lines:
            panels.append((f"{title} {rec.get('task') or ''} loss".replace("  ", " "), lines))
    panels += [(f"{title} {k}", lines) for k, lines in sorted(collapse.items())]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels):
        for label, xs, ys in lines:
            ax.plot(xs, ys, label=label, lw=1.2)
        if name.endswith("loss") and all(y > 0 for _, _, ys in lines for y in ys):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a kill mid-write leaves the previous plot
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path


class Doc:
    """Builds the HTML and markdown documents side by side."""

    def __init__(self, root: Path):
        self.root = root
        self.html: list[str] = []
        self.md: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {text}\n")

    def para(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
        h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
        self.html.append(f"<table><tr>{h}</tr>{body}</table>")
        self.md.append("| " + " | ".join(header) + " |")
        self.md.append("|" + "---|" * len(header))
        self.md.extend("| " + " | ".join(row) + " |" for row in cells)
        self.md.append("")

    def save(self, title: str) -> dict:
        """Write ``report.html`` and ``report.md`` into the root (atomically); returns their paths."""
        html_path, md_path = self.root / "report.html", self.root / "report.md"
        write_text(html_path, f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                             f"</title><style>{_CSS}</style></head><body>{''.join(self.html)}</body></html>")
        write_text(md_path, "\n".join(self.md) + "\n")
        return {"html": str(html_path), "md": str(md_path)}

    def image(self, path: str | Path | None, alt: str, width: int | None = None) -> None:
        """Embed an image (PNG or GIF) as base64 in the HTML; relative path in the markdown."""
        if not path or not Path(path).exists():
            return
        p = Path(path)
        mime = "image/gif" if p.suffix.lower() == ".gif" else "image/png"
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        w = f' width="{width}"' if width else ""
        self.html.append(f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{data}"{w}/>')
        try:
            rel = p.resolve().relative_to(self.root.resolve())
        except ValueError:
            rel = p.resolve()
        self.md.append(f"![{alt}]({rel.as_posix()})\n")


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px;"
        "text-align:right;font-size:13px}th{background:#eee}img{margin:4px;image-rendering:pixelated}")


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.0f}%"


def _ci(s: dict) -> str:
    ci = pick(s, "success_ci95", "success_ci", "ci95")
    return f"[{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else "—"


PLAN_HEADER = ["task", "model", "mode", "privileged inputs", "episodes", "success", "95% CI", "random", "zero",
               "s/step", "final dist"]


def plan_row(task: str, model: str, s: dict) -> list[Any]:
    """One planning-table row: a plan stage with what it saw, beside random and zero actions on its episodes."""
    privileged = s.get("privileged_inputs")
    return [task, model, s.get("mode") or "—", "; ".join(privileged) if privileged else "none",
            pick(s, "episodes"), _pct(pick(s, "success_rate")), _ci(s), _pct(pick(s, "success_rate_random")),
            _pct(pick(s, "success_rate_zero")), fmt(pick(s, "seconds_per_plan")), fmt(pick(s, "final_distance"))]


def build_report(out_dir: str | Path, records: list[dict], tasks: list[str], title: str = "worldmodel report",
                 notes: list[str] | None = None, max_gifs: int = 2) -> dict[str, str]:
    """Write ``out_dir/report.html`` and ``out_dir/report.md`` from the pipeline's stage records.

    Args:
        out_dir: report folder (assets go to ``out_dir/report_assets``).
        records: stage records ``{name, command, task, model, dir, summary, seconds, reused}``.
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
    by_cmd = lambda cmd: [r for r in records if r["command"] == cmd]  # noqa: E731
    doc = Doc(root)
    doc.heading(title, 1)
    for line in notes or []:
        doc.para(line)

    doc.heading("Stages")
    doc.table(["stage", "command", "seconds", "CPU seconds", "reused"],
              [[r["name"], r["command"], fmt(r.get("seconds"), 4), fmt(r.get("cpu_seconds"), 4),
                str(bool(r.get("reused")))] for r in records])

    doc.heading("Pretraining")
    for r in by_cmd("pretrain"):
        s = summaries[r["name"]]
        rows = [[k, pick(s, k)] for k in ("steps", "final_loss", "probe_r2", "probe_r2_random_init",
                                          "ridge_r2", "ridge_r2_random_init", "effective_rank", "embed_dim",
                                          "bad_videos") if k in s]
        if isinstance(s.get("probe_r2_per_factor"), dict):
            rows += [[f"probe_r2[{k}]", v] for k, v in s["probe_r2_per_factor"].items()]
        doc.table(["figure", "value"], [[k, fmt(v, 4)] for k, v in rows])
        doc.image(plot_curves([r], assets / f"curves_{r['name']}.png", "pretrain"), "pretrain curves")

    for cmd, label in (("train-ac", "Latent action-conditioned predictor"), ("train-pixel", "Pixel baseline")):
        recs = by_cmd(cmd)
        if not recs:
            continue
        doc.heading(f"{label} ({cmd})")
        keys = ("steps", "final_loss", "val_loss_tf", "val_loss_rollout", "val_loss_copy_last",
                "val_loss_state_tf", "parameters", "params_ratio", "tokens_per_frame", "seconds")
        header = ["task"] + [k for k in keys if any(k in summaries[r["name"]] for r in recs)]
        doc.table(header, [[r.get("task") or "—"] + [fmt(summaries[r["name"]].get(k), 4) for k in header[1:]]
                           for r in recs])
        doc.image(plot_curves(recs, assets / f"curves_{cmd}.png", cmd), f"{cmd} curves")

    doc.heading("Drift: open-loop error vs horizon")
    drift_rows = []
    compare = {r.get("task"): summaries[r["name"]] for r in by_cmd("compare")}
    for r in by_cmd("drift"):
        own = r.get("model") is None  # the main latent model's drift; the pixel comparison belongs to it
        s = {**summaries[r["name"]], **(compare.get(r.get("task"), {}) if own else {})}
        drift_rows.append([r.get("task") or "—", r.get("model") or "latent", fmt(last(s.get("horizons"))),
                           fmt(last(s.get("probe_error")), 3), fmt(last(s.get("probe_error_pixel")), 3),
                           fmt(last(s.get("probe_error_pixel_direct")), 3),
                           fmt(last(s.get("probe_error_copy_last")), 3),
                           fmt(last(s.get("latent_rel_error")), 3), fmt(last(s.get("pixel_error")), 3),
                           fmt(last(s.get("pixel_error_copy_last")), 3)])
    if drift_rows:
        doc.para("State-probe error at the largest horizon (lower is better): the latent model read by the "
                 "latent ridge probe; the pixel model's predicted frames encoded by the frozen encoder and read "
                 "by the same probe; the pixel model read by a probe fit on pixels; copying the last context "
                 "frame. Pixel error is mean |x_hat - x| on normalized pixels.")
        doc.table(["task", "encoder / model", "H", "probe err latent", "probe err pixel", "probe err pixel (pixel probe)",
                   "probe err copy-last", "latent rel err", "pixel err", "pixel err copy-last"], drift_rows)
    for r in by_cmd("drift"):
        s = {**summaries[r["name"]], **(compare.get(r.get("task"), {}) if r.get("model") is None else {})}
        for key in ("plot_compare", "plot"):
            if s.get(key):
                doc.image(s[key], f"drift {r.get('task')} {r.get('model') or ''} ({key})", width=520)

    doc.heading("Planning: goal reaching (CEM + MPC)")
    plan_recs = by_cmd("plan")
    rows = [plan_row(t, r.get("model") or "latent", summaries[r["name"]]) for t in tasks for r in plan_recs
            if r.get("task") == t]
    if rows:
        doc.para("Every row plans on the same start seeds and goals of its task, beside random and zero actions; "
                 "success rate with its 95% (Wilson) interval; seconds per batched replanning step; mean final "
                 "state distance to the goal. Pure rows see frames, the agent's proprioception and the goal image "
                 "only; oracle rows list what else they used.")
        doc.table(PLAN_HEADER, rows)
    protocol = next((summaries[r["name"]].get("protocol") for r in plan_recs
                     if summaries[r["name"]].get("protocol")), None)
    if protocol:
        doc.para("Protocol: " + json.dumps(protocol, default=str)[:600])

    gif_recs = [r for r in plan_recs if pick(summaries[r["name"]], "gifs", default=[])]
    if gif_recs:
        doc.heading("Episodes (observation | goal)")
        for r in gif_recs:
            for g in list(summaries[r["name"]]["gifs"])[:max_gifs]:
                doc.image(g, f"{r.get('task')} {r.get('model')}", width=192)

    return doc.save(title)
