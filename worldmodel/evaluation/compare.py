"""Latent vs pixel world model on the same held-out windows: the parts ``wm drift`` does not compute itself.

``wm drift checkpoint=<train-ac> compare_checkpoints=[<train-pixel>]`` already rolls the pixel model out from
the same frames, states and recorded actions as the latent model and reads its decoded frames with the frozen
encoder and the latent ridge probe (``probe_error_pixel``). This module adds, on exactly the same windows
(same split, ``max_episodes``, ``horizon``, ``windows_per_episode`` and frame skip as drift):

- a state probe fit directly on pixels (ridge on the normalized frame average-pooled to ``probe_size``^2,
  training episodes' ground-truth frames -> states, same R^2-based choice of state dimensions as drift's probe),
  applied to the pixel model's predicted frames, to copy-last and to the true frames:
  ``probe_error_pixel_direct``, ``probe_error_pixel_direct_copy_last``, ``probe_error_pixel_direct_gt``;
- pixel error per horizon (mean |x_hat - x| on normalized pixels, the pixel model's training metric) for the
  pixel model and for copy-last: ``pixel_error``, ``pixel_error_copy_last``;
- one plot, error vs horizon: latent model, pixel model and copy-last on the state-probe error (latent probe,
  from the drift summary; pixel probe, from here) and the pixel error.

``compare(...)`` returns these as a summary dict; the pipeline runs it as the ``compare_<task>`` stage after
``drift_<task>``. It is a plain function so ``wm drift`` can call it too (``pixel_checkpoint=``).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.contracts.summaries import DriftSummary
from worldmodel.data.rollouts import read_manifest, split_episodes
from worldmodel.data.video import normalize_frames
from worldmodel.evaluation.drift import gather_windows, held_out_windows
from worldmodel.models.pixel_predictor import PixelWorldModel, frames_to_tokens
from worldmodel.probes.linear import RidgeProbe
from worldmodel.train.pixel import load_pixel_episodes
from worldmodel.utils.atomic import atomic_path
from worldmodel.utils.checkpoint import load_checkpoint


def pixel_features(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) -> pixel-probe features (B, 1, 3*size*size): normalized, area-downsampled."""

    x = normalize_frames(frames)  # (B, 3, H, W)
    if x.shape[-1] != size:
        x = F.adaptive_avg_pool2d(x, size)  # (B, 3, size, size)
    return x.flatten(1)[:, None]  # (B, 1, 3*size*size)


def _batched(fn, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


@torch.no_grad()
def compare(latent_checkpoint: str, pixel_checkpoint: str, out_dir: str | Path, horizon: int = 8,
            windows_per_episode: int = 4, max_episodes: int = 0, probe_frames: int = 4000,
            probe_lambdas=(1e-4, 1e-3, 1e-2, 1e-1, 1.0), probe_min_r2: float = 0.5, probe_size: int = 16,
            dataset: str = "", drift_summary: DriftSummary | None = None, batch_size: int = 256,
            device: str = "cpu") -> dict:
    """Pixel-probe and pixel-error curves of the pixel model on drift's held-out windows (+ a joint plot).

    Args mirror ``wm drift`` (same values give the same windows); ``drift_summary`` (that run's summary.json)
    supplies the latent-probe curves for the joint plot. Returns (H,) lists under the keys in the module
    docstring, plus ``plot_compare``, ``windows`` and ``probe_pixel_r2``.
    """

    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = CheckpointMeta.of(load_checkpoint(latent_checkpoint), str(latent_checkpoint))
    data = Path(dataset or meta.dataset)
    manifest = read_manifest(data)
    train_ids, val_ids = split_episodes(manifest, *meta.split)  # as drift
    train_ids, val_ids = list(map(int, train_ids)), list(map(int, val_ids))
    val_ids = val_ids or train_ids
    if max_episodes > 0:
        val_ids = val_ids[:max_episodes]
    model = PixelWorldModel.load(pixel_checkpoint, device)
    if model.frame_skip != meta.frame_skip:
        raise ValueError(f"pixel model frame_skip {model.frame_skip} != latent model's {meta.frame_skip}")
    eps = load_pixel_episodes(data, model.patch_size, model.img_size, progress=False)  # uint8 frames as "latents"
    train_eps, val_eps = eps.subset(train_ids), eps.subset(val_ids)

    # pixel probe: ground-truth frames of training episodes -> states
    f_tr, s_tr = torch.cat(train_eps.latents), torch.cat(train_eps.states)  # (F, H, W, 3), (F, S)
    sel = torch.linspace(0, len(f_tr) - 1, min(probe_frames, len(f_tr))).long()
    feats = _batched(lambda f: pixel_features(f, probe_size), f_tr[sel], batch_size)  # (n, 1, 3*s*s)
    probe = RidgeProbe(feats, s_tr[sel], lambdas=list(probe_lambdas), min_r2=probe_min_r2)

    windows = held_out_windows(val_eps, horizon, model.frame_skip, windows_per_episode)
    w = gather_windows(val_eps, windows, horizon, model.frame_skip)
    frames = w["z"].round().to(torch.uint8)  # (W, H+1, Hi, Wi, 3)
    W, H1 = frames.shape[:2]
    tokens = frames_to_tokens(frames, model.patch_size, model.img_size)  # (W, H+1, N, D_pix)
    s0 = w["states"][:, 0][:, model.state_dims] if model.uses_state else None  # the state token's dims only
    pred = torch.cat([model.rollout(tokens[i : i + batch_size, 0].to(model.device),
                                    None if s0 is None else s0[i : i + batch_size], w["actions"][i : i + batch_size])
                      .latents.float().cpu() for i in range(0, W, batch_size)])  # (W, H, N, D_pix)
    pred_frames = model.decode(pred)  # (W, H, Hi, Wi, 3) uint8: what drift probes through the encoder too
    true, copy = tokens[:, 1:], tokens[:, :1].expand_as(tokens[:, 1:])

    def probe_err(f: torch.Tensor) -> list[float]:  # frames (W, H, Hi, Wi, 3) -> (H,) probe error
        x = _batched(lambda b: pixel_features(b, probe_size), f.flatten(0, 1), batch_size)
        return probe.error(x.reshape(W, H1 - 1, *x.shape[1:]), w["states"][:, 1:]).tolist()

    out = {
        "horizons": list(range(1, horizon + 1)),
        "probe_error_pixel_direct": probe_err(pred_frames),
        "probe_error_pixel_direct_copy_last": probe_err(frames[:, :1].expand_as(frames[:, 1:])),
        "probe_error_pixel_direct_gt": probe_err(frames[:, 1:]),
        "pixel_error": (pred - true).abs().mean(dim=(0, 2, 3)).tolist(),
        "pixel_error_copy_last": (copy - true).abs().mean(dim=(0, 2, 3)).tolist(),
    }
    out = {k: [round(float(v), 5) for v in vals] if k != "horizons" else vals for k, vals in out.items()}
    labels = manifest.labels(s_tr.shape[1])
    out.update({"windows": W, "episodes": len(val_ids), "probe_size": probe_size,
                "probe_pixel_r2": {labels[i]: round(float(r), 4) for i, r in enumerate(probe.r2)},
                "probe_pixel_state_dims": [labels[i] for i in probe.dims.tolist()],
                "latent_checkpoint": str(latent_checkpoint), "pixel_checkpoint": str(pixel_checkpoint),
                "dataset": str(data)})
    out["plot_compare"] = plot_compare(out, drift_summary or DriftSummary(), out_dir / "compare.png")
    out["seconds"] = round(time.time() - t0, 2)
    return out


def plot_compare(c: dict, drift: DriftSummary, path: Path) -> str:
    """Error vs horizon for latent model, pixel model and copy-last: probe errors and pixel error -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = c["horizons"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    curves = [("latent model (latent probe)", drift.probe_error, "C0", "-"),
              ("pixel model (latent probe on its frames)", drift.probe_error_pixel, "C1", "-"),
              ("copy last (latent probe)", drift.probe_error_copy_last, "C2", "-"),
              ("pixel model (pixel probe)", c["probe_error_pixel_direct"], "C1", "--"),
              ("copy last (pixel probe)", c["probe_error_pixel_direct_copy_last"], "C2", "--")]
    for label, ys, color, ls in curves:
        if ys is not None and len(ys) == len(h):
            ax.plot(h, ys, marker="o", ms=3, color=color, ls=ls, label=label)
    ax.set_title("state-probe error (train-state std units)")
    ax.set_xlabel("open-loop horizon (predictor steps)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(h, c["pixel_error"], marker="o", ms=3, color="C1", label="pixel model")
    ax.plot(h, c["pixel_error_copy_last"], marker="o", ms=3, color="C2", label="copy last")
    ax.set_title("pixel error (L1, normalized pixels)")
    ax.set_xlabel("open-loop horizon (predictor steps)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a kill mid-write leaves the previous plot
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return str(path)

