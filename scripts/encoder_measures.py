"""Screen a pretrained encoder without training a predictor: the grid probe and the energy landscape of its latents
on held-out episodes of env datasets, beside its random-init twin.

    python scripts/encoder_measures.py --encoder runs/main/pretrain/checkpoint.pt \
        --datasets runs/main/collect_PointReach runs/main/collect_TwoRoom [--pool 2] [--json out.json]

Per dataset and encoder: the grid probe's held-out R² on the position-like dims (those the success criterion reads)
and over every dim, and the landscape's rank correlation of the latent L1 distance (latents pooled ``pool`` x
``pool`` as train-ac's cpu preset does) with the true distance to held-out goal frames. The landscape of a trained
predictor's encoder is what ``wm drift`` reports; this is the same measure on the encoder alone, for recipe work.

``--temporal-metric``: also the planner's label-free metric on the latents (``worldmodel.planning.temporal``): a
linear map fit on training episodes so that the Euclidean distance between two frames' mapped latents matches the
number of steps between them (pairs up to ``--max-gap`` apart, within an episode; no state), and the landscape of
that distance.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from worldmodel.data.episodes import read_manifest, split_episodes
from worldmodel.data.reader import EpisodeReader
from worldmodel.evaluation.encoder_probe import episode_frames, grid_probe_r2
from worldmodel.evaluation.landscape import criterion_dims, energy_landscape, temporal_landscape
from worldmodel.models.video_vit import VideoViT, load_encoder
from worldmodel.models.world_model import encode_observations


def read_episodes(dataset: str, part: int, episodes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Frames (T, H, W, 3) uint8 and states (T, S) of the dataset's held-out episodes (25%, seed 0; ``part=0``: the
    others), read once for every encoder."""
    manifest = read_manifest(dataset)
    ids = split_episodes(manifest, 0.25, 0)[part]
    return [(torch.as_tensor(ep["frames"]), torch.as_tensor(ep["states"], dtype=torch.float32))
            for _, ep in EpisodeReader(dataset, 1.0, manifest).episodes(list(ids)[:episodes])]


@torch.no_grad()
def pooled(encoder, frames: torch.Tensor, pool: int) -> torch.Tensor:
    """One episode's frames -> pooled latents (T, N, D), in batches of 64."""
    return torch.cat([encode_observations(encoder, frames[i:i + 64], pool).float() for i in range(0, len(frames), 64)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", required=True, help="a wm pretrain checkpoint")
    ap.add_argument("--datasets", nargs="+", required=True, help="wm collect datasets")
    ap.add_argument("--pool", type=int, default=2, help="latent pooling of the landscape (train-ac's model.pool)")
    ap.add_argument("--episodes", type=int, default=10, help="held-out episodes of the landscape")
    ap.add_argument("--seed", type=int, default=0, help="init seed of the random-init twin")
    ap.add_argument("--json", default="", help="also write the figures here")
    ap.add_argument("--temporal-metric", action="store_true", help="also fit and score a label-free temporal metric")
    ap.add_argument("--max-gap", type=int, default=30, help="temporal metric: largest step gap of its pairs")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    trained = load_encoder(args.encoder)
    torch.manual_seed(args.seed)
    encoders = {"pretrained": trained, "random_init": VideoViT(trained.cfg).eval()}
    out: dict = {}
    for dataset in args.datasets:
        manifest = read_manifest(dataset)
        crit = criterion_dims(manifest)
        data = episode_frames(dataset, 10)
        held_out = read_episodes(dataset, 1, args.episodes)
        states = [s for _, s in held_out]
        train = read_episodes(dataset, 0, 60) if args.temporal_metric else []
        for name, enc in encoders.items():
            r2 = grid_probe_r2(enc, data)
            lat = [pooled(enc, f, args.pool) for f, _ in held_out]
            scape = energy_landscape(lat, states, crit)
            pos = [r2[data["labels"][d]] for d in (crit or [])]
            row = {"grid_r2_criterion_dims": float(np.mean(pos)) if pos else None,
                   "grid_r2_all": float(np.mean([v for v in r2.values() if v is not None])),
                   "landscape": scape["rank_corr"], "landscape_steps": scape["rank_corr_steps"]}
            if args.temporal_metric:
                fit = [pooled(enc, f, args.pool) for f, _ in train]  # every frame of the training episodes
                row["landscape_temporal"] = temporal_landscape(fit, lat, states, crit, stride=1, max_gap=args.max_gap,
                                                               seed=args.seed)["rank_corr"]
                print(f"{'':28s} {name:11s} landscape ρ of the temporal metric {row['landscape_temporal']:.3f}")
            out.setdefault(manifest.env_id or dataset, {})[name] = row
            print(f"{manifest.env_id or dataset:28s} {name:11s} grid R² (success dims) "
                  f"{row['grid_r2_criterion_dims'] or float('nan'):.3f}  (all dims) {row['grid_r2_all']:.3f}  "
                  f"landscape ρ {row['landscape']:.3f}  (steps) {row['landscape_steps'] or float('nan'):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
