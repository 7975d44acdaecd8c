"""How fast does each anti-collapse regularizer alone restore the rank of low-rank embeddings?

A toy without an encoder: embeddings z = LayerNorm(x @ W) of fixed Gaussian inputs x (D = 192, as vit_tiny), with
W initialized at rank 36 (about where sigreg pretraining sits). Adam trains W on one regularizer only, a fresh batch
of 256 samples per step, and the effective rank of z on 4096 held-out inputs is printed as it goes. It shows how
hard each regularizer pushes towards full rank once the embeddings are roughly Gaussian, with no prediction loss
pulling the other way.

    python scripts/regularizer_rank.py --steps 900 --slices 256 1024 4096
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from worldmodel.losses import effective_rank, sigreg, vicreg


def train_rank(loss_name: str, slices: int, steps: int, every: int, dim: int = 192, init_rank: int = 36,
               batch: int = 256, lr: float = 1e-3) -> list[tuple[int, float]]:
    """Effective rank of z = LayerNorm(x @ W) every ``every`` steps while Adam minimizes one regularizer."""
    g = torch.Generator().manual_seed(0)
    x_train = torch.randn(20_000, dim, generator=g)  # (n, D)
    x_eval = torch.randn(4096, dim, generator=g)
    w = (torch.randn(dim, init_rank, generator=g) @ torch.randn(init_rank, dim, generator=g) / init_rank)
    w.requires_grad_()
    opt = torch.optim.Adam([w], lr=lr)
    out = []
    for step in range(steps + 1):
        if step % every == 0:
            with torch.no_grad():
                out.append((step, effective_rank(F.layer_norm(x_eval @ w, (dim,)))))
        if step == steps:
            break
        z = F.layer_norm(x_train[torch.randint(0, len(x_train), (batch,), generator=g)] @ w, (dim,))  # (B, D)
        if loss_name == "sigreg":
            loss = sigreg(z, num_slices=slices, generator=torch.Generator().manual_seed(step))
        else:
            var, cov = vicreg(z)
            loss = var + 0.04 * cov  # the weights of regularizer=vicreg
        opt.zero_grad()
        loss.backward()
        opt.step()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--every", type=int, default=300)
    ap.add_argument("--slices", type=int, nargs="+", default=[256, 1024])
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = [(f"sigreg, {s} slices", "sigreg", s) for s in args.slices] + [("vicreg", "vicreg", 0)]
    for label, name, slices in runs:
        ranks = train_rank(name, slices, args.steps, args.every)
        print(f"{label:>22}: " + ", ".join(f"step {s}: {r:.1f}" for s, r in ranks), flush=True)


if __name__ == "__main__":
    main()
