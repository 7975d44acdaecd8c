"""``wm drift``: open-loop rollout error vs. horizon on held-out episodes.

Windows: from every held-out episode (the checkpoint's split), ``windows_per_episode`` evenly spaced start
frames; the context is the ground-truth frame (and state) at the start, then the recorded actions drive an
open-loop rollout of ``horizon`` predictor steps (each ``frame_skip`` env steps). Per horizon h = 1..H:

- ``latent_l1``: mean |z_hat_h - z_h| over tokens and channels;
- ``latent_rel_error``: mean (z_hat_h - z_h)^2 / Var(z) (Var: per-channel variance of the ground-truth latents
  of the training episodes' probe frames, averaged; 1.0 is as bad as predicting the mean latent);
- ``probe_error``: a ridge probe latent -> simulator state (flattened tokens in, standardized state out, ridge
  strength picked on a held-out part of the probe data) is fit on ground-truth latents of TRAINING episodes and
  applied to predicted latents; the error is mean |probe(z_hat_h) - s_h| in units of the training state std,
  averaged over the state dimensions a single frame's latent can show: those the probe decodes from true
  latents with held-out R^2 >= ``probe_min_r2`` (velocities, invisible in one frame, fall out; the chosen
  dimensions are in ``probe_state_dims``, and ``probe_error_all_dims`` keeps every dimension);
- the same for the "copy the last latent" baseline (z_hat_h = z_0), and ``probe_error_gt`` (the probe on the
  true z_h: the floor any model can reach), and ``state_head_error`` (the predictor's own next-state head).

Beside the curves, the energy landscape of every model (:mod:`worldmodel.evaluation.landscape`): how well the
planner's latent distance to a held-out goal frame ranks frames by their true distance over the success-criterion
dims (``landscape_rank_corr``, ``landscape_rank_corr_<name>``) and by steps to the goal (``..._steps``).

Hook for other models (e.g. the pixel baseline): :func:`drift_curves` evaluates any object with the
world-model protocol (``encode``, ``rollout``); if its predictions are not encoder latents it exposes
``decode(pred) -> uint8 frames (B, H, Hi, Wi, 3)`` and the frames are encoded with the latent model's
encoder for the probe. ``compare_checkpoints=[...]`` loads such models by checkpoint kind
(:mod:`worldmodel.models.registry`) and adds ``probe_error_<name>``, ``l1_<name>``, ``rel_error_<name>`` to the summary
and a curve to the plot.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.data.episodes import read_manifest, split_episodes
from worldmodel.data.reader import EpisodeReader
from worldmodel.evaluation.landscape import criterion_dims, energy_landscape, temporal_landscape
from worldmodel.models.ac_predictor import step_memory_bytes
from worldmodel.models.protocol import PixelSpace
from worldmodel.models.registry import load_world_model, short_name
from worldmodel.models.world_model import LatentWorldModel, encoder_identity
from worldmodel.planning.compat import check_dataset_compatible
from worldmodel.probes.linear import RidgeProbe
from worldmodel.train.latent_cache import load_latents
from worldmodel.utils.atomic import atomic_path
from worldmodel.utils.checkpoint import load_checkpoint
from worldmodel.utils.device import resolve_device
from worldmodel.utils.memory import check_fits


@dataclass
class DriftConfig:
    out_dir: str = "runs/drift"  # where summary.json and drift.png go
    checkpoint: str = ""  # a `wm train-ac` checkpoint (required unless bootstrap)
    dataset: str = ""  # episode dataset to evaluate ("" = the checkpoint's dataset); its held-out split is used
    horizon: int = 8  # largest open-loop horizon H in predictor steps
    windows_per_episode: int = 4  # evenly spaced rollout start frames per held-out episode
    max_episodes: int = 0  # evaluate at most this many held-out episodes (0 = all)
    probe_frames: int = 4000  # training-episode frames used to fit the ridge probe (subsampled evenly)
    # ridge grid, x mean eigenvalue
    probe_lambdas: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    probe_min_r2: float = 0.5  # state dims the probe decodes from true latents with lower held-out R^2 are left out
    batch_size: int = 256  # rollouts per predictor call
    device: str = "auto"  # auto | cpu | cuda
    max_bad_fraction: float = 0.1  # corrupt episodes are skipped and counted; the run stops past this share
    landscape_metric: str = "l1"  # the energy landscape's per-token distance (as the planner's energy.metric)
    landscape_temporal: bool = True  # also the landscape of the planner's temporal metric, fit on training episodes
    landscape_train_episodes: int = 200  # training episodes that metric is fit on (as wm plan's energy.probe_episodes)
    compare_checkpoints: list[str] = field(default_factory=list)  # extra world models (e.g. train-pixel checkpoints)
    bootstrap: bool = False  # no checkpoint given: train one at preset=smoke under out_dir/bootstrap (smoke only)
    bootstrap_overrides: list[str] = field(default_factory=list)  # extra overrides for the bootstrap `wm train-ac`




def _errors(pred: torch.Tensor, true: torch.Tensor, var: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-horizon L1 and MSE/var: pred, true (W, H, ...) -> (H,), (H,)."""
    d = (pred.float() - true.float()).flatten(2)  # (W, H, F)
    return d.abs().mean(dim=(0, 2)).numpy(), (d.pow(2).mean(dim=(0, 2)) / var).numpy()


@torch.no_grad()
def drift_curves(model, states: torch.Tensor, actions: torch.Tensor, probe: RidgeProbe, frames=None,
                 targets=None, encode_for_probe=None, batch_size: int = 256, var: float | None = None,
                 state0: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Open-loop drift of one world-model-protocol object.

    Args:
        model: has ``rollout(z0 (B, N, D) | (B, ...), state0 (B, S) | None, actions (B, H, A_step))`` and
            ``encode(frames uint8 (B, Hi, Wi, 3))``; optional ``decode(pred) -> uint8 (B, H, Hi, Wi, 3)``.
        states: (W, H+1, S) true states (context first); actions: (W, H, A_step) recorded actions.
        probe: fit on encoder latents of training episodes.
        frames: (W, H+1, Hi, Wi, 3) uint8 ground-truth frames (needed unless ``targets`` is given).
        targets: (W, H+1, ...) ground truth already in the model's space (skips ``model.encode``).
        encode_for_probe: uint8 frames (B, Hi, Wi, 3) -> encoder latents (B, N, D); used with ``decode``.
        var: latent variance for rel_error (default: of ``targets``, in the model's own space).
        state0: (W, S) the state token's input at the first frame (default: ``states``' ``state_dims`` there;
            models with scene keypoints need theirs, ``model.state_input``).
    Returns:
        (H,) arrays: l1, rel_error, probe_error, and l1_copy_last, rel_error_copy_last, probe_error_copy_last;
        plus state_head_error when the model predicts states.
    """
    W, H1 = states.shape[:2]
    if targets is None:
        flat = torch.as_tensor(frames).flatten(0, 1)  # (W*(H+1), Hi, Wi, 3)
        targets = torch.cat([model.encode(flat[i : i + batch_size]).cpu() for i in range(0, len(flat), batch_size)])
        targets = targets.reshape(W, H1, *targets.shape[1:])
    preds, s_preds = [], []
    for i in range(0, W, batch_size):
        sl = slice(i, i + batch_size)
        s0 = states[sl, 0][:, model.state_dims] if model.uses_state else None  # the state token's dims only
        s0 = s0 if state0 is None else state0[sl]
        out = model.rollout(targets[sl, 0], s0, actions[sl])
        preds.append(out.latents.float().cpu())  # (b, H, ...)
        s_preds.append(None if out.states is None else out.states.float().cpu())
    pred = torch.cat(preds)  # (W, H, ...)
    true, copy = targets[:, 1:].float(), targets[:, :1].float().expand_as(targets[:, 1:])
    if var is None:
        var = targets.float().flatten(0, 1).flatten(1).var(0).mean().item()
    out = {}
    out["l1"], out["rel_error"] = _errors(pred, true, var)
    out["l1_copy_last"], out["rel_error_copy_last"] = _errors(copy, true, var)
    if isinstance(model, PixelSpace):  # predictions in another space: probe them through the encoder
        frames_pred = model.decode(pred)  # (W, H, Hi, Wi, 3) uint8
        feats = encode_for_probe(torch.as_tensor(frames_pred).flatten(0, 1)).reshape(W, H1 - 1, *probe.token_shape)
        out["probe_error"] = probe.error(feats.cpu(), states[:, 1:]).numpy()
    else:
        out["probe_error"] = probe.error(pred, states[:, 1:]).numpy()
        out["probe_error_copy_last"] = probe.error(copy, states[:, 1:]).numpy()
        out["probe_error_gt"] = probe.error(true, states[:, 1:]).numpy()
        out["probe_error_all_dims"] = probe.error(pred, states[:, 1:], all_dims=True).numpy()
        out["probe_error_all_dims_copy_last"] = probe.error(copy, states[:, 1:], all_dims=True).numpy()
    if s_preds and s_preds[0] is not None:
        s_hat = torch.cat(s_preds)  # (W, H, S)
        dims = model.state_dims
        out["state_head_error"] = ((s_hat - states[:, 1:, dims]) / probe.y_std[dims]).abs().mean(dim=(0, 2)).numpy()
    return out


def held_out_windows(eps, horizon: int, frame_skip: int, per_episode: int):
    """Window starts (position in eps, t0) evenly spaced in every episode long enough for ``horizon`` steps."""
    out = []
    span = horizon * frame_skip
    for i, z in enumerate(eps.latents):
        last = z.shape[0] - 1 - span
        if last < 0:
            continue
        for t0 in np.unique(np.linspace(0, last, per_episode).round().astype(int)):
            out.append((i, int(t0)))
    if not out:
        raise ValueError(f"no held-out episode is long enough for horizon {horizon} x frame_skip {frame_skip}")
    return out


def gather_windows(eps, windows, horizon: int, frame_skip: int) -> dict:
    """z (W, H+1, N, D), states (W, H+1, S), actions (W, H, fs*A), frame index (W, H+1) for the windows."""
    k = torch.arange(horizon + 1) * frame_skip
    z = torch.stack([eps.latents[i][t0 + k] for i, t0 in windows]).float()
    s = torch.stack([eps.states[i][t0 + k] for i, t0 in windows])
    a = torch.stack([eps.actions[i][t0 : t0 + horizon * frame_skip].reshape(horizon, -1) for i, t0 in windows])
    return {"z": z, "states": s, "actions": a}


def plot_drift(horizons, panels: dict[str, dict[str, np.ndarray]], path: str | Path) -> str:
    """One subplot per panel (title -> {label: (H,) curve}); error vs. horizon. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for label, ys in curves.items():
            ax.plot(horizons, ys, marker="o", ms=3, label=label, ls="--" if "gt" in label else "-")
        ax.set_xlabel("open-loop horizon (predictor steps)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a kill mid-write leaves the previous plot
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return str(path)


def check_rollout_memory(model, cfg, windows: int, device) -> None:
    """Refuse a ``batch_size`` whose rollouts (at most ``windows`` at once) cannot fit, before rolling out."""
    batch = min(int(cfg.batch_size), windows)
    check_fits(f"batch_size={cfg.batch_size}", step_memory_bytes(model.predictor.cfg, batch, cfg.horizon + 1, False),
               f"{batch} open-loop rollouts of {cfg.horizon} steps", device, hint="lower batch_size")


def ratio_to_copy_last(curves: dict) -> float:
    """Probe error of the model over copying the last frame at the largest horizon (from the 5-decimal figures
    the summary records)."""
    model, copy = (round(float(curves[k][-1]), 5) for k in ("probe_error", "probe_error_copy_last"))
    return round(model / max(copy, 1e-12), 4)


def run(cfg: DriftConfig) -> dict:
    """Drift curves of the latent model (and any compared models) on held-out episodes."""

    t0 = time.time()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = cfg.checkpoint
    if not ckpt_path:
        raise ValueError("drift needs checkpoint=PATH (a `wm train-ac` checkpoint)")
    device = resolve_device(cfg.device)
    wm = LatentWorldModel.load(ckpt_path, device)

    ac_ckpt = load_checkpoint(ckpt_path)
    meta = CheckpointMeta.of(ac_ckpt, str(ckpt_path))
    dataset = Path(cfg.dataset or meta.dataset)
    manifest = read_manifest(dataset)
    check_dataset_compatible(wm, manifest, dataset, ckpt_path)
    train_ids, val_ids = split_episodes(manifest, *meta.split)
    train_ids, val_ids = list(map(int, train_ids)), list(map(int, val_ids))
    if not val_ids:  # tiny datasets: evaluate on the training episodes rather than on nothing
        val_ids = train_ids
    if cfg.max_episodes > 0:
        val_ids = val_ids[: cfg.max_episodes]
    enc_file, enc_digest = encoder_identity(ac_ckpt, ckpt_path)
    eps = load_latents(dataset, enc_file, wm.pool, device, encoder=wm.encoder, max_bad_fraction=cfg.max_bad_fraction,
                       encoder_digest=enc_digest)

    # probe: ground-truth latents of training episodes -> states
    train_eps, val_eps = eps.subset(train_ids), eps.subset(val_ids)
    z_tr, s_tr = torch.cat(train_eps.latents), torch.cat(train_eps.states)
    sel = torch.linspace(0, len(z_tr) - 1, min(cfg.probe_frames, len(z_tr))).long()
    probe = RidgeProbe(z_tr[sel].float(), s_tr[sel], lambdas=list(cfg.probe_lambdas), min_r2=cfg.probe_min_r2)

    labels = manifest.labels(s_tr.shape[1])
    windows = held_out_windows(val_eps, cfg.horizon, wm.frame_skip, cfg.windows_per_episode)
    w = gather_windows(val_eps, windows, cfg.horizon, wm.frame_skip)
    var = z_tr[sel].float().flatten(1).var(0).mean().item()  # per-channel variance of training latents
    frames = None  # the windows' frames (W, H+1, Hi, Wi, 3) uint8, read when a model needs them
    compared = {}  # short name -> compared model (loaded once: drift curves and landscape)
    for path in cfg.compare_checkpoints:
        model, kind = load_world_model(path, device)
        compared[short_name(kind)] = model
    val_frames = {}  # held-out episode position -> its frames (T, Hi, Wi, 3) uint8, read once
    if compared or wm.scene_dim:
        reader = EpisodeReader(dataset, 1.0, manifest)  # the held-out episodes were read fine above
        needed = range(len(val_eps.ids)) if compared else sorted({i for i, _ in windows})
        val_frames = {i: torch.as_tensor(reader.load(val_eps.ids[i])["frames"]) for i in needed}
        k = torch.arange(cfg.horizon + 1) * wm.frame_skip
        frames = torch.stack([val_frames[i][t0 + k] for i, t0 in windows])
    # the state token's input at the first frames, as planning builds it (scene keypoints read from the frames)
    s0 = wm.state_input(frames[:, 0], w["states"][:, 0][:, wm.state_dims]) if wm.scene_dim else None
    check_rollout_memory(wm, cfg, len(windows), device)
    curves = {"latent": drift_curves(wm, w["states"], w["actions"], probe, targets=w["z"], batch_size=cfg.batch_size,
                                     var=var, state0=s0)}
    for name, model in compared.items():  # other models start from the same frames, states and actions
        check_rollout_memory(model, cfg, len(windows), device)
        curves[name] = drift_curves(model, w["states"], w["actions"], probe, frames=frames,
                                    encode_for_probe=wm.encode, batch_size=cfg.batch_size)

    crit = criterion_dims(manifest)
    scapes = {"latent": energy_landscape(val_eps.latents, val_eps.states, crit, cfg.landscape_metric)}
    own = {}  # compared model -> the same held-out frames, encoded the way it plans with them
    for name, model in compared.items():
        own[name] = [encode_frames(model, val_frames[i], s, cfg.batch_size) for i, s in enumerate(val_eps.states)]
        scapes[name] = energy_landscape(own[name], val_eps.states, crit, cfg.landscape_metric)
    if cfg.landscape_temporal:  # the planner's default energy, fit per model on the same training episodes
        fit_ids = list(range(min(cfg.landscape_train_episodes, len(train_eps.ids))))
        scapes["temporal"] = temporal_landscape([train_eps.latents[i] for i in fit_ids], val_eps.latents,
                                                val_eps.states, crit)
        train_frames = {i: torch.as_tensor(reader.load(train_eps.ids[i])["frames"])
                        for i in (fit_ids if compared else [])}
        for name, model in compared.items():
            fit = [encode_frames(model, train_frames[i], train_eps.states[i], cfg.batch_size) for i in fit_ids]
            scapes[f"temporal_{name}"] = temporal_landscape(fit, own[name], val_eps.states, crit)

    horizons = list(range(1, cfg.horizon + 1))
    lat = curves["latent"]
    probe_panel = {"latent model": lat["probe_error"], "copy last": lat["probe_error_copy_last"],
                   "probe on true latents (gt)": lat["probe_error_gt"]}
    rel_panel = {"latent model": lat["rel_error"], "copy last": lat["rel_error_copy_last"]}
    summary = {"horizons": horizons, "latent_l1": lat["l1"], "latent_rel_error": lat["rel_error"],
               "probe_error": lat["probe_error"], "probe_error_copy_last": lat["probe_error_copy_last"],
               "probe_error_gt": lat["probe_error_gt"], "latent_l1_copy_last": lat["l1_copy_last"],
               "latent_rel_error_copy_last": lat["rel_error_copy_last"]}
    for key in ("state_head_error", "probe_error_all_dims", "probe_error_all_dims_copy_last"):
        if key in lat:
            summary[key] = lat[key]
    for name, c in curves.items():
        if name == "latent":
            continue
        probe_panel[f"{name} model"], rel_panel[f"{name} model (own space)"] = c["probe_error"], c["rel_error"]
        summary.update({f"probe_error_{name}": c["probe_error"], f"l1_{name}": c["l1"],
                        f"rel_error_{name}": c["rel_error"]})
    plot = plot_drift(horizons, {"state-probe error (train-state std units)": probe_panel,
                                 "relative error (MSE / variance)": rel_panel}, out_dir / "drift.png")
    summary = {k: (np.round(v, 5).tolist() if isinstance(v, np.ndarray) else v) for k, v in summary.items()}
    summary.update({
        "plot": plot, "checkpoint": str(ckpt_path), "dataset": str(dataset), "env_id": manifest.env_id,
        "frame_skip": wm.frame_skip, "episodes": len(val_ids), "windows": len(windows),
        "probe_state_dims": [labels[i] for i in probe.dims.tolist()],
        "probe_r2": {labels[i]: round(float(r), 4) for i, r in enumerate(probe.r2)}, "probe_lambda": probe.lam,
        "probe_val_error": round(probe.val_error, 5), "probe_frames": len(sel),
        "ratio_to_copy_last": ratio_to_copy_last(lat),
        "landscape_dims": [labels[i] for i in crit] if crit is not None else "every state dim, standardized",
        "landscape_goals": scapes["latent"]["goals"],
        "seconds": round(time.time() - t0, 2),
    })
    for name, scape in scapes.items():  # landscape_rank_corr[_temporal][_<compared model>]
        tail = "" if name == "latent" else f"_{name}"
        summary[f"landscape_rank_corr{tail}"] = scape["rank_corr"]
        summary[f"landscape_rank_corr_steps{tail}"] = scape["rank_corr_steps"]
    return summary


@torch.no_grad()
def encode_frames(model, frames, states: torch.Tensor, batch_size: int) -> torch.Tensor:
    """One episode's frames (T, H, W, 3) uint8 -> the model's latents (T, N, D) on CPU, in batches."""
    frames = torch.as_tensor(frames)
    out = []
    for i in range(0, len(frames), batch_size):
        s = states[i:i + batch_size][:, model.state_dims]  # learned models read the frames only
        z = model.encode_observation(frames[i:i + batch_size].to(model.device), s.to(model.device))  # (b, N, D)
        out.append(z.float().cpu())
    return torch.cat(out)
