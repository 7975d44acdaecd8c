"""Frozen-encoder probes on videos with known factors (V-JEPA-style evaluation).

Clips (several frames, so velocities are observable) are cut from held-out videos with per-frame ground truth
(``worldmodel.data.synthetic``); their targets are the factors at the clip's temporal midpoint: position = mean
of the two middle frames, velocity = displacement between them. Clips are split by *video* into train and test.

- Attentive probe: one learned query cross-attends (multi-head) over all patch tokens of the frozen encoder,
  then a linear head; it sees only the encoder's features (layer-normed, then standardized per channel or
  whitened with statistics of the training clips), as in V-JEPA. The encoder uses rotary
  positions only, so its features carry absolute position only if training taught it to (the synthetic arena's
  walls make position visible); a random encoder's features are close to a random projection of the pixels.
  ``coords=true`` adds each token's (t, h, w) grid coordinates to the probe's keys and values: a much easier
  task, on which raw pixels already score high (an attentive probe with coordinates localizes a coloured ball
  from a random pixel projection by attention-weighted centroids, and gets velocity by differencing them).
- Probe settings: as in V-JEPA's frozen evaluations, one attentive probe per setting (``lrs`` x ``normalize``); the
  one with the best R^2 on held-out *training* videos is scored on the test clips. A fixed setting can stall at
  R^2 ~ 0 on one encoder's features (the query never leaves uniform attention) while reading another's well, so it
  would compare encoders by their luck with it; each encoder gets its best setting, chosen without the test set.
  The training length is chosen the same way (early stopping on those videos, ``eval_every``): a fixed length
  under-fits one encoder's features and over-fits another's.
- Ridge probe: closed-form ridge regression on mean-pooled tokens (quick, linear; cannot localize objects).

R^2 is reported per factor and as the mean over factors, on the test clips.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from worldmodel.data.synthetic import load_factors
from worldmodel.data.video import normalize_frames


@dataclass
class ProbeConfig:
    # run the probes at the end of pretraining
    enabled: bool = True
    # held-out synthetic videos generated for the probe (separate seed from the training data)
    num_videos: int = 120
    # clips cut from each probe video (evenly spaced starts)
    clips_per_video: int = 4
    # fraction of probe videos whose clips form the test set
    test_fraction: float = 0.25
    # attentive probe: epochs over the training clips (the most; see ``eval_every``)
    epochs: int = 60
    # with validation clips (more than one setting), check the probe's validation R^2 every this many epochs and
    # keep the best weights (early stopping). A fixed length is too short for one encoder's features and too long
    # for another's (measured: 30 epochs under-fit a random encoder's, 60 over-fit a trained one's), so it would
    # decide the comparison; the best epoch is chosen on validation like the other settings (0: no checks)
    eval_every: int = 5
    # attentive probe: batch size
    batch_size: int = 64
    # attentive probe: AdamW learning rates tried (x ``normalize``), one probe per setting; as in V-JEPA's
    # evaluations, the probe with the best validation R^2 (on ``val_fraction`` of the training videos) is scored on
    # the test clips. A single setting: no validation split, the probe trains on all training clips
    lrs: list[float] = field(default_factory=lambda: [1e-3, 3e-3])
    # share of the training videos held out to choose the probe setting
    val_fraction: float = 0.2
    # attentive probe: width of the attention (keys, values, query)
    dim: int = 64
    # attentive probe: attention heads
    heads: int = 4
    # attentive probe: feature normalizations tried, each with statistics of the training clips' tokens after a
    # layer norm: "standardize" (each channel, like the parameter-free BatchNorm of MAE-style probes), "whiten" (PCA
    # whitening, every direction unit variance), "none". Trained JEPA features put most variance in a few shared
    # directions; standardized per channel, the probe often stalls at R^2 ~ 0 on them, whitened it does not, while
    # whitening amplifies a random encoder's many noise directions. Chosen with the learning rate on validation.
    normalize: list[str] = field(default_factory=lambda: ["standardize", "whiten"])
    # attentive probe: add each token's (t, h, w) grid coordinates to the features (off: the probe sees only the
    # encoder's features, as in V-JEPA; rotary encoders then carry position only if they learned to)
    coords: bool = False
    # also fit the attentive probe with grid coordinates (reported as probe_r2_coords: what the token map's
    # layout plus features allow; raw pixels already score high there)
    also_coords: bool = True
    # ridge probe: L2 penalty (on standardized features)
    ridge_alpha: float = 1.0
    # encoder batch size when extracting features
    feature_batch: int = 32
    # seed of the split, the probe's init and its batches
    seed: int = 0


def probe_clips(videos: list[str], num_frames: int, frame_step: int, clips_per_video: int):
    """Cut clips and midpoint targets from videos with factor npz files.

    Returns:
        frames uint8 (n, T, H, W, 3), targets float32 (n, F), video id per clip (n,), factor names.
    """
    import decord


    span = (num_frames - 1) * frame_step + 1
    frames, targets, vids, names = [], [], [], None
    for v, path in enumerate(videos):
        fac, names = load_factors(path)
        vr = decord.VideoReader(str(path), num_threads=1)
        n = min(len(vr), len(fac))
        starts = np.linspace(0, n - span, clips_per_video).round().astype(int)
        all_idx = sorted({int(s) + i * frame_step for s in starts for i in range(num_frames)})
        decoded = dict(zip(all_idx, vr.get_batch(all_idx).asnumpy()))
        for s in starts:
            idx = [int(s) + i * frame_step for i in range(num_frames)]
            a, b = idx[num_frames // 2 - 1], idx[num_frames // 2]
            pos = (fac[a, :2] + fac[b, :2]) / 2
            vel = fac[a:b, 2:].mean(0)
            frames.append(np.stack([decoded[i] for i in idx]))
            targets.append(np.concatenate([pos, vel]))
            vids.append(v)
    return (torch.from_numpy(np.stack(frames)), torch.from_numpy(np.stack(targets).astype(np.float32)),
            torch.tensor(vids), list(names))


@torch.no_grad()
def extract_features(encoder: nn.Module, frames: torch.Tensor, batch: int, device) -> torch.Tensor:
    """Frozen token features (n, N, D) float32 on CPU from uint8 clips (n, T, H, W, 3)."""
    encoder.eval()
    out = []
    for i in range(0, len(frames), batch):
        x = normalize_frames(frames[i:i + batch].to(device)).transpose(1, 2)  # (B, 3, T, H, W)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
            out.append(encoder(x).float().cpu())
    return torch.cat(out)


def grid_features(grid: tuple[int, int, int], bands: int = 4) -> torch.Tensor:
    """Fixed per-token coordinate features (N, 3 + 6*bands): coordinates in [-1, 1] and their sin/cos."""
    axes = [torch.linspace(-1, 1, s) if s > 1 else torch.zeros(1) for s in grid]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)  # (N, 3)
    freqs = math.pi * 2.0 ** torch.arange(bands) / 2  # (bands,)
    ang = coords.unsqueeze(-1) * freqs  # (N, 3, bands)
    return torch.cat([coords, ang.sin().flatten(1), ang.cos().flatten(1)], dim=1)


class AttentiveProbe(nn.Module):
    """A learned query cross-attending over all tokens (optionally + grid coordinates), then a linear head."""

    def __init__(self, in_dim: int, out_dim: int, grid: tuple[int, int, int], dim: int = 64, heads: int = 4,
                 coords: bool = False):
        super().__init__()
        self.inp = nn.Linear(in_dim, dim)
        self.register_buffer("coords", grid_features(grid), persistent=False)  # (N, P)
        self.pos = nn.Linear(self.coords.shape[1], dim) if coords else None
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N, D), layer-normed -> predictions (B, F)."""
        h = self.inp(tokens)  # (B, N, dim)
        if self.pos is not None:
            h = h + self.pos(self.coords)
        q = self.query.expand(tokens.shape[0], -1, -1)  # (B, 1, dim)
        o, _ = self.attn(q, h, h, need_weights=False)  # (B, 1, dim)
        return self.head(self.out_norm(o.squeeze(1)))


def r2_scores(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per column (F,)."""
    ss_res = (pred - target).square().sum(0)
    ss_tot = (target - target.mean(0)).square().sum(0).clamp_min(1e-12)
    return 1 - ss_res / ss_tot


def train_attentive(feats: torch.Tensor, y: torch.Tensor, grid, cfg: ProbeConfig, lr: float, device="cpu",
                    val: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> tuple[AttentiveProbe, torch.Tensor, torch.Tensor, dict]:
    """Train an attentive probe on standardized targets.

    With ``val`` = (features, targets) and ``cfg.eval_every`` > 0, the validation R^2 is checked every
    ``eval_every`` epochs and at the end, and the best weights are kept (early stopping).
    Returns (probe in eval mode, target mean, target std, {"val_r2": best validation R^2 or None, "epochs": kept}).
    """
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    mu, sd = y.mean(0), y.std(0).clamp_min(1e-6)
    probe = AttentiveProbe(feats.shape[-1], y.shape[1], grid, cfg.dim, cfg.heads, cfg.coords).to(device)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.01)
    n = len(feats)
    steps = cfg.epochs * math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    z = ((y - mu) / sd).to(device)
    best = {"val_r2": None, "epochs": cfg.epochs}
    best_state = None
    for epoch in range(1, cfg.epochs + 1):
        probe.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = F.mse_loss(probe(feats[idx].to(device)), z[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if val is not None and cfg.eval_every > 0 and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            score = mean_r2(probe.eval(), mu, sd, *val, device)
            if best["val_r2"] is None or score > best["val_r2"]:
                best = {"val_r2": score, "epochs": epoch}
                best_state = copy.deepcopy(probe.state_dict())
    if best_state is not None:
        probe.load_state_dict(best_state)
    return probe.eval(), mu, sd, best


@torch.no_grad()
def predict_attentive(probe: AttentiveProbe, mu: torch.Tensor, sd: torch.Tensor, feats: torch.Tensor,
                      device="cpu") -> torch.Tensor:
    """Factor predictions (n, F) of a trained probe, in the targets' units."""
    pred = torch.cat([probe(feats[i:i + 256].to(device)).cpu() for i in range(0, len(feats), 256)])
    return pred * sd + mu


def mean_r2(probe: AttentiveProbe, mu: torch.Tensor, sd: torch.Tensor, feats: torch.Tensor, y: torch.Tensor,
            device="cpu") -> float:
    """R^2 of a trained probe on clips (features (n, N, D), targets (n, F)), averaged over factors."""
    return float(r2_scores(predict_attentive(probe, mu, sd, feats, device), y).mean())


def normalize_features(x: torch.Tensor, train: torch.Tensor, mode: str) -> torch.Tensor:
    """Tokens (n, N, D) standardized per channel or PCA-whitened with the statistics of the ``train`` clips' tokens."""
    if mode == "none":
        return x
    ref = x[train].reshape(-1, x.shape[-1]).double()  # (n_train * N, D)
    mu = ref.mean(0)
    if mode == "standardize":
        return (x - mu.float()) / ref.std(0).clamp_min(1e-6).float()
    if mode == "whiten":
        c = ref - mu
        ev, vec = torch.linalg.eigh(c.T @ c / len(c))  # ascending eigenvalues of the (D, D) covariance
        w = vec / ev.clamp_min(1e-5 * float(ev.max())).sqrt()  # (D, D); near-null directions not blown up
        return (x - mu.float()) @ w.float()
    raise ValueError(f"probe.normalize has {mode!r}; expected standardize, whiten or none")


def validation_split(vids: torch.Tensor, train: torch.Tensor,
                     cfg: ProbeConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Boolean masks (fit, val) over the clips: with more than one probe setting (``lrs`` x ``normalize``),
    ``val_fraction`` of the training videos are held out to choose among them; with one, all train (val None)."""
    if not cfg.lrs or not cfg.normalize:
        raise ValueError("probe.lrs and probe.normalize need at least one entry each")
    if len(cfg.lrs) * len(cfg.normalize) == 1:
        return train, None
    keep, held = split_by_video(vids[train], cfg.val_fraction, cfg.seed + 1)
    idx = train.nonzero().squeeze(1)
    fit, val = torch.zeros_like(train), torch.zeros_like(train)
    fit[idx[keep]], val[idx[held]] = True, True
    return fit, val


def fit_attentive(variants: dict[str, torch.Tensor], y: torch.Tensor, fit: torch.Tensor, val: torch.Tensor | None,
                  test: torch.Tensor, grid, cfg: ProbeConfig, device="cpu") -> tuple[torch.Tensor, dict]:
    """Attentive probe with its setting chosen on validation clips; returns (test R^2 per factor, setting).

    ``variants`` maps each normalization in ``cfg.normalize`` to the tokens (n, N, D) it gives (``normalize_features``
    with the ``fit`` clips' statistics); ``fit``/``val``/``test`` are boolean masks from ``validation_split``. One
    probe per (normalization, learning rate) trains on ``fit``; the best on ``val`` is scored on ``test``.
    """
    best = None
    for mode in cfg.normalize:
        x = variants[mode]
        for lr in cfg.lrs:
            probe, mu, sd, kept = train_attentive(x[fit], y[fit], grid, cfg, lr, device,
                                                  val=None if val is None else (x[val], y[val]))
            score = 0.0 if val is None else kept["val_r2"]
            if score is None:  # no checks during training (eval_every 0): score the final probe
                score = mean_r2(probe, mu, sd, x[val], y[val], device)
            if best is None or score > best[0]:
                best = (score, mode, lr, kept["epochs"], probe, mu, sd)
    _, mode, lr, epochs, probe, mu, sd = best
    test_r2 = r2_scores(predict_attentive(probe, mu, sd, variants[mode][test], device), y[test])  # (F,)
    return test_r2, {"normalize": mode, "lr": lr, "epochs": epochs}


def fit_ridge(x_tr, y_tr, x_te, y_te, alpha: float) -> torch.Tensor:
    """Ridge regression on standardized features (closed form, float64); returns test R^2 per factor."""
    x_tr, x_te, y_tr = x_tr.double(), x_te.double(), y_tr.double()
    mu, sd = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    ym = y_tr.mean(0)
    w = torch.linalg.solve(a.T @ a + alpha * torch.eye(a.shape[1], dtype=a.dtype), a.T @ (y_tr - ym))
    return r2_scores((b @ w + ym).float(), y_te)


def split_by_video(vids: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean train/test masks over clips, test = clips of a random ``test_fraction`` of the videos."""
    uniq = vids.unique()
    perm = uniq[torch.randperm(len(uniq), generator=torch.Generator().manual_seed(seed))]
    n_test = max(1, round(test_fraction * len(uniq)))
    test = torch.isin(vids, perm[:n_test])
    return ~test, test


def probe_encoder(encoder: nn.Module, data, cfg: ProbeConfig, device="cpu") -> dict:
    """Attentive + ridge probes of one frozen encoder on prepared probe ``data`` (see ``probe_clips``).

    Returns a dict with ``r2`` (mean attentive R^2), ``r2_per_factor``, ``ridge_r2``, ``ridge_per_factor``,
    ``r2_coords``/``r2_coords_per_factor`` (with ``also_coords``) and ``features`` (test token features, for
    collapse statistics).
    """
    frames, y, vids, names = data
    feats = extract_features(encoder, frames, cfg.feature_batch, device)  # (n, N, D)
    T = frames.shape[1]
    grid = encoder.grid(T, frames.shape[2], frames.shape[3])
    tr, te = split_by_video(vids, cfg.test_fraction, cfg.seed)
    normed = F.layer_norm(feats, (feats.shape[-1],))  # once, instead of a LayerNorm inside the probe
    fit, val = validation_split(vids, tr, cfg)
    variants = {mode: normalize_features(normed, fit, mode) for mode in cfg.normalize}  # shared by both probes
    att, setting = fit_attentive(variants, y, fit, val, te, grid, cfg, device)
    pooled = feats.mean(1)  # (n, D)
    ridge = fit_ridge(pooled[tr], y[tr], pooled[te], y[te], cfg.ridge_alpha)
    extra = {}
    if cfg.also_coords and not cfg.coords:
        att_c, setting_c = fit_attentive(variants, y, fit, val, te, grid, replace(cfg, coords=True), device)
        extra = {"r2_coords": float(att_c.mean()), "r2_coords_per_factor": dict(zip(names, map(float, att_c))),
                 "setting_coords": setting_c}
    return {
        **extra,
        "r2": float(att.mean()), "r2_per_factor": dict(zip(names, map(float, att))), "setting": setting,
        "ridge_r2": float(ridge.mean()), "ridge_per_factor": dict(zip(names, map(float, ridge))),
        "features": feats[te],
    }
