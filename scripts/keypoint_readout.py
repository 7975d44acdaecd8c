"""What a train-ac checkpoint's scene keypoints read, on its held-out episodes.

    python scripts/keypoint_readout.py CHECKPOINT --dims 2,3 [--dims 0,1]

A least-squares map from the keypoints (2K values per frame) to the given state dims is fit on the checkpoint's
training episodes and scored on its held-out ones (RMSE beside the dims' std; the best single keypoint's
correlation with each dim). The same for keypoints of an untrained module of the same shape, as the floor. A
diagnostic for the lab notes (which bodies the label-free keypoints found), not a training metric.
"""
from __future__ import annotations

import argparse

import torch

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.models.keypoints import SceneKeypoints, keypoints_of
from worldmodel.models.world_model import LatentWorldModel, encoder_identity
from worldmodel.train.latent_cache import load_latents
from worldmodel.utils.checkpoint import load_checkpoint


def readout(kp, train, val, dims):
    """Held-out RMSE per dim and the best |correlation| of one keypoint coordinate with each dim."""
    x, xv = (torch.cat([keypoints_of(kp, z) for z in eps.latents]) for eps in (train, val))
    y, yv = (torch.cat(eps.states)[:, dims] for eps in (train, val))
    X, Xv = (torch.cat((a, torch.ones(len(a), 1)), 1) for a in (x, xv))
    rmse = ((Xv @ torch.linalg.lstsq(X, y).solution - yv) ** 2).mean(0).sqrt()
    corr = torch.corrcoef(torch.cat((xv, yv), 1).T)[: xv.shape[1], xv.shape[1]:].abs().max(0).values
    return rmse, corr, yv.std(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--dims", action="append", required=True, help="state dims of one body's position, e.g. 2,3")
    args = ap.parse_args()
    model = LatentWorldModel.load(args.checkpoint)
    if model.keypoints is None:
        raise SystemExit(f"{args.checkpoint}: no scene keypoints (trained with keypoints.num=0)")
    ckpt = load_checkpoint(args.checkpoint)
    record = CheckpointMeta.of(ckpt, args.checkpoint).record(args.checkpoint)
    enc_file, digest = encoder_identity(ckpt, args.checkpoint)
    fine = load_latents(record.dataset, enc_file, 1, encoder=model.encoder, encoder_digest=digest, progress=False)
    train, val = fine.subset(record.train_episodes), fine.subset(record.val_episodes)
    untrained = SceneKeypoints(**model.keypoints.config())
    untrained.latent_mean.copy_(model.keypoints.latent_mean), untrained.latent_std.copy_(model.keypoints.latent_std)
    for spec in args.dims:
        dims = [int(d) for d in spec.split(",")]
        for name, kp in (("fitted", model.keypoints), ("untrained", untrained)):
            rmse, corr, std = readout(kp, train, val, dims)
            print(f"dims {dims}, {name} keypoints: held-out RMSE {[round(v, 3) for v in rmse.tolist()]} "
                  f"(std {[round(v, 3) for v in std.tolist()]}), best |corr| {[round(v, 2) for v in corr.tolist()]}")


if __name__ == "__main__":
    main()
