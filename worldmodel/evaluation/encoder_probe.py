"""Grid probe: what a frozen encoder's token grid tells about every state dim of an env, on held-out episodes.

A ridge probe on the flattened token grid (every token keeps its place, so positions can be read: an attention-pooled
probe over RoPE tokens, which carry no absolute position, cannot localize anything) is fit on frames of some episodes
of an env dataset and scored (R² per state dim) on frames of the others — every dim, bodies and objects alike
(evaluation only). Run for the pretrained encoder and its random-init twin on the same frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodel.data.episodes import read_manifest, split_episodes
from worldmodel.data.reader import EpisodeReader
from worldmodel.probes.linear import RidgeProbe

LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # ridge strengths (x mean eigenvalue), picked on the fitting frames


def episode_frames(dataset: str | Path, frames_per_episode: int, test_fraction: float = 0.25, seed: int = 0,
                   max_episodes: int = 0) -> dict:
    """Evenly spaced frames (n, H, W, 3) uint8 and states (n, S) of the dataset's episodes, split by episode:
    {"train": (frames, states), "test": (frames, states), "labels": state labels}."""
    manifest = read_manifest(dataset)
    train_ids, test_ids = split_episodes(manifest, test_fraction, seed)
    if max_episodes > 0:
        train_ids, test_ids = train_ids[:max_episodes], test_ids[:max(1, int(max_episodes * test_fraction))]
    reader = EpisodeReader(dataset, 1.0, manifest)
    out = {}
    for part, ids in (("train", train_ids), ("test", test_ids)):
        frames, states = [], []
        for _, ep in reader.episodes(list(ids)):
            pick = np.unique(np.linspace(0, len(ep["frames"]) - 1, frames_per_episode).round().astype(int))
            frames.append(torch.as_tensor(ep["frames"][pick]))
            states.append(torch.as_tensor(ep["states"][pick], dtype=torch.float32))
        out[part] = (torch.cat(frames), torch.cat(states))
    out["labels"] = manifest.labels(out["train"][1].shape[1])
    return out


@torch.no_grad()
def encode(encoder, frames: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """uint8 frames (n, H, W, 3) -> token grids (n, N, D) on CPU, each frame encoded on its own."""
    return torch.cat([encoder.encode_images(frames[i:i + batch]).float().cpu() for i in range(0, len(frames), batch)])


def grid_probe_r2(encoder, data: dict) -> dict[str, float]:
    """Held-out R² per state dim of a ridge probe on ``encoder``'s flattened token grid (``data``:
    :func:`episode_frames`); a dim that is constant on the held-out frames gets None."""
    (f_tr, s_tr), (f_te, s_te) = data["train"], data["test"]
    probe = RidgeProbe(encode(encoder, f_tr), s_tr, lambdas=LAMBDAS)
    pred = probe.predict(encode(encoder, f_te))  # (n_test, S)
    var = s_te.var(0)
    r2 = 1 - (pred - s_te).pow(2).mean(0) / var.clamp_min(1e-12)
    return {label: (round(float(r), 4) if var[i] > 1e-10 else None) for i, (label, r) in enumerate(zip(data["labels"],
                                                                                                        r2))}
