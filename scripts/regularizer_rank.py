"""How fast does each anti-collapse regularizer alone restore the rank of low-rank embeddings?

A toy without an encoder: embeddings z = LayerNorm(x @ W) of fixed Gaussian inputs x (D = 192, as vit_tiny), with
W initialized at rank 36 (about where sigreg pretraining sits). Adam trains W on one regularizer only, a fresh batch
of 256 samples per step, and the effective rank of z on 4096 held-out inputs is printed as it goes. It shows how
hard each regularizer pushes towards full rank once the embeddings are roughly Gaussian, with no prediction loss
pulling the other way. It also times SIGReg's forward and backward over one batch for each number of directions.

    python scripts/regularizer_rank.py --steps 900 --slices 256 1024 4096
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from worldmodel.losses import effective_rank, sigreg, vicreg
from worldmodel.train.regularizers import VicRegConfig

DIM, BATCH = 192, 256  # embedding width (vit_tiny) and samples per step


def train_rank(loss_name: str, slices: int, steps: int, every: int, dim: int = DIM, init_rank: int = 36,
               batch: int = BATCH, lr: float = 1e-3) -> list[tuple[int, float]]:
    """Effective rank of z = LayerNorm(x @ W) every ``every`` steps while Adam minimizes one regularizer."""
    g = torch.Generator().manual_seed(0)
    x_train = torch.randn(20_000, dim, generator=g)  # (n, D)
    x_eval = torch.randn(4096, dim, generator=g)
    w = (torch.randn(dim, init_rank, generator=g) @ torch.randn(init_rank, dim, generator=g) / init_rank)
    w.requires_grad_()
    opt = torch.optim.Adam([w], lr=lr)
    reg = VicRegConfig()

    def rank() -> float:
        with torch.no_grad():
            return effective_rank(F.layer_norm(x_eval @ w, (dim,)))

    out = [(0, rank())]
    for step in range(steps):
        z = F.layer_norm(x_train[torch.randint(0, len(x_train), (batch,), generator=g)] @ w, (dim,))  # (B, D)
        if loss_name == "sigreg":
            loss = sigreg(z, num_slices=slices, generator=torch.Generator().manual_seed(step))
        else:
            var, cov = vicreg(z)
            loss = reg.vicreg_var * var + reg.vicreg_cov * cov
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % every == 0:
            out.append((step + 1, rank()))
    return out


def sigreg_seconds(slices: int, batch: int = BATCH, dim: int = DIM, repeats: int = 10) -> float:
    """Median seconds of one SIGReg forward and backward over a (batch, dim) embedding."""
    z = torch.randn(batch, dim, requires_grad=True)
    sigreg(z, num_slices=slices).backward()  # warm-up, untimed
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        sigreg(z, num_slices=slices, generator=torch.Generator().manual_seed(i)).backward()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--every", type=int, default=300)
    ap.add_argument("--slices", type=int, nargs="+", default=[256, 1024])
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = [(f"sigreg, {s} slices", "sigreg", s) for s in args.slices] + [("vicreg", "vicreg", 0)]
    seconds = [sigreg_seconds(s) for s in args.slices]
    for slices, t in zip(args.slices, seconds):
        print(f"SIGReg forward+backward, {BATCH} x {DIM}, {slices} slices: {t * 1e3:.0f} ms "
              f"({t / seconds[0]:.1f}x)", flush=True)
    for label, name, slices in runs:
        ranks = train_rank(name, slices, args.steps, args.every)
        print(f"{label:>22}: " + ", ".join(f"step {s}: {r:.1f}" for s, r in ranks), flush=True)


if __name__ == "__main__":
    main()
