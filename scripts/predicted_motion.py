"""How much of each body's true displacement a train-ac model predicts, on its held-out episodes.

    python scripts/predicted_motion.py CHECKPOINT --bodies pusher=0,1 block=2,3 [--horizon 5]

Windows every 5 frames of the checkpoint's held-out episodes; a ridge probe fit on the model's own latents of
(up to 60) training episodes reads each body's position (the given state dims) from the latent rolled out
``horizon`` predictor steps under the recorded actions and from the context latent. Printed per body, over the
windows where it moved more than 0.1: the slope of predicted on true displacement (1: all of the motion, 0: none,
as copy-last) and the mean end-position error beside copy-last's. A diagnostic for the lab notes (which part of a
scene the predictor moves), not a training metric.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.data.reader import EpisodeReader
from worldmodel.models.world_model import LatentWorldModel
from worldmodel.probes.linear import RidgeProbe
from worldmodel.utils.checkpoint import load_checkpoint


def encode_episodes(model, reader, ids):
    """(latents (T+1, N, D), states (T+1, S), actions (T, A), state-token inputs (T+1, S') | None) per episode."""
    out = []
    for _, ep in reader.episodes(ids):
        f, s = torch.as_tensor(ep["frames"]), torch.as_tensor(ep["states"])
        with torch.no_grad():
            fine = [model.encode_fine(f[j:j + 64]) for j in range(0, len(f), 64)]  # each frame encoded once
            z = torch.cat([model.pool_fine(zf, f.shape[1], f.shape[2]) for zf in fine])
            x = torch.cat([model.state_input(f[j * 64:(j + 1) * 64], s[j * 64:(j + 1) * 64, model.state_dims], zf)
                           for j, zf in enumerate(fine)]) if model.uses_state else None
        out.append((z, s, torch.as_tensor(ep["actions"]), x))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--bodies", nargs="+", required=True, help="name=dim,dim (state dims of a body's position)")
    ap.add_argument("--horizon", type=int, default=5, help="predictor steps rolled out")
    args = ap.parse_args()
    bodies = {b.split("=")[0]: [int(d) for d in b.split("=")[1].split(",")] for b in args.bodies}
    dims = sorted({d for v in bodies.values() for d in v})
    model = LatentWorldModel.load(args.checkpoint)
    meta = CheckpointMeta.of(load_checkpoint(args.checkpoint), args.checkpoint)
    record = meta.record(args.checkpoint)
    reader = EpisodeReader(meta.dataset)
    fs, H = model.frame_skip, args.horizon
    train = encode_episodes(model, reader, record.train_episodes[:60])
    probe = RidgeProbe(torch.cat([z[::2] for z, *_ in train]), torch.cat([s[::2][:, dims] for _, s, *_ in train]))
    z0, s0, x0, sh, acts = [], [], [], [], []
    for z, s, a, x in encode_episodes(model, reader, record.val_episodes):
        for t in range(0, len(z) - H * fs, 5):
            z0.append(z[t]), s0.append(s[t]), sh.append(s[t + H * fs]), x0.append(s[t] if x is None else x[t])
            acts.append(a[t:t + H * fs].reshape(H, fs * a.shape[1]))
    z0, s0, x0, sh, acts = map(torch.stack, (z0, s0, x0, sh, acts))  # (W, N, D), (W, S), (W, S'), (W, S), (W, H, fs*A)
    with torch.no_grad():
        pred = model.rollout(z0, x0 if model.uses_state else None, acts).latents[:, -1]
    p0, ph = probe.predict(z0).numpy(), probe.predict(pred).numpy()  # (W, len(dims))
    truth0, truth = s0[:, dims].numpy(), sh[:, dims].numpy()
    for name, body in bodies.items():
        k = [dims.index(d) for d in body]
        moved = np.linalg.norm(truth[:, k] - truth0[:, k], axis=1) > 0.1
        true_d, est_d = (truth - truth0)[moved][:, k], (ph - p0)[moved][:, k]
        slope = float((est_d * true_d).sum() / (true_d ** 2).sum())
        err = np.linalg.norm(ph[moved][:, k] - truth[moved][:, k], axis=1).mean()
        err0 = np.linalg.norm(p0[moved][:, k] - truth[moved][:, k], axis=1).mean()
        print(f"{name}: {moved.sum()}/{len(moved)} windows moved > 0.1; slope {slope:.3f}; end-position error "
              f"{err:.3f} (copy-last {err0:.3f})")


if __name__ == "__main__":
    main()
