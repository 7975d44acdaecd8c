"""Probes from latents to states: a linear ridge probe and an RBF kernel ridge probe.

Both are fit in closed form, their strengths picked on a held-out part of the fitting data. Drift's state-probe
error and the planner's oracle energy terms use them; the encoder's attentive probe is
:mod:`worldmodel.probes.attentive`.
"""
from __future__ import annotations

import torch


class RidgeProbe:
    """Linear ridge map from flattened latents (n, N*D) to standardized states (n, S)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, lambdas=(1e-3, 1e-2, 1e-1, 1.0), holdout: float = 0.2,
                 seed: int = 0, min_r2: float = 0.0):
        self.token_shape = tuple(x.shape[1:])  # (N, D) of one latent
        x, y = x.flatten(1).float(), y.float()
        self.x_mean, self.y_mean, self.y_std = x.mean(0), y.mean(0), y.std(0).clamp_min(1e-6)
        xc, yc = x - self.x_mean, (y - self.y_mean) / self.y_std
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        n_val = max(1, int(holdout * len(x)))
        va, tr = perm[:n_val], perm[n_val:]
        xt, yt = xc[tr], yc[tr]
        dual = xt.shape[0] < xt.shape[1]  # eigendecompose the smaller Gram matrix
        gram = xt @ xt.T if dual else xt.T @ xt
        evals, evecs = torch.linalg.eigh(gram.double())
        evals = evals.clamp_min(0)
        scale = max(evals.mean().item(), 1e-12)  # features with no variance: predict the mean, not NaN
        proj = evecs.T @ (yt.double() if dual else (xt.T @ yt).double())  # (r, S)
        best = None
        for lam in lambdas:
            coef = evecs @ (proj / (evals + lam * scale)[:, None])  # (n or F, S)
            w = (xt.T.double() @ coef) if dual else coef  # (F, S)
            res = (xc[va].double() @ w) - yc[va].double()  # (n_val, S)
            err = res.abs().mean().item()
            if best is None or err < best[0]:
                best = (err, lam, w.float(), 1 - res.pow(2).mean(0) / yc[va].double().var(0).clamp_min(1e-12))
        self.val_error, self.lam, self.w, r2 = best
        r2[y.std(0) < 1e-6] = 0.0  # a constant dim has nothing to predict: R^2 0, never among the probe's dims
        self.r2 = r2.float()  # (S,) held-out R^2 per state dim
        dims = (self.r2 >= min_r2).nonzero().flatten()
        self.dims = dims if len(dims) else torch.arange(len(self.r2))  # dims probe_error averages over

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Latents (..., N, D) -> states (..., S) in simulator units."""
        lead = x.shape[:-2]
        y = (x.flatten(-2).reshape(-1, self.w.shape[0]).float() - self.x_mean) @ self.w
        return (y * self.y_std + self.y_mean).reshape(*lead, -1)

    def error(self, x: torch.Tensor, states: torch.Tensor, all_dims: bool = False) -> torch.Tensor:
        """Mean |probe(x) - states| / std per horizon: x (W, H, N, D), states (W, H, S) -> (H,)."""
        err = ((self.predict(x) - states) / self.y_std).abs()  # (W, H, S)
        return (err if all_dims else err[..., self.dims]).mean(dim=(0, -1))


class KernelProbe:
    """RBF kernel ridge regression x (n, F) -> y (n, K): exp(-|x - c|^2 / (bw * median |x - x'|^2)).

    Fit on at most ``max_centers`` examples; the bandwidth factor and ridge strength are picked on a held-out
    fifth from small grids, then the model is refit on all centres. Predictions cost one (B, m) kernel row.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, bandwidths=(0.5, 1.0, 2.0), lambdas=(1e-3, 1e-2, 1e-1),
                 max_centers: int = 4000, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        keep = torch.randperm(len(x), generator=g)[:max_centers]
        x, y = x[keep].double(), y[keep].double()  # (m, F), (m, K)
        sq = (x * x).sum(1)
        d2 = (sq[:, None] + sq[None] - 2 * x @ x.T).clamp_min(0)  # (m, m)
        n_val = max(1, len(x) // 5)
        va, tr = torch.arange(n_val), torch.arange(n_val, len(x))
        self.scale = float(d2[tr][:, tr].median().clamp_min(1e-12))
        self.y_mean = y[tr].mean(0)
        best = None
        for bw in bandwidths:
            k = torch.exp(-d2 / (bw * self.scale))
            for lam in lambdas:
                a = torch.linalg.solve(k[tr][:, tr] + lam * torch.eye(len(tr), dtype=k.dtype), y[tr] - self.y_mean)
                pred = k[va][:, tr] @ a + self.y_mean  # (n_val, K)
                err = (pred - y[va]).square().mean().item()
                if best is None or err < best[0]:
                    r2 = 1 - (pred - y[va]).square().sum(0) / (y[va] - y[va].mean(0)).square().sum(0).clamp_min(1e-12)
                    best = (err, bw, lam, r2)
        _, self.bw, self.lam, self.r2 = best
        self.y_mean = y.mean(0)
        k = torch.exp(-d2 / (self.bw * self.scale))
        self.alpha = torch.linalg.solve(k + self.lam * torch.eye(len(x), dtype=k.dtype), y - self.y_mean)  # (m, K)
        self.centers, self.center_sq = x.float(), sq  # (m, F), (m,)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, F) -> (B, K) float32. The (B, m) cross term is a float32 matmul (the cost); distances and the
        kernel are then taken in float64."""
        cross = (x.float() @ self.centers.T).double()  # (B, m)
        d2 = ((x.double() ** 2).sum(1)[:, None] + self.center_sq[None] - 2 * cross).clamp_min(0)
        return (torch.exp(-d2 / (self.bw * self.scale)) @ self.alpha + self.y_mean).float()
