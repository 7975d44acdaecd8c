"""Encoder fine-tuning in ``wm train-ac`` (``finetune.blocks=K``; design in :mod:`worldmodel.models.finetune`).

Windows hold frames instead of cached latents: every frame of the dataset stays in memory as uint8 (a 64 x 64
frame is 12 KB) and the latents of each batch are computed by the partly trainable encoder. Loss per window::

    the frozen-encoder train-ac loss on those latents (teacher forcing + rollout, + states)
    + sigreg_weight * SIGReg(frame embeddings of the batch)   (anti-collapse; no stop-gradient, no EMA)

A frame embedding is the frame's whole latent (N x D, flattened), centred on the starting encoder's mean latent
(per token and channel, the predictor's fixed input statistics) and divided by one scalar, the starting latents'
spread: SIGReg pulls its random 1-D projections over the batch towards N(0, 1), so the frames' spread cannot
shrink below the starting encoder's (what collapse would do: equal latents are trivially predictable). SIGReg is
reported and weighted in the latents' units (x spread^2), so ``sigreg_weight`` weighs it against the latent loss as
LeWorldModel's 0.1 weighs it against its loss on unit-scale embeddings. Measured on PushBlock frames with the main
job's encoder (160 frames per batch, Adam on the last 2 blocks minimizing SIGReg alone): tokens as SIGReg's samples
score as collapsed from the start (a scene's tokens share a large common part: 1732 on PointReach, 1737 for one
frame's tokens repeated, 1.1 for Gaussian samples); per-channel standardization makes the landscape too sharp
(6 -> 261 in 5 steps at lr 3e-4); with one scalar it starts at 2.1 and stays at 2.5-2.9 at lr 3e-5 (33 at 3e-4):
hence the encoder's learning rate of ``lr_scale`` = 0.01 x the predictor's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from worldmodel.data.reader import EpisodeReader
from worldmodel.losses import sigreg
from worldmodel.models.finetune import EncoderPredictor
from worldmodel.models.world_model import encode_observations
from worldmodel.train.ac_losses import prediction_losses
from worldmodel.train.latent_cache import LatentEpisodes, latent_stats


@dataclass
class FinetuneConfig:
    blocks: int = 0  # 0: frozen encoder (default); K: its last K blocks + final norm train with the predictor; -1: all
    lr_scale: float = 0.01  # the encoder's learning rate as a fraction of train.optim.lr (3e-5 at the cpu preset)
    sigreg_weight: float = 0.1  # weight of SIGReg on the frame embeddings (LeWorldModel: 0.1); 0 risks collapse
    sigreg_slices: int = 256  # random 1-D projections of SIGReg per step
    stats_frames: int = 2048  # training frames encoded to set the predictor's input statistics


def frame_episodes(dataset, max_bad_fraction: float = 0.1, progress: bool = True) -> LatentEpisodes:
    """Every episode of ``dataset`` with its frames (T+1, H, W, 3) uint8 in place of latents; corrupt episodes
    are skipped and counted as in the latent cache."""
    reader = EpisodeReader(dataset, max_bad_fraction)
    frames, actions, states, ids = [], [], [], []
    for i, ep in tqdm(reader.episodes(), total=len(reader.ids), desc="read frames", disable=not progress,
                      dynamic_ncols=True):
        ids.append(i)
        frames.append(torch.as_tensor(ep["frames"]))
        actions.append(torch.as_tensor(ep["actions"], dtype=torch.float32))
        states.append(torch.as_tensor(ep["states"], dtype=torch.float32))
    return LatentEpisodes(frames, actions, states, ids, skipped=dict(reader.skipped))


@torch.no_grad()
def start_latent_stats(encoder, every: torch.Tensor, pool: int, frames: int, batch: int = 256):
    """Per (token, channel) mean and std (N, D) of the starting encoder's latents on up to ``frames`` of the
    uint8 frames ``every`` (F, H, W, 3), spread evenly over them."""
    pick = every[torch.linspace(0, len(every) - 1, min(frames, len(every))).long()]
    z = [encode_observations(encoder, pick[i : i + batch], pool).cpu() for i in range(0, len(pick), batch)]
    return latent_stats([torch.cat(z)])


def finetune_losses(model: EncoderPredictor, batch: dict, rollout_steps: int, norm_states, loss: str,
                    fcfg: FinetuneConfig, generator: torch.Generator | None) -> dict:
    """The train-ac losses on latents computed from ``batch["z"]`` (frames, (B, T+1, H, W, 3) uint8) by the
    trainable encoder, plus ``sigreg`` on the standardized frame embeddings and ``latent_std`` (the spread of
    each (token, channel) over the batch's frames, averaged: a collapse monitor, 0 when collapsed)."""
    a, s = batch["actions"], batch["states"]  # (B, T, A), (B, T+1, S)
    T = a.shape[1]
    z, *preds = model(batch["z"], a, s[:, :T] if norm_states is not None else None, rollout_steps)
    out = prediction_losses(z, preds, s, rollout_steps, norm_states, loss)
    pred = model.module.predictor if hasattr(model, "module") else model.predictor
    scale = pred.latent_std.pow(2).mean().sqrt()  # the starting latents' spread, one scalar
    frames = ((z - pred.latent_mean) / scale).flatten(0, 1).flatten(1)  # (B*(T+1), N*D) standardized
    out["sigreg"] = scale.square() * sigreg(frames, fcfg.sigreg_slices, generator=generator) \
        if fcfg.sigreg_weight > 0 else frames.new_zeros(())
    out["latent_std"] = z.detach().flatten(0, 1).float().std(0).mean()  # spread over frames per (token, channel)
    return out
