"""``wm pretrain``: V-JEPA self-supervised pretraining of a VideoViT, then frozen probes.

Each step: sample clips, draw one multi-block mask per family (short- and long-range "views"), encode each view's
visible tokens with the context encoder, predict the masked tokens' target features with the narrow predictor,
and regress them with an L1 loss (exponent configurable). Targets are the full clip's features, layer-normed
(no affine) and never back-propagated. ``regularizer`` picks what prevents collapse:

- ``ema`` (V-JEPA): targets come from an EMA copy of the encoder, momentum ``ema_start -> ema_end`` linearly.
- ``sigreg`` (LeJEPA): no EMA; targets come from the same encoder under stop-gradient (one forward of the full
  clip, as LeJEPA uses a single network), and SIGReg pushes the context tokens towards an isotropic Gaussian
  (tokens are the samples; all-reduced under DDP). Loss = (1 - w) * prediction + w * SIGReg as in LeJEPA.
- ``rdmreg`` (Rectified LpJEPA): like sigreg with RDMReg (a sliced-Wasserstein match to rectified generalized
  Gaussian samples, ``worldmodel.losses.rdmreg``) in place of SIGReg.
- ``vicreg``: like sigreg with VICReg's variance and covariance terms in place of SIGReg.

Collapse monitors (per-dim std and effective rank of the target tokens) are logged every ``collapse.every``
steps with a warning below thresholds. At the end, rank 0 probes the encoder that later stages load (the EMA
target for ``ema``) and a randomly initialized encoder of the same architecture on held-out synthetic clips
(``worldmodel.probes.attentive``): ``probe_r2`` is the V-JEPA-style attentive probe on features alone,
``probe_r2_coords`` the same probe given each token's grid coordinates, ``effective_rank`` that of the probed
encoder's test-clip tokens.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from worldmodel.config import to_dict
from worldmodel.contracts.summaries import PretrainSummary, summary_of
from worldmodel.data.synthetic import SyntheticConfig, generate
from worldmodel.data.video import VideoClipDataset, clip_loader, list_videos
from worldmodel.losses import collapse_stats, latent_loss, rdmreg, sigreg, vicreg
from worldmodel.masks import MaskConfig, sample_masks
from worldmodel.models.masked_predictor import MaskedPredictor, PredictorConfig
from worldmodel.models.video_vit import VideoViT, VideoViTConfig
from worldmodel.probes.attentive import ProbeConfig, probe_clips, probe_encoder
from worldmodel.train.core import TrainConfig, Trainer
from worldmodel.train.regularizers import REGULARIZER_SCHEMAS, RegularizerConfig
from worldmodel.utils import preempt
from worldmodel.utils.device import resolve_device, seed_everything
from worldmodel.utils.memory import F32, check_fits, transformer_bytes

log = logging.getLogger(__name__)


@dataclass
class VideoDataConfig:
    # video sources: V-JEPA CSV lists or folders of videos; empty = the built-in synthetic dataset
    paths: list[str] = field(default_factory=list)
    # mixture weight per source (empty = equal)
    weights: list[float] = field(default_factory=list)
    # generate (once, cached) and use the built-in synthetic videos when no path is given
    synthetic: bool = True
    # cache folder of the synthetic data (a subfolder per generator config)
    synthetic_dir: str = "data/synthetic_balls"
    # synthetic generator settings (size follows model.img_size in configs/pretrain.yaml)
    generator: SyntheticConfig = field(default_factory=SyntheticConfig)
    # frames per clip (follows model.num_frames in configs/pretrain.yaml)
    num_frames: int = 8
    # stride between sampled frames (1 = native fps)
    frame_step: int = 1
    # random resized crop: area fraction range
    crop_scale: tuple[float, float] = (0.3, 1.0)
    # random resized crop: aspect ratio range
    crop_ratio: tuple[float, float] = (0.75, 1.35)
    # random horizontal flip
    hflip: bool = True
    # stop when more than this fraction of the videos is unusable
    max_bad_fraction: float = 0.5
    # MB of decoded videos kept in memory per loader process (a video decoded whole on first use, later clips
    # sliced from it; the same clips as decoding each one); videos past the budget are decoded clip by clip; 0: off
    cache_mb: float = 1024.0


@dataclass
class CollapseConfig:
    # steps between collapse statistics (0: never)
    every: int = 50
    # warn when the mean per-dimension std of target tokens falls below this
    min_std: float = 0.05
    # warn when the effective rank falls below this fraction of embed_dim
    min_rank_fraction: float = 0.1


@dataclass
class PretrainConfig:
    # where checkpoint.pt, metrics.jsonl and summary.json go
    out_dir: str = "runs/pretrain"
    # encoder architecture (group model/)
    model: VideoViTConfig = field(default_factory=VideoViTConfig)
    # predictor architecture (set with the model group)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    # multi-block masks
    masks: MaskConfig = field(default_factory=MaskConfig)
    # collapse prevention: the selected option of group regularizer/, with its own schema (train/regularizers.py)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    # training videos
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    # optimization (trainer core)
    train: TrainConfig = field(default_factory=TrainConfig)
    # frozen evaluation at the end
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    # collapse monitors
    collapse: CollapseConfig = field(default_factory=CollapseConfig)
    # exponent p of the |pred - target|^p prediction loss (1 = L1)
    loss_exponent: float = 1.0




class JEPA(nn.Module):
    """The trainable part: context encoder + predictor (one DDP module)."""

    def __init__(self, model: VideoViTConfig, predictor: PredictorConfig):
        super().__init__()
        self.encoder = VideoViT(model)
        self.predictor = MaskedPredictor(predictor, model.embed_dim)

    def forward(self, x: torch.Tensor, views: list[tuple[torch.Tensor, torch.Tensor]]):
        """x (B, 3, T, H, W); views [(ctx_idx (B, K), tgt_idx (B, M))] -> [(pred (B, M, D), ctx (B, K, D))]."""
        grid = self.encoder.grid(x.shape[2], x.shape[3], x.shape[4])
        out = []
        for ctx_idx, tgt_idx in views:
            ctx = self.encoder(x, keep=ctx_idx)  # (B, K, D)
            out.append((self.predictor(ctx, ctx_idx, tgt_idx, grid), ctx))
        return out


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    t = [p for p in target.parameters()]
    o = [p.detach() for p in online.parameters()]
    torch._foreach_mul_(t, momentum)
    torch._foreach_add_(t, o, alpha=1.0 - momentum)


def ema_momentum(step: int, steps: int, start: float, end: float) -> float:
    """Linear momentum schedule from ``start`` (step 0) to ``end`` (last step)."""
    return start + (end - start) * min(1.0, step / max(1, steps - 1))


def _cfg_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=list).encode()).hexdigest()[:8]


def synthetic_dirs(cfg) -> tuple[Path, SyntheticConfig, Path, SyntheticConfig]:
    """Cache folders and generator configs of the synthetic training set and the held-out probe set."""
    gen = SyntheticConfig(**to_dict(cfg.data.generator))
    probe = SyntheticConfig(**{**asdict(gen), "num_videos": cfg.probe.num_videos, "seed": gen.seed + 100_003})
    root = Path(cfg.data.synthetic_dir)
    return (root / f"train-{_cfg_hash(asdict(gen))}", gen, root / f"probe-{_cfg_hash(asdict(probe))}", probe)


def _barrier(trainer: Trainer) -> None:
    if trainer.world_size > 1:
        dist.barrier()


def prepare_data(cfg, trainer: Trainer) -> VideoClipDataset:
    """Build the clip dataset (generating the synthetic data on rank 0 first when no path is given)."""
    paths, weights = list(cfg.data.paths), list(cfg.data.weights)
    if not paths:
        if not cfg.data.synthetic:
            raise ValueError("pretrain: data.paths is empty and data.synthetic=false: no video to train on")
        train_dir, gen, _, _ = synthetic_dirs(cfg)
        if trainer.is_main:
            generate(train_dir, gen)
        _barrier(trainer)
        paths = [str(train_dir / "train.csv")]
    return VideoClipDataset(paths, weights or None, cfg.data.num_frames, cfg.data.frame_step, cfg.model.img_size,
                            tuple(cfg.data.crop_scale), tuple(cfg.data.crop_ratio), cfg.data.hflip,
                            cfg.data.max_bad_fraction, cfg.data.cache_mb)


def train_step(cfg, trainer: Trainer, target: nn.Module, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
    """Loss of one step and its metrics (no backward)."""
    enc: VideoViT = trainer.raw_model.encoder
    reg = cfg.regularizer
    grid = enc.grid(x.shape[2], x.shape[3], x.shape[4])
    views = [(c.to(x.device), t.to(x.device))
             for c, t in sample_masks(x.shape[0], grid, cfg.masks, trainer.generator_for(step))]
    with torch.no_grad():
        h_raw = target(x)  # (B, N, D) full-clip features
        h = F.layer_norm(h_raw.float(), (h_raw.shape[-1],))
    outs = trainer.model(x, views)
    pred_loss = sum(latent_loss(p.float(), torch.gather(h, 1, t.unsqueeze(-1).expand(-1, -1, h.shape[-1])),
                                cfg.loss_exponent) for (p, _), (_, t) in zip(outs, views)) / len(views)
    metrics = {"loss/pred": pred_loss.item()}
    ctx = torch.cat([c.reshape(-1, c.shape[-1]) for _, c in outs])  # (sum B*K, D) context tokens as samples
    if reg.name == "ema":
        loss = pred_loss
        if reg.ema_vicreg > 0:
            v, c = vicreg(ctx)
            loss = pred_loss + reg.ema_vicreg * (reg.vicreg_var * v + reg.vicreg_cov * c)
            metrics.update({"loss/vic_var": v.item(), "loss/vic_cov": c.item()})
    elif reg.name in ("sigreg", "rdmreg"):
        seed = cfg.train.seed * 1_000_003 + step
        g = torch.Generator().manual_seed(seed)  # same directions (and target samples) on every rank
        tokens = reg.sigreg_tokens if reg.name == "sigreg" else reg.rdmreg_tokens
        if 0 < tokens < ctx.shape[0]:
            ctx = ctx[torch.randperm(ctx.shape[0], generator=trainer.generator_for(step))[:tokens].to(ctx.device)]
        if reg.name == "sigreg":
            s, w = sigreg(ctx, num_slices=reg.sigreg_slices, generator=g), reg.sigreg_weight
        else:
            s = rdmreg(ctx, num_slices=reg.rdmreg_slices, p=reg.rdmreg_p, mu=reg.rdmreg_mu, sigma=reg.rdmreg_sigma,
                       generator=g, seed=seed)
            w = reg.rdmreg_weight
        loss = (1 - w) * pred_loss + w * s
        metrics[f"loss/{reg.name}"] = s.item()
    elif reg.name == "vicreg":
        v, c = vicreg(ctx)
        loss = pred_loss + reg.vicreg_var * v + reg.vicreg_cov * c
        metrics.update({"loss/vic_var": v.item(), "loss/vic_cov": c.item()})
    else:
        raise ValueError(f"regularizer.name is {reg.name!r}; expected one of {list(REGULARIZER_SCHEMAS)}")
    metrics["loss/total"] = loss.item()
    if cfg.collapse.every and step % cfg.collapse.every == 0:
        stats = collapse_stats(h_raw)
        metrics.update({"collapse/std": stats["std"], "collapse/eff_rank": stats["eff_rank"]})
        if stats["std"] < cfg.collapse.min_std or stats["eff_rank"] < cfg.collapse.min_rank_fraction * enc.embed_dim:
            warnings.warn(f"pretrain step {step}: representation may be collapsing (std {stats['std']:.3g}, "
                          f"effective rank {stats['eff_rank']:.1f} of {enc.embed_dim})")
    return loss, metrics


def check_step_memory(cfg, model_cfg: VideoViTConfig, device) -> None:
    """Refuse settings whose training cannot fit, before the model is built: its weights with their gradients,
    AdamW moments and the EMA target (``model.embed_dim``), and one step at ``train.batch_size`` — the clips and
    their augmented copies, the context encoder over two views, the target forward, and the predictor."""
    B, size = int(cfg.train.batch_size), model_cfg.input_size or model_cfg.img_size
    tokens = (cfg.data.num_frames // model_cfg.tubelet_size) * (size // model_cfg.patch_size) ** 2
    clips = 4.0 * B * model_cfg.in_chans * cfg.data.num_frames * size ** 2 * F32
    enc = transformer_bytes(B, tokens, model_cfg.embed_dim, model_cfg.depth, model_cfg.mlp_ratio)
    target = transformer_bytes(B, tokens, model_cfg.embed_dim, model_cfg.depth, model_cfg.mlp_ratio, backward=False)
    pred = transformer_bytes(B, tokens, cfg.predictor.embed_dim, cfg.predictor.depth, cfg.predictor.mlp_ratio)
    weights = 12.0 * (model_cfg.embed_dim ** 2 * model_cfg.depth + cfg.predictor.embed_dim ** 2 * cfg.predictor.depth)
    check_fits(f"model.embed_dim={model_cfg.embed_dim}", 5 * weights * F32, "the weights, their gradients, "
               "AdamW's moments and the EMA target", device, hint="lower model.embed_dim or model.depth")
    check_fits(f"train.batch_size={B}", clips + 2 * enc + target + 2 * pred,
               f"one pretraining step of {tokens}-token clips", device, hint="lower train.batch_size")


def run_probes(cfg, encoder: VideoViT, device) -> dict:
    """Probe the trained encoder and a random-init twin on held-out synthetic clips; summary figures."""
    _, _, probe_dir, probe_gen = synthetic_dirs(cfg)
    videos = list_videos(generate(probe_dir, probe_gen))
    data = probe_clips(videos, cfg.data.num_frames, cfg.data.frame_step, cfg.probe.clips_per_video)
    torch.manual_seed(cfg.train.seed + 1)
    random_enc = VideoViT(encoder.cfg).to(device)
    pcfg = ProbeConfig(**to_dict(cfg.probe))
    ours, rand = probe_encoder(encoder, data, pcfg, device), probe_encoder(random_enc, data, pcfg, device)
    rank, rank_rand = collapse_stats(ours["features"])["eff_rank"], collapse_stats(rand["features"])["eff_rank"]
    setting = {"pretrained": ours["setting"], "random_init": rand["setting"]}
    coords = {}
    if "r2_coords" in ours:
        coords = {"probe_r2_coords": ours["r2_coords"], "probe_r2_coords_random_init": rand["r2_coords"],
                  "probe_r2_coords_per_factor": ours["r2_coords_per_factor"],
                  "probe_r2_coords_per_factor_random_init": rand["r2_coords_per_factor"]}
        setting.update(pretrained_coords=ours["setting_coords"], random_init_coords=rand["setting_coords"])
    return {
        "probe_r2": ours["r2"], "probe_r2_random_init": rand["r2"],
        "probe_r2_margin": ours["r2"] - rand["r2"],
        "probe_r2_ridge": ours["ridge_r2"], "probe_r2_ridge_random_init": rand["ridge_r2"],
        "probe_r2_per_factor": ours["r2_per_factor"], "probe_r2_per_factor_random_init": rand["r2_per_factor"],
        "effective_rank": rank, "effective_rank_random_init": rank_rand,
        **coords,
        "probe_setting": setting,
        "probe_clips": int(len(data[0])),
    }


def run(cfg: PretrainConfig) -> PretrainSummary:
    """Pretrain, checkpoint, probe; returns the summary (the CLI writes summary.json)."""
    t_start = time.time()
    reg = cfg.regularizer
    seed_everything(cfg.train.seed)  # identical init on every rank; the saved RNG state is the run's own
    model_cfg = VideoViTConfig(**to_dict(cfg.model))
    check_step_memory(cfg, model_cfg, resolve_device(cfg.train.device, int(os.environ.get("LOCAL_RANK", "0"))))
    jepa = JEPA(model_cfg, PredictorConfig(**to_dict(cfg.predictor)))
    extra = {}
    if reg.name == "ema":
        extra["target"] = copy.deepcopy(jepa.encoder).requires_grad_(False)
    trainer = Trainer(cfg.train, cfg.out_dir, model=jepa, config=to_dict(cfg), kind="pretrain", extra=extra)
    target = extra.get("target", trainer.raw_model.encoder)
    ds = prepare_data(cfg, trainer)
    if ds.bad and trainer.is_main:
        print(f"[pretrain] skipped {len(ds.bad)} unusable video(s) of {len(ds.bad) + len(ds)}")
    loader = clip_loader(ds, cfg.train.batch_size, trainer.start_step, cfg.train.steps, cfg.train.seed,
                         trainer.rank, cfg.train.num_workers)
    tokens_per_clip = trainer.raw_model.encoder.num_tokens(cfg.data.num_frames)
    t_train, steps_done, last = time.time(), 0, {}
    for step, x in zip(trainer.steps(), loader):
        x = x.to(trainer.device, non_blocking=True)
        with trainer.autocast():
            loss, metrics = train_step(cfg, trainer, target, x, step)
        metrics["grad_norm"] = trainer.backward_step(loss)
        if reg.name == "ema":
            m = ema_momentum(step, cfg.train.steps, reg.ema_start, reg.ema_end)
            ema_update(target, trainer.raw_model.encoder, m)
            metrics["ema/momentum"] = m
        trainer.log(step, metrics)
        trainer.maybe_checkpoint(step)
        steps_done, last = steps_done + 1, metrics
    train_seconds = time.time() - t_train
    ckpt = trainer.save_checkpoint()
    world = trainer.world_size
    trainer.close()
    last = last or (trainer.history[-1] if trainer.history else {})  # resumed at the end: its last logged row
    summary = {
        "steps": cfg.train.steps, "start_step": trainer.start_step, "final_loss": last.get("loss/total"),
        "final_pred_loss": last.get("loss/pred"), "checkpoint": str(ckpt), "regularizer": reg.name,
        "embed_dim": model_cfg.embed_dim, "tokens_per_clip": tokens_per_clip,
        "bad_videos": len(ds.bad), "bad_video_files": [p for p, _ in ds.bad[:20]], "videos": len(ds),
        "train_seconds": round(train_seconds, 2), "world_size": world,
        "tokens_per_s": round(steps_done * cfg.train.batch_size * world * tokens_per_clip / max(train_seconds, 1e-9),
                              1),
    }
    if not trainer.is_main:
        return summary_of("pretrain", summary, f"{ckpt}: summary")
    preempt.check(f"pretrain: trained, checkpoint {ckpt} (the probes run on the rerun)")
    if cfg.probe.enabled:
        t_probe = time.time()
        summary.update(run_probes(cfg, target.eval(), trainer.device))
        summary["probe_seconds"] = round(time.time() - t_probe, 2)
    summary = summary_of("pretrain", {**summary, "seconds": round(time.time() - t_start, 2)}, f"{ckpt}: summary")
    if cfg.probe.enabled:
        print(f"[pretrain] probe R2 {summary.probe_r2:.3f} (random init {summary.probe_r2_random_init:.3f}), "
              f"effective rank {summary.effective_rank:.1f} / {model_cfg.embed_dim}")
    return summary
