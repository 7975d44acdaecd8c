"""Print the README's results table from a pipeline run: python scripts/results_table.py runs/main

Reads ``<run>/summary.json`` (``wm pipeline``'s headline figures): per task, drift at the largest horizon
(state-probe error of the latent and pixel models and of copying the last frame), planning success of every
plan stage, with random and zero actions on the same goals, the energy landscape (rank correlation of each model's
latent distance to a goal frame with the true distance) and the grid probe's mean held-out R² (pretrained vs
random-init encoder).
"""
from __future__ import annotations

import sys
from pathlib import Path

from worldmodel.contracts.headline import DriftRow, GridProbeRow, PlanCell, PlanRow
from worldmodel.contracts.summaries import PipelineSummary, load_summary


def pct(cell: PlanCell | None) -> str:
    if cell is None or cell.success_rate is None:
        return "—"
    lo, hi = cell.success_ci95 or (None, None)
    ci = f" [{lo * 100:.0f}, {hi * 100:.0f}]" if lo is not None else ""
    return f"{cell.success_rate * 100:.0f}%{ci}"


def num(x, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def table(summary: PipelineSummary) -> str:
    """Markdown table of the headline figures."""
    head = summary.headline
    lines = ["| task | drift h=max: latent / pixel / copy-last | latent | latent on random-init encoder | pixel | "
             "random / zero | latent, with proprio probe | latent, oracle | "
             "landscape ρ (temporal metric): latent / random-init / pixel | "
             "grid probe R²: pretrained / random-init |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for task in summary.tasks:
        d, p = head.drift.get(task, DriftRow()), head.plan.get(task)
        drift = " / ".join(num(x) for x in (d.probe_error_latent, d.probe_error_pixel, d.probe_error_copy_last))
        base = f"{(p.random or 0) * 100:.0f}% / {(p.zero or 0) * 100:.0f}%" if p else "—"
        scape = " / ".join(num(x, 2) for x in (d.landscape_temporal_latent, d.landscape_temporal_latent_random_encoder,
                                               d.landscape_temporal_pixel))
        g = head.grid_probe.get(task, GridProbeRow())
        grid = f"{num(g.mean_r2, 2)} / {num(g.mean_r2_random_init, 2)}"
        p = p or PlanRow()
        lines.append(f"| {task} | {drift} | {pct(p.latent)} | {pct(p.latent_random_encoder)} | "
                     f"{pct(p.pixel)} | {base} | {pct(p.latent_proprio)} | "
                     f"{pct(p.latent_oracle)} | {scape} | {grid} |")
    return "\n".join(lines)


if __name__ == "__main__":
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/main")
    print(table(load_summary(run / "summary.json", "pipeline")))
