"""Label-free scene keypoints: where things are in a frame, read from its latents (no labels).

A deep spatial autoencoder (Finn et al. 2016, "Deep Spatial Autoencoders for Visuomotor Learning") on the frozen
encoder's *unpooled* patch latents. Each of K keypoints is a spatial softmax over the patch grid of a per-token
logit; its coordinates are the softmax-weighted mean of the patch centres (in [-1, 1], sub-patch precision)::

    w_k = softmax_over_tokens(temperature * logit_k(z_i + pos_i))      z (B, N0, D) -> w (B, N0, K)
    keypoint_k = sum_i w_k(i) * centre_i                               -> (B, K, 2)

They are fit once, at the start of ``wm train-ac``, on the training episodes' frames only, with no labels: a
renderer must rebuild every frame's standardized latent from the agent's proprioception plus the keypoints, drawn
as Gaussian blobs (:class:`KeypointRenderer`), so the keypoints go where the frame changes in ways a point can
describe. Nothing steers them to one body or another: on PushBlock (K = 2, the main job's encoder) one of them
follows the block: held-out correlation 1.00 with its true position, linear read-out error 0.011 (its std 0.29),
against 0.26 for untrained keypoints (``scripts/keypoint_readout.py``; docs/experiments/2026-12-02-scene-keypoints.md).
A frame's keypoints join the predictor's state token beside the proprioception: the state head predicts the next
ones and the global head renders the latent from them — the path the oracle's simulator state takes, with values
read from pixels. Planning reads them from the current frame (``LatentWorldModel.state_input``); the goal stays
an image and the energy stays on latents.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm


@dataclass
class KeypointConfig:
    num: int = 0  # scene keypoints in the predictor's state token (0: none); fit without labels at train-ac start
    steps: int = 2000  # Adam steps fitting the keypoint autoencoder on the training frames
    batch_size: int = 128  # frames per step
    lr: float = 1e-3  # Adam learning rate of the fit
    hidden: int = 64  # width of the per-token logit MLP


def grid_centres(grid_h: int, grid_w: int) -> torch.Tensor:
    """Patch centres (grid_h * grid_w, 2) as (x, y) in [-1, 1], row-major like the encoder's tokens."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, grid_h), torch.linspace(-1, 1, grid_w), indexing="ij")
    return torch.stack((xs.flatten(), ys.flatten()), -1)


class SceneKeypoints(nn.Module):
    """Unpooled latents (B, N0, D) -> K keypoints (B, 2K) = (x_1, y_1, ..., x_K, y_K) in [-1, 1]."""

    def __init__(self, grid_h: int, grid_w: int, dim: int, num: int, hidden: int = 64):
        super().__init__()
        self.grid_h, self.grid_w, self.dim, self.num, self.hidden = grid_h, grid_w, dim, num, hidden
        n0 = grid_h * grid_w
        self.logit = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num))
        self.pos = nn.Parameter(torch.zeros(n0, dim))  # where a token sits, as an input to its logit
        self.log_temp = nn.Parameter(torch.zeros(()))
        self.register_buffer("centres", grid_centres(grid_h, grid_w))  # (N0, 2)
        self.register_buffer("latent_mean", torch.zeros(n0, dim))
        self.register_buffer("latent_std", torch.ones(n0, dim))

    def config(self) -> dict:
        return {"grid_h": self.grid_h, "grid_w": self.grid_w, "dim": self.dim, "num": self.num, "hidden": self.hidden}

    def standardize(self, z: torch.Tensor) -> torch.Tensor:
        return (z.float() - self.latent_mean) / self.latent_std

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Standardized latents (B, N0, D) -> spatial softmax weights (B, N0, K)."""
        return (self.logit(x + self.pos) * self.log_temp.exp()).softmax(1)

    def locate(self, x: torch.Tensor) -> torch.Tensor:
        """Standardized latents (B, N0, D) -> keypoints (B, 2K)."""
        return torch.einsum("bnk,nc->bkc", self.weights(x), self.centres).flatten(1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.locate(self.standardize(z))  # (B, 2K)


class KeypointRenderer(nn.Module):
    """Rebuilds standardized latents (B, N0, D) from proprioception (B, P) and keypoints (B, 2K): an MLP of the
    proprioception for the whole frame, plus a per-token MLP of each keypoint's Gaussian blob and offset there."""

    def __init__(self, centres: torch.Tensor, dim: int, num: int, proprio_dim: int, hidden: int = 256):
        super().__init__()
        n0 = centres.shape[0]
        self.register_buffer("centres", centres)
        self.num, self.dim = num, dim
        self.body = (nn.Sequential(nn.Linear(proprio_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                   nn.Linear(hidden, n0 * dim)) if proprio_dim > 0 else None)
        self.scene = nn.Sequential(nn.Linear(3 * num, 128), nn.GELU(), nn.Linear(128, dim))
        self.scene_pos = nn.Parameter(torch.zeros(n0, dim))
        self.log_sigma = nn.Parameter(torch.tensor(-1.5))

    def forward(self, proprio: torch.Tensor | None, keypoints: torch.Tensor) -> torch.Tensor:
        """Standardized latents (B, N0, D) drawn from proprio (B, P) | None and keypoints (B, 2K)."""
        B = keypoints.shape[0]
        sigma = self.log_sigma.exp()
        d = (self.centres[None, :, None] - keypoints.view(B, 1, self.num, 2)) / sigma  # (B, N0, K, 2)
        blob = torch.exp(-0.5 * d.pow(2).sum(-1))  # (B, N0, K)
        out = self.scene(torch.cat((blob, blob * d[..., 0], blob * d[..., 1]), -1)) + self.scene_pos  # (B, N0, D)
        if self.body is not None:
            out = out + self.body(proprio).view(B, -1, self.dim)
        return out


def fit_keypoints(latents: torch.Tensor, proprio: torch.Tensor | None, grid_h: int, grid_w: int,
                  cfg: KeypointConfig, seed: int = 0, progress: bool = True) -> tuple[SceneKeypoints, float]:
    """Fit K keypoints on frames' unpooled latents (F, N0, D) (any float dtype) and their standardized
    proprioception (F, P) or None, without labels. Returns the keypoint module (eval mode, frozen) and the
    renderer's reconstruction loss (standardized latent units, mean of the last 10% of steps)."""
    F_, n0, D = latents.shape
    if n0 != grid_h * grid_w:
        raise ValueError(f"keypoints: latents have {n0} tokens, the patch grid {grid_h}x{grid_w} has {grid_h * grid_w}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    kp = SceneKeypoints(grid_h, grid_w, D, cfg.num, cfg.hidden)
    sample = latents[torch.randperm(F_, generator=gen)[:4096]].float()  # statistics from a subsample (memory)
    std = sample.std(0)
    kp.latent_mean.copy_(sample.mean(0))
    kp.latent_std.copy_(std.clamp_min(0.1 * std.mean().item() + 1e-8))
    renderer = KeypointRenderer(kp.centres, D, cfg.num, 0 if proprio is None else proprio.shape[1])
    opt = torch.optim.AdamW(list(kp.parameters()) + list(renderer.parameters()), cfg.lr, weight_decay=0.01)
    tail, losses = max(1, cfg.steps // 10), []
    for step in tqdm(range(cfg.steps), desc="fit keypoints", disable=not progress, dynamic_ncols=True):
        idx = torch.randint(F_, (cfg.batch_size,), generator=gen)
        x = kp.standardize(latents[idx])  # (b, N0, D)
        loss = (renderer(None if proprio is None else proprio[idx], kp.locate(x)) - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= cfg.steps - tail:
            losses.append(loss.item())
    return kp.eval().requires_grad_(False), sum(losses) / len(losses)


@torch.no_grad()
def keypoints_of(kp: SceneKeypoints, latents: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """Keypoints (F, 2K) of unpooled latents (F, N0, D), in batches on the module's device, returned on the CPU."""
    dev = kp.centres.device
    out = [kp(latents[i:i + batch].to(dev)).cpu() for i in range(0, len(latents), batch)]
    return torch.cat(out) if out else torch.zeros(0, 2 * kp.num)


def load_keypoints(entry: dict) -> SceneKeypoints:
    """A checkpoint's ``{"config": ..., "state": ...}`` entry -> the frozen keypoint module."""
    kp = SceneKeypoints(**entry["config"])
    kp.load_state_dict(entry["state"])
    return kp.eval().requires_grad_(False)
