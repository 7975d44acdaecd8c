"""``wm train-pixel``: the pixel-space baseline, trained like ``wm train-ac`` but on pixel patches.

Same data, same losses, same trainer core as train-ac (see :mod:`worldmodel.models.pixel_predictor`):

- data: every frame of the episode dataset, kept as uint8 in memory and turned into normalized pixel-patch
  tokens per batch; windows of ``num_steps + 1`` frames ``frame_skip`` env steps apart from the training split,
  drawn by the same window sampler and per-step generator as train-ac (same seed -> same windows);
- loss: ``worldmodel.train.ac.ac_losses`` unchanged (teacher forcing + rollout over ``rollout_steps`` with
  gradients through the rollout, L1 on tokens, + state L1), ``loss = tf + rollout_weight * rollout (+ state)``;
- model: :class:`~worldmodel.models.ac_predictor.ACPredictor` with pixel-patch tokens in and out.

``latent_checkpoint=`` (a train-ac checkpoint; the pipeline passes it) makes the comparison fair by
construction: the predictor shape (width, depth, heads, MLP, tokens per frame -> pixel patch size), the frame
skip and the train/held-out episode split are copied from it, and the summary reports both parameter counts and
warns when the training budget (steps, batch, window) differs. ``preset=smoke`` with no ``dataset`` collects a
tiny one (``wm collect preset=smoke`` into ``out_dir/bootstrap/data``, reused when present).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from worldmodel.config import register_schema, to_dict
from worldmodel.data.latent_cache import LatentEpisodes, LatentWindows
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.pixel_predictor import (CHECKPOINT_KIND, frames_to_tokens, parameter_counts,
                                               patch_size_for, pixel_model_config)
from worldmodel.train.core import TrainConfig, Trainer, resolve_device, seed_everything


@dataclass
class TrainPixelConfig:
    out_dir: str = "runs/train_pixel"  # where checkpoint.pt, metrics.jsonl and summary.json go
    dataset: str = ""  # an episode dataset folder written by `wm collect`; required unless bootstrap
    latent_checkpoint: str = ""  # optional train-ac checkpoint: copy its predictor shape, frame skip and split
    bootstrap: bool = False  # no dataset given: collect one at preset=smoke under out_dir/bootstrap (smoke only)
    bootstrap_collect: list[str] = field(default_factory=list)  # extra overrides for the bootstrap `wm collect`
    patch_size: int = 16  # pixel patch size (64 px / 16 = 4x4 tokens, like the pooled latent grid at cpu scale)
    frame_skip: int = 1  # env steps per predictor step; its action stacks those frame_skip env actions
    num_steps: int = 4  # teacher-forcing steps per window (windows hold num_steps + 1 frames)
    rollout_steps: int = 2  # autoregressive steps of the rollout loss (<= num_steps)
    rollout_weight: float = 1.0  # weight of the rollout loss
    use_state: bool = True  # feed the simulator state as a token and predict the next one (as train-ac)
    state_weight: float = 1.0  # weight of the L1 state loss (standardized units)
    val_fraction: float = 0.1  # held-out episode fraction (ignored with latent_checkpoint: its split is used)
    split_seed: int = 0  # seed of the train/held-out split (ignored with latent_checkpoint)
    val_windows: int = 256  # held-out windows for the final validation losses
    model: ACPredictorConfig = field(default_factory=ACPredictorConfig)  # predictor shape (pool is ignored)
    train: TrainConfig = field(default_factory=TrainConfig)  # steps, batch, optimizer, devices, checkpoints


register_schema("train_pixel", TrainPixelConfig)

# settings that must agree with the latent model for the comparison to be fair (checked, warned)
BUDGET_FIELDS = ("num_steps", "rollout_steps", "rollout_weight", "use_state", "state_weight", "train.steps",
                 "train.batch_size", "train.optim.lr")


class PixelWindows:
    """Window sampler over uint8 frames; ``gather``/``sample`` return pixel-patch tokens as ``z``."""

    def __init__(self, eps: LatentEpisodes, num_steps: int, frame_skip: int, patch_size: int):
        self.inner, self.patch_size = LatentWindows(eps, num_steps, frame_skip), patch_size

    def __len__(self) -> int:
        return len(self.inner)

    def _tokens(self, batch: dict) -> dict:
        batch["z"] = frames_to_tokens(batch["z"], self.patch_size)  # (B, T+1, H, W, 3) -> (B, T+1, N, 3p^2)
        return batch

    def gather(self, idx: torch.Tensor) -> dict:
        return self._tokens(self.inner.gather(idx))

    def sample(self, batch_size: int, generator: torch.Generator) -> dict:
        return self._tokens(self.inner.sample(batch_size, generator))


@dataclass
class PixelEpisodes(LatentEpisodes):
    """Episodes whose "latents" are uint8 frames (T+1, H, W, 3); windows yield pixel-patch tokens."""

    patch_size: int = 16

    def subset(self, episode_ids: list[int]) -> "PixelEpisodes":
        """The episodes with these dataset ids, in that order."""
        sub = super().subset(episode_ids)
        return dataclasses.replace(self, latents=sub.latents, actions=sub.actions, states=sub.states, ids=sub.ids)

    def windows(self, num_steps: int, frame_skip: int) -> PixelWindows:
        return PixelWindows(self, num_steps, frame_skip, self.patch_size)


def load_pixel_episodes(dataset: Path, patch_size: int, progress: bool = True) -> PixelEpisodes:
    """Decode every episode's frames (uint8, kept in memory), actions and states."""
    from tqdm import tqdm

    from worldmodel.data.rollouts import load_episode, read_manifest

    manifest = read_manifest(dataset)
    ids = sorted(int(e["id"]) for e in manifest["episode_list"])
    frames, actions, states = [], [], []
    for i in tqdm(ids, desc=f"decode {dataset.name}", disable=not progress, dynamic_ncols=True):
        ep = load_episode(dataset, i, manifest)
        frames.append(torch.as_tensor(ep["frames"]))  # (T+1, H, W, 3) uint8
        actions.append(torch.as_tensor(ep["actions"], dtype=torch.float32))  # (T, A)
        states.append(torch.as_tensor(ep["states"], dtype=torch.float32))  # (T+1, S)
    return PixelEpisodes(frames, actions, states, ids, path=str(dataset), patch_size=patch_size)


def resolve_dataset(cfg) -> Path:
    """The dataset to train on, collecting a smoke one when allowed."""
    data = cfg.dataset
    if not data and cfg.bootstrap:
        from worldmodel.cli import run_command

        data = Path(cfg.out_dir) / "bootstrap" / "data"
        if not (data / "manifest.json").is_file():
            run_command("collect", ["preset=smoke", f"out_dir={data}", *cfg.bootstrap_collect])
    if not data:
        raise ValueError("train-pixel needs dataset=PATH (an episode folder written by `wm collect`)")
    data = Path(data).resolve()
    if not (data / "manifest.json").is_file():
        raise FileNotFoundError(f"dataset {data}: no manifest.json")
    return data


def frame_size(manifest: dict) -> int:
    """Square frame size of a dataset (manifest resolution is [H, W] or an int)."""
    r = manifest.get("resolution", 64)
    h, w = (r, r) if isinstance(r, int) else r
    if h != w:
        raise ValueError(f"train-pixel needs square frames, the dataset has {h}x{w}")
    return int(h)


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def resolve_setup(cfg, manifest: dict) -> tuple[ACPredictorConfig, ACPredictorConfig | None, dict]:
    """(pixel predictor config, latent predictor config or None, settings copied from the latent checkpoint)."""
    from worldmodel.data.rollouts import split_episodes

    res = frame_size(manifest)
    copied: dict = {"frame_skip": cfg.frame_skip, "patch_size": cfg.patch_size}
    base, latent = ACPredictorConfig(**to_dict(cfg.model)), None
    if cfg.latent_checkpoint:
        from worldmodel.train.checkpoint import load_checkpoint

        lat = load_checkpoint(cfg.latent_checkpoint)["config"]
        latent = ACPredictorConfig(**lat["resolved"]["model"])
        base = latent
        copied.update(frame_skip=int(lat["frame_skip"]), patch_size=patch_size_for(res, latent.grid_h),
                      train_episodes=lat["resolved"]["train_episodes"], val_episodes=lat["resolved"]["val_episodes"])
        mine = to_dict(cfg)
        diff = {f: (_get(mine, f), _get(lat, f)) for f in BUDGET_FIELDS if _get(mine, f) != _get(lat, f)}
        copied["budget_mismatch"] = {k: list(v) for k, v in diff.items()}
        if diff:
            warnings.warn(f"train-pixel: budget differs from the latent model {cfg.latent_checkpoint}: "
                          + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in diff.items()))
    else:
        tr, va = split_episodes(manifest, cfg.val_fraction, cfg.split_seed)
        copied.update(train_episodes=list(map(int, tr)), val_episodes=list(map(int, va)))
    state_dim = int(manifest["state_dim"]) if cfg.use_state else 0
    pix = pixel_model_config(base, res, copied["patch_size"], copied["frame_skip"] * int(manifest["action_dim"]),
                             state_dim, max_steps=max(base.max_steps, cfg.num_steps + 1))
    return pix, latent, copied


def run(cfg) -> dict:
    """Train the pixel predictor; returns the summary (losses, parameter counts, checkpoint path)."""
    from worldmodel.data.rollouts import read_manifest
    from worldmodel.train.ac import ac_losses, validate

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
    predictor = ACPredictor(mcfg)
    config = to_dict(cfg)
    config["frame_skip"] = fs  # the effective one (copied from the latent model when given)
    config["resolved"] = {"dataset": str(data), "model": dataclasses.asdict(mcfg), "manifest": _plain(manifest),
                          "patch_size": setup["patch_size"], "img_size": frame_size(manifest),
                          "train_episodes": setup["train_episodes"], "val_episodes": setup["val_episodes"],
                          "latent_checkpoint": str(cfg.latent_checkpoint)}
    trainer = Trainer(cfg.train, cfg.out_dir, model=predictor, config=config, kind=CHECKPOINT_KIND)
    eps = load_pixel_episodes(data, setup["patch_size"], progress=trainer.is_main)
    train_eps = eps.subset(setup["train_episodes"])
    windows = train_eps.windows(cfg.num_steps, fs)
    if trainer.start_step == 0:  # normalization from the training split, as train-ac
        s_all = torch.cat(train_eps.states)
        a_low = torch.as_tensor(manifest["action_low"], dtype=torch.float32).repeat(fs)
        a_high = torch.as_tensor(manifest["action_high"], dtype=torch.float32).repeat(fs)
        trainer.raw_model.set_normalization(a_low, a_high, s_all.mean(0), s_all.std(0))
    raw = trainer.raw_model
    norm_states = raw.norm_states if mcfg.state_dim > 0 else None
    recent: list[dict] = []
    for step in trainer.steps():
        batch = {k: v.to(trainer.device, non_blocking=True)
                 for k, v in windows.sample(cfg.train.batch_size, trainer.generator_for(step)).items()}
        with trainer.autocast():
            parts = ac_losses(trainer.model, batch, cfg.rollout_steps, norm_states)
            loss = parts["tf"] + cfg.rollout_weight * parts["rollout"]
            if norm_states is not None:
                loss = loss + cfg.state_weight * (parts["state_tf"] + cfg.rollout_weight * parts["state_rollout"])
        trainer.backward_step(loss)
        row = {"loss/total": loss.item(), **{f"loss/{k}": v.item() for k, v in parts.items()}}
        recent = (recent + [row])[-max(1, min(50, cfg.train.steps // 10)):]
        trainer.log(step, row)
        trainer.maybe_checkpoint(step)
    ckpt = trainer.save_checkpoint()
    val_eps = eps.subset(setup["val_episodes"]) if setup["val_episodes"] else train_eps
    val = validate(raw, val_eps, run_cfg, norm_states, trainer.device)
    trainer.close()
    mean = {k: sum(r[k] for r in recent) / len(recent) for k in recent[0]} if recent else {}
    counts = parameter_counts(mcfg, latent_cfg) if latent_cfg is not None else {}
    return {
        "steps": int(cfg.train.steps),
        "final_loss": mean.get("loss/total", math.nan),
        "loss_tf": mean.get("loss/tf", math.nan),
        "loss_rollout": mean.get("loss/rollout", math.nan),
        "loss_state": mean.get("loss/state_tf", math.nan),
        "loss_copy_last": mean.get("loss/copy_last", math.nan),
        **val,
        "checkpoint": str(ckpt),
        "dataset": str(data),
        "patch_size": setup["patch_size"],
        "tokens_per_frame": mcfg.grid_h * mcfg.grid_w,
        "token_dim": mcfg.embed_dim,
        "parameters": sum(p.numel() for p in raw.parameters()),
        **counts,
        "latent_checkpoint": str(cfg.latent_checkpoint),
        "budget_mismatch": setup.get("budget_mismatch", {}),
        "seconds": round(time.time() - t_start, 2),
    }


def _plain(obj):
    """JSON-like copy (checkpoints are loaded with weights_only=True)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj
