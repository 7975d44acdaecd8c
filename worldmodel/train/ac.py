"""``wm train-ac``: train the action-conditioned predictor on latents of a frozen pretrained encoder.

Data: every frame of the episode dataset is encoded once (``worldmodel.train.latent_cache``; single-frame
tubelet, layer-normed, pooled ``model.pool``) and windows of ``num_steps + 1`` frames, ``frame_skip`` env
steps apart, are sampled from the training split (``split_episodes(manifest, val_fraction, split_seed)``;
the held-out split is what ``wm drift`` evaluates on). With ``finetune.blocks`` set, the encoder's last blocks
train too, from frames, with SIGReg against collapse (``worldmodel.train.ac_finetune``).

Loss per window (L1 on latents, + ``state_weight`` x L1 on standardized states when the state head is on)::

    teacher forcing:  predict z[t+1], s[t+1] from z[<=t], s[<=t], a[<=t] for t = 0..num_steps-1
    rollout:          from z[0], s[0] roll ``rollout_steps`` steps feeding back predicted latents and states,
                      gradients through the whole rollout; compared with z[1..R], s[1..R]
    loss = loss_tf + rollout_weight * loss_rollout

Latent loss: ``l1`` is V-JEPA 2-AC's. The cpu/gpu presets use ``l2``, measured on PointReach: the latent change of
one step is sparse (a few channels of the token under the moving object), so the L1-optimal prediction (the
conditional median) keeps the background and drops the object; a decoder trained with L1 from the TRUE
position gave latents whose state probe was no better than chance (0.85 vs 0.12 with L2, in train-state stds).

``preset=smoke`` with no ``encoder_checkpoint``/``dataset`` bootstraps them (``worldmodel.commands.bootstrap``:
``wm collect`` and ``wm pretrain`` at preset=smoke into ``out_dir/bootstrap/``), so it runs alone on a fresh checkout.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from worldmodel.config import to_dict
from worldmodel.contracts.checkpoint_meta import CheckpointMeta, EncoderRecord, PredictorRecord
from worldmodel.contracts.manifest import Manifest
from worldmodel.data.formats import KeyMap, as_native
from worldmodel.data.rollouts import read_manifest, split_episodes
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig, step_memory_bytes
from worldmodel.models.encoders import EncoderSpec, describe, frozen_encoder_from_spec, parse_spec
from worldmodel.models.finetune import EncoderPredictor
from worldmodel.models.keypoints import KeypointConfig, SceneKeypoints, fit_keypoints, keypoints_of
from worldmodel.train.ac_finetune import FinetuneConfig, finetune_losses, frame_episodes, start_latent_stats
from worldmodel.train.ac_losses import LatentLoss, ac_losses
from worldmodel.train.core import TrainConfig, Trainer
from worldmodel.train.latent_cache import latent_stats, load_latents
from worldmodel.utils import preempt
from worldmodel.utils.checkpoint import content_digest, plain_copy
from worldmodel.utils.device import resolve_device, seed_everything
from worldmodel.utils.memory import check_fits


@dataclass
class TrainACConfig:
    out_dir: str = "runs/train_ac"  # where checkpoint.pt, metrics.jsonl and summary.json go
    encoder_checkpoint: str = ""  # a `wm pretrain` checkpoint (frozen encoder); required unless bootstrap or encoder=
    encoder: str = ""  # frozen encoder: "" (encoder_checkpoint) | worldmodel:<file> | vjepa2:<file> | timm:<model name>
    encoder_weights: str = ""  # encoder=timm:...: the backbone's local weights file (nothing is downloaded)
    encoder_img_size: int = 0  # frames resized to this before encoding (0: ours as they come, timm its own, vjepa2 256)
    encoder_heads: int = 0  # encoder=vjepa2:...: attention heads (0: from the width, ViT-L/H 16, ViT-g 22)
    dataset: str = ""  # episode dataset: a `wm collect` folder, a LeRobot folder or an HDF5 file/folder (docs/byod.md)
    dataset_format: str = "auto"  # its layout: auto | worldmodel | lerobot | hdf5-robomimic | hdf5-episodes
    dataset_keys: KeyMap = field(default_factory=KeyMap)  # other layouts: which keys are camera, actions, proprio
    bootstrap: bool = False  # when encoder_checkpoint/dataset are empty, build them at preset=smoke (smoke only)
    bootstrap_collect: list[str] = field(default_factory=list)  # extra overrides for the bootstrap `wm collect`
    bootstrap_pretrain: list[str] = field(default_factory=list)  # extra overrides for the bootstrap `wm pretrain`
    frame_skip: int = 1  # env steps per predictor step; its action stacks those frame_skip env actions
    num_steps: int = 4  # teacher-forcing steps per window (windows hold num_steps + 1 frames)
    rollout_steps: int = 2  # autoregressive steps of the rollout loss (<= num_steps)
    rollout_weight: float = 1.0  # weight of the rollout loss
    loss: LatentLoss = LatentLoss.l1  # latent loss: l1 (V-JEPA 2-AC) | l2 (conditional mean; see the module docstring)
    use_state: bool = True  # feed a state token (state_dims) and predict the next one (False: vision only)
    state_dims: str = "proprio"  # what the state token carries: proprio (the agent's own body) | all (oracle)
    state_weight: float = 1.0  # weight of the L1 state loss (standardized units)
    val_fraction: float = 0.1  # held-out episode fraction (drift evaluates on them)
    split_seed: int = 0  # seed of the train/held-out episode split
    latent_cache_dir: str = ""  # where cached latents go ("" = <dataset>/latent_cache)
    encode_batch: int = 64  # frames per encoder call when filling the cache
    max_bad_fraction: float = 0.1  # corrupt episodes are skipped and counted; the run stops past this share
    embed_encoder: bool = True  # carry the frozen encoder's weights in checkpoint.pt (false: pin them by digest)
    val_windows: int = 256  # held-out windows for the final validation losses
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)  # train the encoder too (off by default)
    keypoints: KeypointConfig = field(default_factory=KeypointConfig)  # label-free scene keypoints in the state token
    model: ACPredictorConfig = field(default_factory=ACPredictorConfig)  # predictor architecture
    train: TrainConfig = field(default_factory=TrainConfig)  # steps, batch, optimizer, devices, checkpoints




def resolve_inputs(cfg) -> tuple[EncoderSpec, Path]:
    """The encoder spec and the dataset to use (absolute), checked to exist."""
    if not cfg.dataset:
        raise ValueError("train-ac needs dataset=PATH (an episode folder written by `wm collect`)")
    spec = parse_spec(cfg.encoder, cfg.encoder_checkpoint, cfg.encoder_weights, cfg.encoder_img_size,
                      cfg.encoder_heads)
    return spec, native_dataset(cfg)


def native_dataset(cfg) -> Path:
    """``cfg.dataset`` as a folder of this project's layout (other layouts are converted once, beside the source)."""
    return as_native(cfg.dataset, cfg.dataset_format, KeyMap.of(cfg.dataset_keys))


def prepare_latents(cfg, enc: str | Path, data: Path, device, pool: int, is_main: bool = True,
                    digest: str | None = None, encoder=None):
    """Latents of all episodes (rank 0 fills the cache, the others wait and read it); ``enc``: the encoder's
    weights file, ``digest``: their content digest (the cache key), ``encoder``: the encoder, when built."""

    distributed = dist.is_available() and dist.is_initialized()
    kw = dict(cache_dir=cfg.latent_cache_dir or None, batch_size=cfg.encode_batch,
              max_bad_fraction=cfg.max_bad_fraction, encoder_digest=digest, encoder=encoder)
    if distributed and not is_main:
        dist.barrier()
    eps = load_latents(data, enc, pool, device, progress=is_main and cfg.train.progress, **kw)
    if distributed and is_main:
        dist.barrier()
    return eps


def resolve_model_config(cfg, encoder, manifest: Manifest) -> ACPredictorConfig:
    """Fill the predictor fields that come from the encoder (width, grid) and the dataset (action, state)."""

    m = ACPredictorConfig(**to_dict(cfg.model))
    gh, gw = encoder.patch_grid(*manifest.height_width)
    if gh % m.pool or gw % m.pool:
        raise ValueError(f"model.pool={m.pool} does not divide the encoder's {gh}x{gw} patch grid")
    return dataclasses.replace(
        m, embed_dim=encoder.embed_dim, grid_h=gh // m.pool, grid_w=gw // m.pool,
        action_dim=cfg.frame_skip * manifest.action_dim,
        state_dim=len(manifest.state_token_dims(cfg.state_dims)) + 2 * cfg.keypoints.num if cfg.use_state else 0,
        max_steps=max(m.max_steps, cfg.num_steps + 1))


COLLAPSE_MONITORS = ("latent_std",)  # parts of a batch's losses that only watch the encoder (fine-tuning)


def metric_name(part: str) -> str:
    """Logged name of a loss part: ``loss/<part>``, or ``collapse/<part>`` for a monitor (not a loss term)."""
    return f"collapse/{part}" if part in COLLAPSE_MONITORS else f"loss/{part}"


def batch_losses(model, batch: dict, cfg, norm_states, generator=None) -> dict:
    """The losses of one batch for this run: on cached latents, or through the encoder when it is fine-tuned."""
    if isinstance(model.module if hasattr(model, "module") else model, EncoderPredictor):
        return finetune_losses(model, batch, cfg.rollout_steps, norm_states, cfg.loss, cfg.finetune, generator)
    return ac_losses(model, batch, cfg.rollout_steps, norm_states, cfg.loss)


def run(cfg: TrainACConfig) -> dict:
    """Train the predictor; returns the summary (losses, checkpoint path, tokens per frame)."""

    t_start = time.time()
    if cfg.rollout_steps < 1 or cfg.rollout_steps > cfg.num_steps:
        raise ValueError(f"rollout_steps={cfg.rollout_steps} must be in 1..num_steps={cfg.num_steps}")
    ft = cfg.finetune
    if ft.blocks < -1 or ft.lr_scale < 0 or ft.sigreg_weight < 0:
        raise ValueError(f"finetune: blocks={ft.blocks}, lr_scale={ft.lr_scale}, sigreg_weight={ft.sigreg_weight}; "
                         f"expected blocks >= -1 (0: frozen encoder, -1: all of it) and non-negative weights")
    if cfg.keypoints.num < 0 or cfg.keypoints.num > 0 and (ft.blocks != 0 or not cfg.use_state):
        raise ValueError(f"keypoints.num={cfg.keypoints.num}: expected >= 0, and > 0 only with a frozen encoder "
                         f"(finetune.blocks=0) and a state token (use_state=true)")
    spec, data = resolve_inputs(cfg)
    seed_everything(cfg.train.seed)
    manifest = read_manifest(data)
    train_ids, val_ids = split_episodes(manifest, cfg.val_fraction, cfg.split_seed)
    device = resolve_device(cfg.train.device)
    enc_cfg, enc_state, encoder = frozen_encoder_from_spec(spec, device)
    mcfg = resolve_model_config(cfg, encoder, manifest)
    check_step_memory(mcfg, cfg, device)
    predictor = ACPredictor(mcfg)
    dims = manifest.state_token_dims(cfg.state_dims) if mcfg.state_dim > 0 else []
    finetune, kp_fit_loss = ft.blocks != 0, None
    enc_record = EncoderRecord(spec=dataclasses.asdict(spec), config=plain_copy(enc_cfg),
                               digest=content_digest([enc_cfg, enc_state]), describe=describe(enc_cfg),
                               embedded=bool(cfg.embed_encoder or finetune), finetuned=finetune)
    record = PredictorRecord(encoder_checkpoint=spec.file, dataset=str(data), state_dims=dims, encoder=enc_record,
                             model=dataclasses.asdict(mcfg), manifest=manifest,
                             train_episodes=list(map(int, train_ids)), val_episodes=list(map(int, val_ids)))
    if finetune:  # one module, one optimizer: the encoder's trainable blocks at lr x finetune.lr_scale
        model = EncoderPredictor(encoder, predictor, mcfg.pool, ft.blocks)
        config = CheckpointMeta("train_ac", to_dict(cfg), record).to_config()
        trainer = Trainer(cfg.train, cfg.out_dir, model=model, config=config, kind="train_ac",
                          lr_scales={"encoder.": ft.lr_scale})
        eps = frame_episodes(data, cfg.max_bad_fraction, trainer.is_main and cfg.train.progress).with_state_dims(dims)
    else:
        carried = {"encoder": encoder} if cfg.embed_encoder else {}  # saved in every checkpoint, never trained
        if cfg.keypoints.num > 0:  # fit below, or restored on resume
            carried["keypoints"] = SceneKeypoints(*encoder.patch_grid(*manifest.height_width), encoder.embed_dim,
                                                  cfg.keypoints.num, cfg.keypoints.hidden)
            record = dataclasses.replace(record, keypoints=carried["keypoints"].config())
        config = CheckpointMeta("train_ac", to_dict(cfg), record).to_config()
        trainer = Trainer(cfg.train, cfg.out_dir, model=predictor, config=config, kind="train_ac", extra=carried)
        eps = prepare_latents(cfg, spec.file, data, device, mcfg.pool, trainer.is_main,
                              enc_record.digest, encoder).with_state_dims(dims)
        if cfg.keypoints.num > 0:
            eps, kp_fit_loss = with_keypoints(cfg, eps, trainer, spec.file, data, device, encoder, enc_record.digest,
                                              train_ids)
    train_eps = eps.subset(list(train_ids))
    windows = train_eps.windows(cfg.num_steps, cfg.frame_skip)
    if trainer.start_step == 0:  # normalization from the training split (restored with the weights on resume)
        stats = (start_latent_stats(encoder, windows.z, mcfg.pool, ft.stats_frames) if finetune
                 else latent_stats(train_eps.latents))
        set_data_normalization(predictor, manifest, cfg.frame_skip, train_eps, stats)
    del encoder
    norm_states = predictor.norm_states if mcfg.state_dim > 0 else None
    losses = train_predictor(trainer, windows, cfg, norm_states)
    ckpt = trainer.save_checkpoint()
    preempt.check(f"train-ac: trained, checkpoint {ckpt} (validation runs on the rerun)")
    raw = trainer.raw_model
    val = validate(raw, eps.subset(list(val_ids)) if len(val_ids) else train_eps, cfg, norm_states, trainer.device)
    trainer.close()
    return {
        "steps": int(cfg.train.steps),
        **losses,
        **val,
        "checkpoint": str(ckpt),
        "encoder_checkpoint": spec.file,
        "encoder": spec.label, "encoder_describe": describe(enc_cfg),
        "encoder_finetuned_blocks": raw.blocks if finetune else 0,
        "dataset": str(data),
        "latent_cache": eps.path,
        "latent_cache_hit": not eps.encoded and not finetune,
        "episodes_skipped": len(eps.skipped), "skipped_episodes": {str(k): v for k, v in eps.skipped.items()},
        "tokens_per_frame": mcfg.grid_h * mcfg.grid_w,
        "scene_keypoints": cfg.keypoints.num,
        "keypoints_fit_loss": kp_fit_loss,
        "parameters": sum(p.numel() for p in raw.parameters() if p.requires_grad),
        "seconds": round(time.time() - t_start, 2),
    }


def with_keypoints(cfg, eps, trainer, enc_file, data, device, encoder, digest, train_ids):
    """(``eps`` with each frame's scene keypoints appended to its proprioception, the fit's loss or None): the
    keypoints are fit on the unpooled latents of the training episodes (``worldmodel.models.keypoints``) unless
    restored on resume."""
    fine = prepare_latents(cfg, enc_file, data, device, 1, trainer.is_main, digest, encoder)
    kp, fit_loss = trainer.extra["keypoints"], None
    if trainer.start_step == 0:
        train = eps.subset(list(train_ids))
        s = torch.cat(train.states)  # (F, P) proprioception of the training frames
        s = (s - s.mean(0)) / s.std(0).clamp_min(1e-6) if s.shape[1] else None
        fitted, loss = fit_keypoints(torch.cat(fine.subset(list(train_ids)).latents), s, kp.grid_h, kp.grid_w,
                                     cfg.keypoints, cfg.train.seed, trainer.is_main and cfg.train.progress)
        kp.load_state_dict(fitted.state_dict())
        fit_loss = round(loss, 6)
    kp.eval().requires_grad_(False)
    scene = {i: keypoints_of(kp, z) for i, z in zip(fine.ids, fine.latents)}  # episode id -> (T+1, 2K)
    return dataclasses.replace(eps, states=[torch.cat((s, scene[i]), 1) for i, s in zip(eps.ids, eps.states)]), fit_loss


def set_data_normalization(model: ACPredictor, manifest: Manifest, frame_skip: int, train_eps,
                           token_stats: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Record in the predictor the action bounds (stacked ``frame_skip`` times), the state statistics of the
    training episodes and the per-(token, channel) input statistics ``token_stats`` (mean, std), each (N, D)."""
    s_all = torch.cat(train_eps.states)  # (n, S)
    a_low = torch.as_tensor(manifest.action_low, dtype=torch.float32).repeat(frame_skip)
    a_high = torch.as_tensor(manifest.action_high, dtype=torch.float32).repeat(frame_skip)
    model.set_normalization(a_low, a_high, s_all.mean(0), s_all.std(0), *token_stats)


def check_step_memory(mcfg: ACPredictorConfig, cfg, device) -> None:
    """Refuse a ``train.batch_size`` whose step cannot fit, before any data is loaded: the teacher-forced pass
    and the rollout passes over ``num_steps + 1``-frame windows (train-ac and train-pixel)."""
    steps = int(cfg.num_steps) + 1
    need = (1 + int(cfg.rollout_steps)) * step_memory_bytes(mcfg, int(cfg.train.batch_size), steps, backward=True)
    check_fits(f"train.batch_size={cfg.train.batch_size}", need, f"one training step of {steps}-frame windows",
               device, hint="lower train.batch_size")


def train_predictor(trainer: Trainer, windows, cfg, norm_states) -> dict:
    """The training loop of train-ac and train-pixel: per step a batch of windows, teacher-forcing + rollout
    losses (+ the state losses), one optimizer step, logging and periodic checkpoints. Returns the loss figures
    of the summary: the mean of the rows logged in the last tenth of the run (at most 50 steps; at least the
    last row), read from the trainer's history so that a resumed run reports what an uninterrupted one does."""
    for step in trainer.steps():
        batch = {k: v.to(trainer.device, non_blocking=True)
                 for k, v in windows.sample(cfg.train.batch_size, trainer.generator_for(step)).items()}
        with trainer.autocast():
            directions = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + step)  # same on every rank
            parts = batch_losses(trainer.model, batch, cfg, norm_states, directions)
            loss = parts["tf"] + cfg.rollout_weight * parts["rollout"]
            if norm_states is not None:
                loss = loss + cfg.state_weight * (parts["state_tf"] + cfg.rollout_weight * parts["state_rollout"])
            if "sigreg" in parts:
                loss = loss + cfg.finetune.sigreg_weight * parts["sigreg"]
        trainer.backward_step(loss)
        trainer.log(step, {"loss/total": loss.item(), **{metric_name(k): v.item() for k, v in parts.items()}})
        trainer.maybe_checkpoint(step)
    first = cfg.train.steps - max(1, min(50, cfg.train.steps // 10))
    recent = [r for r in trainer.history if r["step"] >= first] or trainer.history[-1:]
    mean = {k: sum(r[k] for r in recent) / len(recent) for k in recent[0] if k.startswith("loss/")} if recent else {}
    return {"final_loss": mean.get("loss/total", math.nan), "loss_tf": mean.get("loss/tf", math.nan),
            "loss_rollout": mean.get("loss/rollout", math.nan), "loss_state": mean.get("loss/state_tf", math.nan),
            "loss_copy_last": mean.get("loss/copy_last", math.nan)}


@torch.no_grad()
def validate(model, eps, cfg, norm_states, device) -> dict:
    """Teacher-forcing, rollout and copy-last losses (``cfg.loss``) on (up to ``val_windows``) held-out windows
    (with a fine-tuned encoder, its latents and its SIGReg term too)."""
    try:
        windows = eps.windows(cfg.num_steps, cfg.frame_skip)
    except ValueError:
        return {}
    idx = torch.linspace(0, len(windows) - 1, min(cfg.val_windows, len(windows))).long()
    model.eval()
    batch = {k: v.to(device) for k, v in windows.gather(idx).items()}
    parts = batch_losses(model, batch, cfg, norm_states, torch.Generator().manual_seed(0))
    model.train()
    return {"val_" + metric_name(k).replace("/", "_"): round(v.item(), 6) for k, v in parts.items()}
