"""Multi-block 3D masks for V-JEPA (short-range and long-range families).

A mask family places ``num_blocks`` boxes on the (t, h, w) token grid; each box covers ``spatial_scale`` of the
h x w plane (aspect ratio drawn log-uniformly in ``aspect_ratio``) and ``temporal_scale`` of the frames
(1.0: the box spans every frame, a tube). The union of the boxes is the *target* set (what the predictor must
predict); its complement is the *context* (what the context encoder sees).

As in V-JEPA, the box size is drawn once per batch and family, the box positions per sample. Every family is a
separate "view" of each sample: the training step encodes the context and computes the prediction loss once per
family (V-JEPA's short-range and long-range masks) and averages. Index counts must be equal across a batch to
stack them, so each sample's context and target sets are subsampled at random (not truncated from the front,
which would bias towards early frames) to the batch minimum; the dropped target tokens are simply not
predicted, the dropped context tokens not seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class MaskFamily:
    # boxes per sample; their union is the target set
    num_blocks: int = 8
    # fraction of the h x w token plane covered by one box
    spatial_scale: float = 0.15
    # fraction of the token frames covered by one box (1.0 = the whole clip)
    temporal_scale: float = 1.0


@dataclass
class MaskConfig:
    # mask families; each one is a separate view per sample (default: V-JEPA short-range + long-range)
    families: list[MaskFamily] = field(default_factory=lambda: [MaskFamily(8, 0.15, 1.0), MaskFamily(2, 0.7, 1.0)])
    # box aspect ratio range (height/width), drawn log-uniformly
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    # minimum fraction of tokens left visible as context; masks leaving fewer are redrawn (then boxes dropped)
    min_context: float = 0.05
    # redraws before dropping boxes to satisfy min_context
    max_tries: int = 20


def _rand(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def block_size(grid: tuple[int, int, int], fam: MaskFamily, aspect: tuple[float, float],
               g: torch.Generator) -> tuple[int, int, int]:
    """Box size (bt, bh, bw) in tokens for one family, drawn once per batch."""
    t, h, w = grid
    area = fam.spatial_scale * h * w
    ar = math.exp(_rand(g, math.log(aspect[0]), math.log(aspect[1])))
    bh = max(1, min(h, round(math.sqrt(area * ar))))
    bw = max(1, min(w, round(math.sqrt(area / ar))))
    bt = max(1, min(t, round(fam.temporal_scale * t)))
    return bt, bh, bw


def sample_mask(grid: tuple[int, int, int], size: tuple[int, int, int], num_blocks: int, min_keep: int,
                max_tries: int, g: torch.Generator) -> torch.Tensor:
    """One sample's target mask: bool (t*h*w,) True where a box covers the token, raster order (t, h, w)."""
    t, h, w = grid
    bt, bh, bw = size
    for attempt in range(max_tries + num_blocks):
        # after max_tries failed draws, use one box fewer per further attempt (at least one box)
        n = num_blocks if attempt < max_tries else max(1, num_blocks - (attempt - max_tries + 1))
        mask = torch.zeros(t, h, w, dtype=torch.bool)
        starts = torch.stack([torch.randint(0, d - b + 1, (n,), generator=g)
                              for d, b in zip(grid, size)], dim=1)  # (n, 3)
        for t0, h0, w0 in starts.tolist():
            mask[t0:t0 + bt, h0:h0 + bh, w0:w0 + bw] = True
        if (~mask).sum() >= min_keep:
            return mask.flatten()
    return mask.flatten()


def _subsample(rows: list[torch.Tensor], g: torch.Generator) -> torch.Tensor:
    """Stack index sets of unequal size by random subsets of the minimum size, kept in raster order."""
    k = min(r.numel() for r in rows)
    out = [r[torch.randperm(r.numel(), generator=g)[:k]].sort().values for r in rows]
    return torch.stack(out)  # (B, k)


def sample_masks(batch_size: int, grid: tuple[int, int, int], cfg: MaskConfig,
                 g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Masks for one batch, one view per family.

    Returns:
        list over families of (context_idx (B, K), target_idx (B, M)) long tensors on CPU; per sample the two
        sets are disjoint and index the raster-ordered token grid of size t*h*w.
    """
    n_tokens = grid[0] * grid[1] * grid[2]
    min_keep = max(1, math.ceil(cfg.min_context * n_tokens))
    views = []
    for fam in cfg.families:
        size = block_size(grid, fam, tuple(cfg.aspect_ratio), g)
        ctx, tgt = [], []
        for _ in range(batch_size):
            m = sample_mask(grid, size, fam.num_blocks, min_keep, cfg.max_tries, g)
            ctx.append((~m).nonzero().squeeze(1))
            tgt.append(m.nonzero().squeeze(1))
        views.append((_subsample(ctx, g), _subsample(tgt, g)))
    return views
