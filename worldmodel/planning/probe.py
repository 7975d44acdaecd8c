"""Probes latents -> simulator state for the planning energy (``energy.probe_weight`` / ``state_weight > 0``).

Why: with a small frozen encoder, the L1 distance between two frames' latents is nearly flat once the moving
body no longer overlaps its goal position (measured on PointReach: the same ~0.02 from 0.3 to 2 units away),
so a planner whose predicted end states are all "far" ranks them by noise. A ridge probe from latents to the
simulator state, fit on frames of the world model's own training dataset encoded by the model itself,
measures the same difference ``z_pred - z_goal`` along the directions that carry the state:

    probe term = mean_k |((z_pred - z_goal).flatten() @ W)_k|        (standardized state units)

over the state dims k whose held-out R^2 is at least ``probe_min_r2`` (W is linear, so this is a distance
between the two latents, not between states). ``state_weight > 0`` adds, for models that predict future states
(``Rollout.states`` from ``rollout``, the AC predictor's state head), the distance between the predicted state and
the state read from the goal frame: a slope even where predicted latents barely move. That goal state comes
from a kernel ridge probe (RBF; bandwidth and ridge picked on a held-out fifth) on the goal frame's *unpooled*
encoder tokens when the model has them (``encode_fine``; ``energy.goal_fine``). Pooling blurs a small body's
position and a linear read-out shrinks it toward the centre: measured on PointReach, held-out xy error 0.147
(linear, pooled), 0.065 (linear, unpooled), 0.034 (kernel, unpooled), against a success tolerance of 0.12.
The latent term is divided by ``latent_scale`` (the mean latent distance between random frame pairs of the
dataset) so all terms are unitless. The goal is still given only as an image; states are used only to fit the
probes, from the same data the world model was trained on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldmodel.data.reader import EpisodeReader
from worldmodel.models.protocol import FineLatents
from worldmodel.planning.energy import token_distance
from worldmodel.probes.linear import KernelProbe, RidgeProbe
from worldmodel.utils.atomic import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LatentProbe:
    """Linear map from flattened latents to standardized states, restricted to well-predicted dims. Immutable once
    fitted: ``matched`` and ``weighted`` return adjusted copies."""

    weight: torch.Tensor  # (N * D, K) standardized-state coefficients of the kept dims
    x_mean: torch.Tensor  # (N * D,) mean flattened latent of the fit
    y_mean: torch.Tensor  # (K,) state mean of the kept dims
    y_std: torch.Tensor  # (K,) state std of the kept dims
    dims: list[int]  # the K kept state dims
    r2: list[float]  # held-out R^2 of every state dim
    latent_scale: float  # mean per-token metric distance between random frame pairs
    goal_probe: "KernelProbe | None" = None  # goal-state read-out from unpooled latents (None: from pooled ones)
    goal_r2: list[float] | None = None  # held-out R^2 of the kept dims from the unpooled latents
    dim_weights: torch.Tensor | None = None  # (K,) weights of the kept dims in ``state_distance`` (None: equal)
    kept_cols: list[int] | None = None  # kept dims (of K) the model predicts (``match_predicted``; None: all K)
    pred_cols: list[int] | None = None  # their columns in the model's predicted states (None: ``dims``)

    def matched(self, state_dims: list[int], label_dims: list[int] | None) -> LatentProbe:
        """This probe aligned with a model whose predicted states are the env dims ``state_dims``, the probe's
        labels being the env dims ``label_dims`` (None: all, in order): only kept dims the model predicts count."""
        env_dims = [d if label_dims is None else label_dims[d] for d in self.dims]  # (K,) env dim of each kept dim
        pairs = [(k, state_dims.index(e)) for k, e in enumerate(env_dims) if e in state_dims]
        if not pairs:
            raise ValueError(f"energy.state_weight > 0: the model predicts state dims {state_dims}, none of which "
                             f"the probe reads from images (kept dims {env_dims}); set energy.state_weight=0")
        return dataclasses.replace(self, kept_cols=[k for k, _ in pairs], pred_cols=[c for _, c in pairs])

    def weighted(self, dims, weight: float) -> LatentProbe:
        """This probe with the kept dims among ``dims`` (simulator state dims) weighed ``weight`` times the others in
        ``state_distance``; the weights are normalized to mean 1 over the kept dims, so the term keeps its scale."""
        w = torch.tensor([float(weight) if d in set(dims) else 1.0 for d in self.dims])  # (K,)
        return dataclasses.replace(self, dim_weights=w / w.mean())

    def distance(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """z (B, H, N, D), goal (B, N, D) -> (B, H) mean |W^T (z - goal)| over kept dims."""
        diff = (z - goal[:, None]).flatten(-2).float()  # (B, H, N*D)
        return (diff @ self.weight.to(diff.device)).abs().mean(-1)  # (B, H)

    def goal_state(self, goal: torch.Tensor) -> torch.Tensor:
        """Standardized state read from latents: goal (B, N, D) -> (B, K)."""
        x = goal.flatten(-2).float() - self.x_mean.to(goal.device)  # (B, N*D)
        return x @ self.weight.to(goal.device)  # (B, K)

    def goal_state_fine(self, z_fine: torch.Tensor) -> torch.Tensor:
        """Standardized state read from unpooled goal latents (B, N0, D) -> (B, K) (needs ``goal_probe``)."""
        return self.goal_probe.predict(z_fine.flatten(-2).float().cpu()).to(z_fine.device)  # (B, K)

    def standardize(self, states: torch.Tensor) -> torch.Tensor:
        """Simulator states (..., S) -> the kept dims in standardized units (..., K)."""
        return (states[..., self.dims].float() - self.y_mean.to(states.device)) / self.y_std.to(states.device)

    def state_distance(self, states: torch.Tensor, goal: torch.Tensor,
                       goal_state: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted states (B, H, S) (simulator units) vs the goal state (B, K) standardized (default: read from
        the goal latent (B, N, D)) -> (B, H) mean standardized |difference| over kept dims (``dim_weights``)."""
        kept = list(range(len(self.dims))) if self.kept_cols is None else self.kept_cols
        cols = self.dims if self.pred_cols is None else self.pred_cols
        mean, std = self.y_mean[kept].to(states.device), self.y_std[kept].to(states.device)
        s = (states[..., cols].float() - mean) / std  # (B, H, K')
        g = (self.goal_state(goal) if goal_state is None else goal_state.to(s.device))[:, kept]  # (B, K')
        d = (s - g[:, None]).abs()  # (B, H, K')
        if self.dim_weights is not None:
            d = d * self.dim_weights[kept].to(d.device)
        return d.mean(-1)  # (B, H)


@dataclass
class ProbeFrames:
    """Dataset frames encoded by a world model: what the probes (and the subgoal graph) are fit on."""

    z: torch.Tensor  # (n, N, D) pooled latents, as ``model.encode``
    z_fine: torch.Tensor | None  # (n, N0, D) unpooled latents (models with ``encode_fine``), else None
    states: torch.Tensor  # (n, S') the frames' labelled state dims (``state_dims``: proprioception in pure mode)
    episode: np.ndarray  # (n,) episode id of each frame
    step: np.ndarray  # (n,) env step of each frame within its episode


@dataclass
class PickedFrames:
    """Dataset frames the planner's probe and roadmap are fit on, before encoding (what ``store`` keeps)."""

    frames: np.ndarray  # (n, H, W, 3) uint8
    states: np.ndarray  # (n, S') float32 labels: the frames' recorded ``state_dims`` (all dims if None)
    episode: np.ndarray  # (n,) episode id of each frame
    step: np.ndarray  # (n,) env step of each frame within its episode


def pick_frames(dataset: str | Path, episodes: int = 40, stride: int = 4, seed: int = 0,
                state_dims: list[int] | None = None, max_bad_fraction: float = 0.1,
                exclude: list[int] | None = None) -> PickedFrames:
    """Every ``stride``-th frame of ``episodes`` dataset episodes picked at random (seeded), never one of the
    ``exclude`` episodes (those planning is evaluated on); corrupt episodes are skipped and counted
    (:class:`~worldmodel.data.reader.EpisodeReader`)."""
    reader = EpisodeReader(dataset, max_bad_fraction)
    ids = [i for i in reader.ids if i not in set(exclude or [])]
    if not ids:
        raise ValueError(f"dataset {dataset}: every episode is an evaluation episode; the planner's probe frames "
                         f"need others (set probe_dataset=<another dataset>)")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(ids, size=min(episodes, len(ids)), replace=False).tolist())
    frames, states, episode, step = [], [], [], []
    for i, ep in reader.episodes(pick):
        frames.append(ep["frames"][::stride])
        states.append(ep["states"][::stride] if state_dims is None else ep["states"][::stride][:, state_dims])
        episode.append(np.full(len(frames[-1]), i))
        step.append(np.arange(0, len(ep["frames"]), stride)[: len(frames[-1])])
    return PickedFrames(np.concatenate(frames), np.concatenate(states).astype(np.float32), np.concatenate(episode),
                        np.concatenate(step))


def stored_frames(dataset: str | Path, store: str | Path, episodes: int, stride: int, seed: int = 0,
                  state_dims: list[int] | None = None, max_bad_fraction: float = 0.1,
                  exclude: list[int] | None = None) -> tuple[PickedFrames, str]:
    """``pick_frames`` with a copy kept in the folder ``store`` (beside the model's checkpoint), so planning needs
    no training data: read from ``dataset`` while it exists, else from the copy. The copy is written when missing
    or made from another version of the dataset (its manifest's digest is stored with it).

    Returns (frames, where they came from)."""
    key = {"dataset": str(Path(dataset).resolve()), "episodes": int(episodes), "stride": int(stride),
           "seed": int(seed), "state_dims": state_dims}
    key = json.dumps({**key, "exclude": sorted(map(int, exclude))} if exclude else key, sort_keys=True)
    path = Path(store) / f"probe_frames_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    manifest = Path(dataset) / "manifest.json"
    if manifest.is_file():
        picked = pick_frames(dataset, episodes, stride, seed, state_dims, max_bad_fraction, exclude)
        source = hashlib.sha1(manifest.read_bytes()).hexdigest()
        if path.is_file():
            with np.load(path) as z:
                if "source" in z.files and str(z["source"]) == source:
                    return picked, str(dataset)  # the copy is of this dataset already
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, key=np.array(key), source=np.array(source), **vars(picked))
        except OSError as e:  # a read-only model folder: plan on, without the copy
            log.warning("cannot store the planner's probe frames at %s (%s)", path, e)
        return picked, str(dataset)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {dataset}: gone, and no stored copy of the planner's probe frames at {path} "
                                f"(plan once while the dataset exists, or set energy.state_weight=0 "
                                f"subgoals.enabled=false)")
    with np.load(path) as z:
        picked = PickedFrames(z["frames"], z["states"], z["episode"], z["step"])
    return picked, str(path)


@torch.no_grad()
def encode_frames(model, picked: PickedFrames, batch: int = 128, fine: bool = True) -> ProbeFrames:
    """Encode picked dataset frames with the model; ``fine`` and a model with ``encode_fine``/``pool_fine``: keep
    the unpooled latents too."""
    frames_np = picked.frames
    fine = fine and isinstance(model, FineLatents)
    H, W = frames_np.shape[1:3]
    zs, zfs = [], []
    for i in range(0, len(frames_np), batch):
        f = torch.from_numpy(frames_np[i:i + batch])
        if fine:
            zf = model.encode_fine(f).float()  # (b, N0, D)
            zfs.append(zf.cpu())
            zs.append(model.pool_fine(zf, H, W).cpu())  # (b, N, D), identical to model.encode(f)
        else:
            zs.append(model.encode(f).float().cpu())
    return ProbeFrames(z=torch.cat(zs), z_fine=torch.cat(zfs) if fine else None,
                       states=torch.as_tensor(picked.states, dtype=torch.float32), episode=picked.episode,
                       step=picked.step)


@torch.no_grad()
def fit_probe(model, dataset: str | Path, episodes: int = 40, stride: int = 4, min_r2: float = 0.5,
              metric: str = "l1", batch: int = 128, seed: int = 0, fine: bool = True,
              frames: ProbeFrames | None = None) -> LatentProbe:
    """Fit a ridge probe latents -> states (the drift evaluation's ``RidgeProbe``, lambda chosen on a held-out
    fifth) on ``frames`` (default: ``encode_frames(model, dataset, episodes, stride)``). With unpooled latents
    (``fine``), also fit the kernel goal-state probe on them."""

    if frames is None:
        frames = encode_frames(model, pick_frames(dataset, episodes, stride, seed), batch, fine)
    z, states_t = frames.z, frames.states  # (n, N, D), (n, S)
    probe = RidgeProbe(z, states_t, seed=seed)
    r2 = probe.r2.tolist()
    dims = [k for k, v in enumerate(r2) if v >= min_r2] or [int(np.argmax(r2))]  # constant dims have R^2 0
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))
    scale = token_distance(z[:, None], z[perm], metric).mean().item()  # (n, 1) -> scalar
    out = LatentProbe(weight=probe.w[:, dims].contiguous(), x_mean=probe.x_mean, y_mean=probe.y_mean[dims],
                      y_std=probe.y_std[dims], dims=dims, r2=[round(v, 4) for v in r2], latent_scale=max(scale, 1e-8))
    if fine and frames.z_fine is not None:  # targets in the standardized units of the kept dims
        goal = KernelProbe(frames.z_fine.flatten(1), out.standardize(states_t), seed=seed)
        out = dataclasses.replace(out, goal_probe=goal, goal_r2=[round(v, 4) for v in goal.r2.tolist()])
    return out
