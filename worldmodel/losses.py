"""Losses and collapse statistics for joint-embedding predictive training.

- ``latent_loss``: mean |pred - target|^p (V-JEPA: p = 1).
- ``sigreg``: LeJEPA's Sketched Isotropic Gaussian Regularizer: project embeddings on random unit directions and
  compare each 1-D empirical characteristic function with the standard normal one (Epps-Pulley statistic,
  Gaussian-weighted, trapezoid rule on t in [0, t_max] doubled by symmetry), times the number of samples,
  averaged over directions. Under DDP the statistic is that of the whole gathered batch.
- ``vicreg``: variance hinge (per-dim std towards 1) + off-diagonal covariance penalty.
- ``collapse_stats``: mean per-dimension std and effective rank (exp of the entropy of the normalized
  singular values of the centered embeddings).
"""
from __future__ import annotations

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
