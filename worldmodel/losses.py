"""Losses and collapse statistics for joint-embedding predictive training.

- ``latent_loss``: mean |pred - target|^p (V-JEPA: p = 1).
- ``sigreg``: LeJEPA's Sketched Isotropic Gaussian Regularizer: project embeddings on random unit directions and
  compare each 1-D empirical characteristic function with the standard normal one (Epps-Pulley statistic,
  Gaussian-weighted, trapezoid rule on t in [0, t_max] doubled by symmetry), times the number of samples,
  averaged over directions. Under DDP the statistic is that of the whole gathered batch.
- ``rdmreg``: Rectified LpJEPA's RDMReg: a two-sample sliced-Wasserstein match of the embeddings to samples of a
  rectified generalized Gaussian (shape p, location mu, scale sigma, rectified at 0), along random directions.
  Under DDP the projections of the whole gathered batch are sorted together.
- ``vicreg``: variance hinge (per-dim std towards 1) + off-diagonal covariance penalty.
- ``collapse_stats``: mean per-dimension std and effective rank (exp of the entropy of the normalized
  singular values of the centered embeddings).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F


def latent_loss(pred: torch.Tensor, target: torch.Tensor, exponent: float = 1.0) -> torch.Tensor:
    """Mean over elements of |pred - target|^exponent (1: L1 as in V-JEPA, 2: squared error)."""
    diff = (pred - target).abs()
    return (diff if exponent == 1.0 else diff.pow(exponent)).mean()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _global_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks with the value of the global sum and the gradient of the local part.

    The gradient is scaled by the world size: DDP averages gradients over ranks, and every rank computes the same
    global statistic, so the scaling makes the averaged gradient equal the gradient of the global statistic.
    """
    if not _distributed():
        return x
    world = dist.get_world_size()
    total = x.detach().clone()
    dist.all_reduce(total)
    return total + world * x - world * x.detach()


def sigreg(z: torch.Tensor, num_slices: int = 256, t_max: float = 3.0, knots: int = 17,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """SIGReg (LeJEPA): Epps-Pulley statistic of ``num_slices`` random 1-D projections of ``z`` against N(0, 1).

    Args:
        z: (N, D) embeddings (rows are samples; tokens may be used as samples).
        num_slices: random unit directions; must be the same on every rank, so draw them from ``generator``
            seeded identically across ranks (e.g. by step).
        t_max, knots: integration range [0, t_max] and trapezoid knots of the weighted ECF distance.
    Returns:
        scalar: mean over directions of N_total * integral |ecf(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt; about 1 or less
        for Gaussian samples and of order N_total for collapsed ones. Under DDP the empirical characteristic
        function is averaged over the gathered batch (equivalent to computing it on all ranks' samples).
    """
    z = z.float()
    n_local, d = z.shape
    dirs = torch.randn(d, num_slices, generator=generator, device="cpu").to(z.device)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)  # (D, S) unit columns
    t = torch.linspace(0.0, t_max, knots, device=z.device)  # (P,)
    phi = torch.exp(-0.5 * t * t)  # N(0,1) characteristic function, also the weight
    w = torch.full((knots,), 2 * t_max / (knots - 1), device=z.device)
    w[0] = w[-1] = t_max / (knots - 1)  # trapezoid on [0, t_max], doubled for the symmetric half
    xt = (z @ dirs).unsqueeze(-1) * t  # (N, S, P)
    n_total = _global_sum(torch.tensor(float(n_local), device=z.device)).detach()
    cos_mean = _global_sum(xt.cos().sum(0)) / n_total  # (S, P)
    sin_mean = _global_sum(xt.sin().sum(0)) / n_total
    err = (cos_mean - phi).square() + sin_mean.square()  # (S, P)
    return (err @ (w * phi)).mean() * n_total


def rectified_gg_samples(n: int, d: int, p: float = 2.0, mu: float = 0.0, sigma: float = 1.0,
                         seed: int = 0) -> torch.Tensor:
    """(n, d) i.i.d. samples of ReLU(X), X generalized Gaussian with density ∝ exp(-|(x - mu) / sigma|^p).

    |X - mu| / sigma = G^(1/p) with G ~ Gamma(1/p, 1) and a random sign (p = 2: a Gaussian of std sigma/sqrt(2),
    p = 1: Laplace). Drawn with numpy from ``seed`` so every rank draws the same samples."""
    rng = np.random.default_rng(seed)
    g = rng.gamma(1.0 / p, 1.0, size=(n, d)) ** (1.0 / p)
    x = mu + sigma * np.where(rng.random((n, d)) < 0.5, -g, g)
    return torch.from_numpy(np.maximum(x, 0.0)).float()


def _gather_rows(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows of ``x`` concatenated in rank order; gradients flow to this rank's own rows only."""
    if not _distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def rdmreg(z: torch.Tensor, num_slices: int = 256, p: float = 2.0, mu: float = 0.0, sigma: float = 1.0,
           generator: torch.Generator | None = None, seed: int = 0) -> torch.Tensor:
    """RDMReg (Rectified LpJEPA): sliced 2-Wasserstein distance between ``z`` and rectified generalized Gaussian
    samples.

    Args:
        z: (N, D) embeddings (rows are samples). They are matched as they are (not rectified first), so every
            entry gets a gradient towards the sparse, non-negative target.
        num_slices: random unit directions, drawn from ``generator`` (seed it identically on every rank).
        p, mu, sigma: shape, location and scale of the generalized Gaussian before rectification.
        seed: seed of the target samples (the same on every rank, e.g. the step).
    Returns:
        scalar: mean over directions and sorted positions of (sorted z-projection - sorted target projection)^2;
        near 0 when ``z`` follows the target, large for collapsed embeddings. Under DDP it is the statistic of the
        gathered batch, with the gradient scaled so that DDP's averaging yields the global gradient.
    """
    z = z.float()
    d = z.shape[1]
    dirs = torch.randn(d, num_slices, generator=generator, device="cpu").to(z.device)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)  # (D, S) unit columns
    proj = _gather_rows(z @ dirs)  # (N_total, S)
    target = rectified_gg_samples(proj.shape[0], d, p, mu, sigma, seed).to(z.device) @ dirs  # (N_total, S)
    loss = (proj.sort(0).values - target.sort(0).values).square().mean()
    if _distributed():  # every rank holds the global value; DDP averages gradients over ranks
        world = dist.get_world_size()
        loss = world * loss - (world - 1) * loss.detach()
    return loss


def vicreg(z: torch.Tensor, std_target: float = 1.0, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg regularizers of (N, D) embeddings: (variance hinge mean(relu(target - std)), covariance
    sum of squared off-diagonal entries / D)."""
    z = z.float()
    z = z - z.mean(0)
    std = torch.sqrt(z.var(0) + eps)
    var_loss = F.relu(std_target - std).mean()
    n, d = z.shape
    cov = (z.T @ z) / max(n - 1, 1)  # (D, D)
    off = cov - torch.diag(torch.diag(cov))
    cov_loss = off.square().sum() / d
    return var_loss, cov_loss


@torch.no_grad()
def effective_rank(z: torch.Tensor) -> float:
    """exp(entropy) of the normalized singular values of the centered (N, D) matrix (RankMe); in [1, min(N, D)]."""
    z = z.float()
    z = z - z.mean(0)
    s = torch.linalg.svdvals(z)
    p = s / s.sum().clamp_min(1e-12)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def collapse_stats(z: torch.Tensor, max_rows: int = 4096) -> dict[str, float]:
    """Collapse monitors of embeddings (..., D): mean per-dim std and effective rank (rows subsampled evenly)."""
    z = z.reshape(-1, z.shape[-1]).float()
    if z.shape[0] > max_rows:
        z = z[torch.linspace(0, z.shape[0] - 1, max_rows, device=z.device).long()]
    return {"std": float(z.std(0).mean()), "eff_rank": effective_rank(z)}
