"""``wm train-pixel``: the pixel-space baseline, trained like ``wm train-ac`` but on pixel patches.

Same data, same losses, same budget, same trainer core as train-ac (see :mod:`worldmodel.models.pixel_predictor`):

- config: :class:`TrainPixelConfig` extends train-ac's schema, and ``configs/train_pixel.yaml`` applies the
  train-ac preset before its own, so window length, rollout steps, loss, frame skip, steps, batch and optimizer
  are train-ac's by construction (train-ac's encoder fields are unused here);
- data: every frame of the episode dataset, kept as uint8 in memory and turned into normalized pixel-patch
  tokens per batch; windows drawn by train-ac's window sampler with the same per-step generator (same seed ->
  same windows) from the same training split;
- loss: ``worldmodel.train.ac_losses.ac_losses`` unchanged (teacher forcing + rollout with gradients through it, + the
  state loss), with the same per-(token, channel) input standardization (``latent_stats``) on pixel tokens;
- model: the predictor config of train-ac (``predictor@model``) on pixel tokens.

``latent_checkpoint=`` (a train-ac checkpoint, required) pins the comparison to a trained latent model: its
predictor config, token grid and width (-> working resolution and patch size), frame skip and train/held-out
split are used, and the summary reports both parameter counts and any budget setting that differs.
``preset=smoke`` with no ``dataset``/``latent_checkpoint`` bootstraps them (``worldmodel.commands.bootstrap``).
"""
from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from worldmodel.config import to_dict
from worldmodel.contracts.checkpoint_meta import CheckpointMeta, PredictorRecord
from worldmodel.contracts.manifest import Manifest
from worldmodel.data.episodes import read_manifest
from worldmodel.data.reader import EpisodeReader
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.pixel_predictor import (
    CHECKPOINT_KIND,
    frames_to_tokens,
    parameter_counts,
    pixel_geometry,
    pixel_model_config,
)
from worldmodel.train.ac import (
    TrainACConfig,
    check_step_memory,
    native_dataset,
    set_data_normalization,
    train_predictor,
    validate,
)
from worldmodel.train.core import Trainer
from worldmodel.train.latent_cache import LatentEpisodes, LatentWindows, latent_stats
from worldmodel.utils import preempt
from worldmodel.utils.checkpoint import load_checkpoint
from worldmodel.utils.device import resolve_device, seed_everything


@dataclass
class TrainPixelConfig(TrainACConfig):
    out_dir: str = "runs/train_pixel"  # where checkpoint.pt, metrics.jsonl and summary.json go
    latent_checkpoint: str = ""  # the train-ac checkpoint to match: its predictor, token grid, frame skip, split
    img_size: int = 0  # working resolution (frames area-resized); 0: widest tokens <= latent_token_dim



# settings that must agree with the latent model for the comparison to be fair (checked, warned)
BUDGET_FIELDS = ("num_steps", "rollout_steps", "rollout_weight", "loss", "use_state", "state_dims", "state_weight",
                 "train.steps", "train.batch_size", "train.optim.lr", "train.seed")


class PixelWindows:
    """Window sampler over uint8 frames; ``gather``/``sample`` return pixel-patch tokens as ``z``."""

    def __init__(self, eps: LatentEpisodes, num_steps: int, frame_skip: int, patch_size: int, img_size: int):
        self.inner, self.patch_size, self.img_size = LatentWindows(eps, num_steps, frame_skip), patch_size, img_size

    def __len__(self) -> int:
        return len(self.inner)

    def _tokens(self, batch: dict) -> dict:
        batch["z"] = frames_to_tokens(batch["z"], self.patch_size, self.img_size)  # (B,T+1,H,W,3)->(B,T+1,N,3p^2)
        return batch

    def gather(self, idx: torch.Tensor) -> dict:
        return self._tokens(self.inner.gather(idx))

    def sample(self, batch_size: int, generator: torch.Generator) -> dict:
        return self._tokens(self.inner.sample(batch_size, generator))


@dataclass
class PixelEpisodes(LatentEpisodes):
    """Episodes whose "latents" are uint8 frames (T+1, H, W, 3); windows yield pixel-patch tokens."""

    patch_size: int = 16
    img_size: int = 64

    def windows(self, num_steps: int, frame_skip: int) -> PixelWindows:
        return PixelWindows(self, num_steps, frame_skip, self.patch_size, self.img_size)


def load_pixel_episodes(dataset: Path, patch_size: int, img_size: int, progress: bool = True,
                        max_bad_fraction: float = 0.1) -> PixelEpisodes:
    """Decode every episode's frames (uint8, kept in memory), actions and states (corrupt episodes skipped and
    counted, :class:`~worldmodel.data.reader.EpisodeReader`)."""
    from tqdm import tqdm

    reader = EpisodeReader(dataset, max_bad_fraction)
    frames, actions, states, ids = [], [], [], []
    for i, ep in tqdm(reader.episodes(), total=len(reader.ids), desc=f"decode {dataset.name}", disable=not progress,
                      dynamic_ncols=True):
        ids.append(i)
        frames.append(torch.as_tensor(ep["frames"]))  # (T+1, H, W, 3) uint8
        actions.append(torch.as_tensor(ep["actions"], dtype=torch.float32))  # (T, A)
        states.append(torch.as_tensor(ep["states"], dtype=torch.float32))  # (T+1, S)
    return PixelEpisodes(frames, actions, states, ids, path=str(dataset), skipped=dict(reader.skipped),
                         patch_size=patch_size, img_size=img_size)


def resolve_dataset(cfg) -> Path:
    """The dataset to train on (absolute; other layouts converted once, see ``train.ac.native_dataset``)."""
    if not cfg.dataset:
        raise ValueError("train-pixel needs dataset=PATH (an episode folder written by `wm collect`, or any layout "
                         "of docs/byod.md)")
    return native_dataset(cfg)


def frame_size(manifest: Manifest) -> int:
    """Square frame size of a dataset."""
    h, w = manifest.height_width
    if h != w:
        raise ValueError(f"train-pixel needs square frames, the dataset has {h}x{w}")
    return int(h)


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def resolve_setup(cfg, manifest: Manifest) -> tuple[ACPredictorConfig, ACPredictorConfig, dict]:
    """(pixel predictor config, latent predictor config it is matched to, settings: frame skip, working
    resolution, patch size, split, budget differences)."""

    frame = frame_size(manifest)
    setup: dict = {"frame_skip": int(cfg.frame_skip), "frame_size": frame}
    action_dim = manifest.action_dim
    dims = manifest.state_token_dims(cfg.state_dims) if cfg.use_state else []
    state_dim = len(dims)
    setup["state_dims"] = dims
    if not cfg.latent_checkpoint:
        raise ValueError("train-pixel needs latent_checkpoint=PATH: the wm train-ac checkpoint whose predictor, "
                         "token grid, frame skip and split the pixel baseline matches")
    meta = CheckpointMeta.of(load_checkpoint(cfg.latent_checkpoint), cfg.latent_checkpoint)
    record, lat = meta.record(cfg.latent_checkpoint), meta.config
    latent = ACPredictorConfig(**record.model)
    setup.update(frame_skip=meta.frame_skip, train_episodes=record.train_episodes, val_episodes=record.val_episodes)
    mine = to_dict(cfg)
    diff = {f: (_get(mine, f), _get(lat, f)) for f in BUDGET_FIELDS if _get(mine, f) != _get(lat, f)}
    setup["budget_mismatch"] = {k: list(v) for k, v in diff.items()}
    if diff:
        warnings.warn(f"train-pixel: budget differs from the latent model {cfg.latent_checkpoint}: "
                      + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in diff.items()))
    img, patch = pixel_geometry(frame, latent.grid_h, latent.embed_dim, int(cfg.img_size))
    setup.update(img_size=img, patch_size=patch)
    pix = pixel_model_config(latent, img, patch, setup["frame_skip"] * action_dim, state_dim,
                             max_steps=max(latent.max_steps, cfg.num_steps + 1))
    return pix, latent, setup


def run(cfg: TrainPixelConfig) -> dict:
    """Train the pixel predictor; returns the summary (losses, parameter counts, checkpoint path)."""

    t_start = time.time()
    if cfg.rollout_steps < 1 or cfg.rollout_steps > cfg.num_steps:
        raise ValueError(f"rollout_steps={cfg.rollout_steps} must be in 1..num_steps={cfg.num_steps}")
    data = resolve_dataset(cfg)
    seed_everything(cfg.train.seed)
    manifest = read_manifest(data)
    mcfg, latent_cfg, setup = resolve_setup(cfg, manifest)
    fs = setup["frame_skip"]
    run_cfg = copy.deepcopy(cfg)  # validate() reads frame_skip: the effective one
    run_cfg.frame_skip = fs
    check_step_memory(mcfg, run_cfg, resolve_device(cfg.train.device))
    predictor = ACPredictor(mcfg)
    record = PredictorRecord(dataset=str(data), model=dataclasses.asdict(mcfg), manifest=manifest,
                             state_dims=setup["state_dims"], patch_size=setup["patch_size"],
                             img_size=setup["img_size"], frame_size=setup["frame_size"],
                             train_episodes=setup["train_episodes"], val_episodes=setup["val_episodes"],
                             latent_checkpoint=str(cfg.latent_checkpoint))
    # frame_skip: the effective one (copied from the latent model)
    config = CheckpointMeta(CHECKPOINT_KIND, {**to_dict(cfg), "frame_skip": fs}, record).to_config()
    trainer = Trainer(cfg.train, cfg.out_dir, model=predictor, config=config, kind=CHECKPOINT_KIND)
    eps = load_pixel_episodes(data, setup["patch_size"], setup["img_size"],
                              progress=trainer.is_main and cfg.train.progress,
                              max_bad_fraction=cfg.max_bad_fraction).with_state_dims(setup["state_dims"])
    train_eps = eps.subset(setup["train_episodes"])
    windows = train_eps.windows(cfg.num_steps, fs)
    if trainer.start_step == 0:  # normalization from the training split, as train-ac (pixel-token statistics)
        tokens = (frames_to_tokens(f, setup["patch_size"], setup["img_size"]) for f in train_eps.latents)
        set_data_normalization(trainer.raw_model, manifest, fs, train_eps, latent_stats(tokens))
    raw = trainer.raw_model
    norm_states = raw.norm_states if mcfg.state_dim > 0 else None
    losses = train_predictor(trainer, windows, cfg, norm_states)
    ckpt = trainer.save_checkpoint()
    preempt.check(f"train-pixel: trained, checkpoint {ckpt} (validation runs on the rerun)")
    val_eps = eps.subset(setup["val_episodes"]) if setup["val_episodes"] else train_eps
    val = validate(raw, val_eps, run_cfg, norm_states, trainer.device)
    trainer.close()
    return {
        "steps": int(cfg.train.steps),
        **losses,
        **val,
        "checkpoint": str(ckpt),
        "dataset": str(data),
        "patch_size": setup["patch_size"],
        "img_size": setup["img_size"],
        "tokens_per_frame": mcfg.grid_h * mcfg.grid_w,
        "token_dim": mcfg.embed_dim,
        "parameters": sum(p.numel() for p in raw.parameters()),
        **parameter_counts(mcfg, latent_cfg),
        "latent_checkpoint": str(cfg.latent_checkpoint),
        "budget_mismatch": setup.get("budget_mismatch", {}),
        "episodes_skipped": len(eps.skipped), "skipped_episodes": {str(k): v for k, v in eps.skipped.items()},
        "seconds": round(time.time() - t_start, 2),
    }
