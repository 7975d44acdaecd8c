"""``wm eval-offline``: check a world model on recorded episodes, without a simulator (V-JEPA 2-AC's offline checks).

On the held-out episodes of the model's dataset (or ``dataset=``), ``windows`` start frames t are taken; the goal is
the frame ``goal_steps`` predictor steps later (k = goal_steps, each ``frame_skip`` env steps). Then:

(b) offline goal reaching: CEM plans k steps from the latent of frame t toward the latent of frame t + k (the
    latent-only energy: no probe, no state label) and its first action is compared with the recorded one (the mean of
    the first ``frame_skip`` recorded env actions, the held action nearest to them): mean |difference| in units of the
    action half-range, beside the same error for uniform random actions and for the zero action (ratios < 1 mean the
    planner recovers what the demonstrator did better than chance). The energies of the planned and of the recorded
    action sequences are reported too (a planned energy far below the recorded one hints the planner exploits the
    model).
(c) energy landscape: for ``landscape`` windows, the energy over a grid of first actions (two action dims; the later
    steps held at the recorded ones), with the recorded and the planned first action marked (``landscape.png``).
Open-loop drift against copy-last and the pixel model is ``wm drift`` on the same checkpoint and dataset.
Writes summary.json, landscape.png and report.html/md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from worldmodel.config import require, setting, to_dict  # noqa: E402
from worldmodel.contracts.checkpoint_meta import CheckpointMeta  # noqa: E402
from worldmodel.contracts.summaries import EvalOfflineSummary, summary_of  # noqa: E402
from worldmodel.data.formats import KeyMap, as_native  # noqa: E402
from worldmodel.data.reader import EpisodeReader  # noqa: E402
from worldmodel.evaluation.report_doc import Doc  # noqa: E402
from worldmodel.models.registry import load_world_model  # noqa: E402
from worldmodel.planning.compat import check_dataset_compatible  # noqa: E402
from worldmodel.planning.energy import EnergyConfig  # noqa: E402
from worldmodel.planning.mpc import make_energy_fn  # noqa: E402
from worldmodel.planning.observer import Observer  # noqa: E402
from worldmodel.planning.optimizers import PlannerConfig, episode_generators, plan, planner_settings  # noqa: E402
from worldmodel.utils.atomic import atomic_path  # noqa: E402
from worldmodel.utils.checkpoint import load_checkpoint  # noqa: E402
from worldmodel.utils.device import resolve_device  # noqa: E402


@dataclass
class OfflineConfig:
    """``wm eval-offline`` settings; ``planner`` is the plan command's optimizer group."""

    out_dir: str = "runs/eval_offline"  # summary.json, landscape.png, report.html
    checkpoint: str = ""  # a wm train-ac (or train-pixel) checkpoint; required unless bootstrap
    dataset: str = ""  # recorded episodes, any layout ("": the checkpoint's own dataset, its held-out split)
    dataset_format: str = "auto"  # layout of dataset: auto | worldmodel | lerobot | hdf5-robomimic | hdf5-episodes
    dataset_keys: KeyMap = field(default_factory=KeyMap)  # other layouts: which keys are camera, actions, proprio
    windows: int = 64  # start frames, evenly spread over the held-out episodes
    goal_steps: int = 0  # predictor steps from the start to the goal frame (0: planner.horizon)
    landscape: int = 4  # windows whose energy landscape is plotted
    landscape_grid: int = 21  # grid points per action dim of the landscape
    seed: int = 0  # seed of the planner's and the random baseline's draws
    device: str = "auto"  # auto | cpu | cuda[:i]
    bootstrap: bool = False  # no checkpoint given: train one with wm train-ac at preset=smoke (smoke only)
    bootstrap_overrides: list[str] = field(default_factory=list)  # extra overrides for the bootstrap wm train-ac
    planner: PlannerConfig = field(default_factory=PlannerConfig)  # the optimizer (planner= group)
    energy: EnergyConfig = field(default_factory=EnergyConfig)  # the energy (latent distance; no probe offline)




def load_windows(model, reader: EpisodeReader, ids: list[int], k: int, fs: int, n: int) -> dict:
    """Frames at t and t + k*fs, the state at t, and the k*fs recorded env actions, for ``n`` evenly spread starts
    (the starts from the episodes' arrays; only the picked episodes' videos are decoded)."""
    span = k * fs
    starts = []
    for i, ep in reader.episodes(ids, video="skip"):
        starts += [(i, t) for t in range(len(ep["actions"]) - span + 1)]
    if not starts:
        raise ValueError(f"{reader.root}: no held-out episode has {span} steps (goal_steps={k} x frame_skip={fs})")
    pick = np.linspace(0, len(starts) - 1, min(n, len(starts))).round().astype(int)
    sel = [starts[j] for j in pick]
    eps = dict(reader.episodes(sorted({i for i, _ in sel})))
    dims = model.state_dims
    return {"start": np.stack([eps[i]["frames"][t] for i, t in sel]),
            "goal": np.stack([eps[i]["frames"][t + span] for i, t in sel]),
            "state": np.stack([eps[i]["states"][t][dims] for i, t in sel]) if model.uses_state else None,
            "actions": np.stack([eps[i]["actions"][t:t + span] for i, t in sel]).reshape(len(sel), k, fs, -1),
            "where": sel}


def run(cfg: OfflineConfig) -> EvalOfflineSummary:
    """Offline goal reaching and energy landscapes on recorded episodes; returns the summary."""
    if not cfg.checkpoint:
        raise ValueError("wm eval-offline: set checkpoint=PATH (a wm train-ac checkpoint)")
    for name, low in (("windows", 1), ("goal_steps", 0), ("landscape", 0), ("landscape_grid", 3)):
        require(name, setting(cfg, name), low)
    device = resolve_device(cfg.device)
    model, kind = load_world_model(cfg.checkpoint, device)
    meta = CheckpointMeta.of(load_checkpoint(cfg.checkpoint), cfg.checkpoint)
    dataset = as_native(cfg.dataset, cfg.dataset_format, KeyMap.of(cfg.dataset_keys)) if cfg.dataset \
        else Path(meta.dataset)
    ids = meta.val_episodes if not cfg.dataset else []
    reader = EpisodeReader(dataset)
    check_dataset_compatible(model, reader.manifest, dataset, cfg.checkpoint)
    ids = ids or reader.ids
    planner = planner_settings(to_dict(cfg.planner))
    energy = EnergyConfig(**{**to_dict(cfg.energy), "probe_weight": 0.0,
                             "state_weight": 0.0})
    k, fs = int(cfg.goal_steps or planner.horizon), model.frame_skip
    planner.horizon = k
    w = load_windows(model, reader, ids, k, fs, int(cfg.windows))
    E = len(w["where"])
    low, high = model.action_low.to(device), model.action_high.to(device)  # (A,)
    half = (high - low).cpu().numpy() / 2
    observe = Observer(model)
    with torch.no_grad():
        z0 = observe(w["start"], w["state"], read=False).latents
        goal = observe(w["goal"], None, read=False).latents
        s0 = None if w["state"] is None else observe.state_input(w["start"], w["state"], None)
    energy_fn = make_energy_fn(model, z0, s0, goal, fs, energy)
    with torch.no_grad():
        res = plan(energy_fn, planner, low, high, E, episode_generators([cfg.seed + i for i in range(E)], device))
    recorded = w["actions"].mean(2)  # (E, k, A): the held action nearest to each step's recorded env actions
    first = recorded[:, 0]  # (E, A)
    rng = np.random.default_rng(cfg.seed)
    lo, hi = low.cpu().numpy(), high.cpu().numpy()
    candidates = {"planned": res.actions[:, 0].cpu().numpy(), "random": rng.uniform(lo, hi, first.shape),
                  "zero": np.broadcast_to(np.clip(0.0, lo, hi), first.shape)}
    err = {name: np.abs(a - first) / half for name, a in candidates.items()}  # (E, A) half-range units
    with torch.no_grad():
        e_rec = energy_fn(torch.as_tensor(recorded, dtype=torch.float32, device=device)[:, None])[:, 0]
    summary = {
        "checkpoint": str(cfg.checkpoint), "model_kind": kind, "dataset": str(dataset), "windows": E,
        "goal_steps": k, "frame_skip": fs, "goal_env_steps": k * fs,
        "action_error": float(err["planned"].mean()), "action_error_random": float(err["random"].mean()),
        "action_error_zero": float(err["zero"].mean()),
        "ratio_to_random": float(err["planned"].mean() / max(err["random"].mean(), 1e-12)),
        "ratio_to_zero": float(err["planned"].mean() / max(err["zero"].mean(), 1e-12)),
        "action_error_per_dim": err["planned"].mean(0).round(4).tolist(),
        "energy_planned": float(res.energy.mean()), "energy_recorded": float(e_rec.mean()),
        "planner": asdict(planner), "energy": asdict(energy),
        "action_error_definition": "mean |first planned action - mean of the first frame_skip recorded env actions| "
                                   "/ action half-range",
    }
    out = Path(cfg.out_dir)
    def window_energy(j: int):  # the energy of window j alone
        return make_energy_fn(model, z0[j:j + 1], None if s0 is None else s0[j:j + 1], goal[j:j + 1], fs, energy)

    summary["landscape_png"] = landscape(window_energy, recorded, candidates["planned"], lo, hi, int(cfg.landscape),
                                         int(cfg.landscape_grid), out / "landscape.png", device)
    summary["report"] = report(out, summary)
    summary = summary_of("eval-offline", summary, f"{out}: eval-offline summary")
    print(f"[wm eval-offline] {E} windows, goal {k} steps ahead: first-action error {summary.action_error:.3f} "
          f"(random {summary.action_error_random:.3f}, zero {summary.action_error_zero:.3f}; "
          f"ratio to random {summary.ratio_to_random:.2f})")
    return summary


@torch.no_grad()
def landscape(window_energy, recorded: np.ndarray, planned: np.ndarray, lo, hi, n: int, grid: int, path: Path,
              device) -> str | None:
    """Energy over a grid of first actions (dims 0 and 1; later steps recorded) for the first ``n`` windows;
    ``window_energy(j)`` is window j's energy function."""
    n = min(n, len(recorded))
    if n == 0:
        return None
    A = recorded.shape[-1]
    d1 = 1 if A > 1 else 0
    g0, g1 = np.linspace(lo[0], hi[0], grid), np.linspace(lo[d1], hi[d1], grid) if A > 1 else np.zeros(1)
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 2.8), squeeze=False)
    for j in range(n):
        seqs = np.repeat(recorded[j][None], len(g0) * len(g1), 0)  # (G, k, A)
        a0, a1 = np.meshgrid(g0, g1, indexing="ij")
        seqs[:, 0, 0] = a0.ravel()
        if A > 1:
            seqs[:, 0, d1] = a1.ravel()
        e = window_energy(j)(torch.as_tensor(seqs, dtype=torch.float32, device=device)[None])[0].cpu().numpy()
        ax = axes[0, j]
        if A > 1:
            im = ax.imshow(e.reshape(len(g0), len(g1)).T, origin="lower", extent=(lo[0], hi[0], lo[d1], hi[d1]),
                           aspect="auto", cmap="viridis")
            fig.colorbar(im, ax=ax, fraction=0.046)
            ax.plot(recorded[j, 0, 0], recorded[j, 0, d1], "w*", ms=10, label="recorded")
            ax.plot(planned[j, 0], planned[j, d1], "rx", ms=8, label="planned")
        else:
            ax.plot(g0, e)
            ax.axvline(recorded[j, 0, 0], color="k", label="recorded")
            ax.axvline(planned[j, 0], color="r", ls="--", label="planned")
        ax.set_title(f"window {j}", fontsize=8)
        ax.set_xlabel("first action, dim 0", fontsize=7)
        ax.set_ylabel(f"dim {d1}" if A > 1 else "energy", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return str(path)


def report(out: Path, s: dict) -> dict:
    """report.html/md of an offline evaluation summary (the pipeline report's style)."""
    doc = Doc(out)
    doc.heading("worldmodel — offline evaluation", 1)
    doc.para(f"{s['checkpoint']} on {s['dataset']}: {s['windows']} held-out windows, goal {s['goal_steps']} "
             f"predictor steps ({s['goal_env_steps']} env steps) ahead.")
    doc.heading("Offline goal reaching: first planned action vs the recorded one")
    doc.table(["actions", "error (half-range units)", "ratio planned / this"],
              [["planned (CEM, latent energy)", s["action_error"], 1.0],
               ["random (uniform)", s["action_error_random"], s["ratio_to_random"]],
               ["zero", s["action_error_zero"], s["ratio_to_zero"]]])
    doc.para(f"Energy of the planned sequences {s['energy_planned']:.4f}, of the recorded ones "
             f"{s['energy_recorded']:.4f}. {s['action_error_definition']}.")
    doc.heading("Energy landscape over the first action (recorded: star, planned: cross)")
    doc.image(s.get("landscape_png"), "energy landscape")
    return doc.save("worldmodel offline evaluation")
