"""The report's figures, sized to read at page width (1180 px): the headline success chart, drift vs horizon per
task, and training curves. Each returns the PNG's path, or None when there is nothing to draw."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from worldmodel.evaluation.report_doc import read_metrics  # noqa: E402
from worldmodel.utils.atomic import atomic_path  # noqa: E402

CURVE_GROUPS = ("loss/", "collapse/")  # metric-name prefixes plotted as curves, one panel each
DPI = 100


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a kill mid-write leaves the previous plot
        fig.savefig(tmp, dpi=DPI)
    plt.close(fig)
    return path


def plot_headline(bars: dict[str, list[tuple[str, float, list | None]]], path: Path,
                  title: str = "Goal reaching from pixels: success per task, with 95% Wilson intervals") -> Path | None:
    """Grouped bars of planning success per group (task, or factor of variation): ``bars[group] = [(row label, rate,
    [lo, hi] or None), ...]``, the 95% interval as an error bar; the same labels share a colour across groups."""
    tasks = [t for t, rows in bars.items() if rows]
    if not tasks:
        return None
    labels = list(dict.fromkeys(label for t in tasks for label, _, _ in bars[t]))
    colors = dict(zip(labels, plt.get_cmap("tab10").colors))
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(11.5, 3.9))
    for i, label in enumerate(labels):
        xs, ys, err = [], [], [[], []]
        for j, t in enumerate(tasks):
            row = next((r for r in bars[t] if r[0] == label), None)
            if row is None or row[1] is None:
                continue
            xs.append(j + (i - (len(labels) - 1) / 2) * width)
            ys.append(100 * row[1])
            lo, hi = row[2] if row[2] else (row[1], row[1])
            err[0].append(100 * (row[1] - lo))
            err[1].append(100 * (hi - row[1]))
        ax.bar(xs, ys, width * 0.92, yerr=err, capsize=3, label=label, color=colors[label], error_kw={"lw": 1})
    ax.set_xticks(range(len(tasks)), tasks, fontsize=11)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success rate (%)", fontsize=11)
    ax.set_title(title, fontsize=12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _save(fig, path)


def plot_drift(task: str, horizons: list[int], lines: list[tuple[str, list[float] | None, str]],
               path: Path) -> Path | None:
    """State-probe error of open-loop rollouts vs horizon for one task: ``lines = [(label, errors, style)]``."""
    drawn = [(label, ys, style) for label, ys, style in lines if ys and len(ys) == len(horizons)]
    if not drawn or not horizons:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    for label, ys, style in drawn:
        ax.plot(horizons, ys, style, label=label, lw=1.6, ms=4)
    ax.set_xlabel("horizon (predicted steps, open loop)", fontsize=10)
    ax.set_ylabel("state-probe error (lower is better)", fontsize=10)
    ax.set_title(f"{task}: drift of open-loop predictions", fontsize=11)
    ax.set_xticks(horizons)
    values = [y for _, ys, _ in drawn for y in ys if y > 0]
    if values and max(values) > 8 * min(values):  # one line far above the others: a log scale keeps all readable
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _save(fig, path)


def plot_curves(records: list[dict], path: Path, title: str) -> Path | None:
    """Training curves: one panel of ``loss/*`` per stage (one line per key), then one panel per ``collapse/*``
    key (one line per stage), since those have different scales; at most three panels a row."""
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
            panels.append((" ".join(filter(None, (title, rec.get("task")))) + ": losses", lines))
    panels += [(f"{title}: {k.removeprefix('collapse/')}", lines) for k, lines in sorted(collapse.items())]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.8 * cols, 2.9 * rows_n), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (name, lines) in zip(axes.flat, panels):
        for label, xs, ys in lines:
            ax.plot(xs, ys, label=label, lw=1.2)
        if name.endswith("losses") and all(y > 0 for _, _, ys in lines for y in ys):
            ax.set_yscale("log")
        ax.set_xlabel("step", fontsize=9)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, path)
