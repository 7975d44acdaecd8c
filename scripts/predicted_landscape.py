"""Energy landscape on *predicted* latents: does a goal energy still rank states after the predictor rolled them out?

    python scripts/predicted_landscape.py runs/main/train_ac_PointReach/checkpoint.pt [more checkpoints] \
        [--horizon 5] [--episodes 15] [--goals 30]

For each train-ac checkpoint: the planner's temporal metric (``worldmodel.planning.temporal``) is fit on the frames
the plan command fits it on (200 training episodes, every 2nd frame; the checkpoint's held-out episodes excluded).
On held-out episodes, windows start every 4th frame; the predictor rolls each out ``--horizon`` steps under the
recorded actions. For random goal frames among the windows' true end frames, Spearman ρ between the energy and the
true distance over the success criterion's dims, for four energies: token L1 and the temporal metric, each on the
true end frame's latent ("real") and on the predicted one ("pred"). Mean over goals. ``near``: the same on
predicted latents, only candidates within 0.6 (env units) of the goal — the precision the last steps need.
States are read for this evaluation only.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from scipy.stats import spearmanr

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.data.episodes import read_manifest
from worldmodel.data.reader import EpisodeReader
from worldmodel.evaluation.landscape import criterion_dims
from worldmodel.models.registry import load_world_model
from worldmodel.planning.energy import token_distance
from worldmodel.planning.probe import encode_frames, pick_frames
from worldmodel.planning.temporal import fit_temporal_metric
from worldmodel.utils.checkpoint import load_checkpoint


@torch.no_grad()
def measure(checkpoint: str, horizon: int, episodes: int, goals: int, seed: int = 0) -> dict:
    """The four landscapes and the near-goal ones for one checkpoint (see the module docstring)."""
    model, _ = load_world_model(checkpoint, torch.device("cpu"), "auto")
    meta = CheckpointMeta.of(load_checkpoint(checkpoint), checkpoint)
    dataset, val = meta.dataset, meta.val_episodes
    frames = encode_frames(model, pick_frames(dataset, 200, 2, exclude=val), fine=False)
    metric = fit_temporal_metric(frames.z, frames.episode, frames.step)
    crit = criterion_dims(read_manifest(dataset))
    span = horizon * model.frame_skip
    real, pred, states = [], [], []
    for _, ep in EpisodeReader(dataset).episodes(val[:episodes]):
        f = torch.from_numpy(ep["frames"])
        z = torch.cat([model.encode(f[j:j + 64]).float() for j in range(0, len(f), 64)])  # (T, N, D)
        starts = np.arange(0, len(f) - 1 - span, 4)
        acts = torch.stack([torch.as_tensor(ep["actions"][t:t + span]).reshape(horizon, -1) for t in starts]).float()
        s0 = torch.as_tensor(ep["states"][starts][:, model.state_dims]).float() if model.uses_state else None
        pred.append(model.rollout(z[starts], s0, acts).latents[:, -1].float())  # (W, N, D)
        real.append(z[starts + span])
        states.append(torch.as_tensor(ep["states"][starts + span])[:, crit].double())  # (W, C)
    real, pred, states = torch.cat(real), torch.cat(pred), torch.cat(states)
    energies = {"l1": lambda x, g: token_distance(x[:, None], g)[:, 0],
                "temporal": lambda x, g: metric.distance(x[:, None], g)[:, 0]}
    out: dict[str, list] = {f"{e}_{w}": [] for e in energies for w in ("real", "pred", "pred_near")}
    for g in np.random.default_rng(seed).choice(len(real), min(goals, len(real)), replace=False):
        true = (states - states[g]).norm(dim=-1).numpy()  # (W,)
        near = np.flatnonzero(true < 0.6)
        for name, fn in energies.items():
            goal = real[g][None].expand(len(real), -1, -1)
            out[f"{name}_real"].append(spearmanr(fn(real, goal), true).statistic)
            out[f"{name}_pred"].append(spearmanr(fn(pred, goal), true).statistic)
            if len(near) >= 8:
                out[f"{name}_pred_near"].append(spearmanr(fn(pred[near], goal[near]), true[near]).statistic)
    res = {k: round(float(np.nanmean(v)), 3) if v else None for k, v in out.items()}
    return {**res, "windows": len(real), "metric_held_out_corr": metric.held_out_corr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="wm train-ac checkpoints")
    ap.add_argument("--horizon", type=int, default=5, help="predictor steps rolled out (the cpu planner's horizon)")
    ap.add_argument("--episodes", type=int, default=15, help="held-out episodes")
    ap.add_argument("--goals", type=int, default=30, help="goal frames")
    args = ap.parse_args()
    for ck in args.checkpoints:
        print(ck, json.dumps(measure(ck, args.horizon, args.episodes, args.goals)), flush=True)


if __name__ == "__main__":
    main()
