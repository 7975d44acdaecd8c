"""3D rotary position embedding (RoPE) over (t, h, w), one module for the encoder, its masked predictor and the
action-conditioned predictor.

Queries and keys are rotated by angles proportional to each token's (t, h, w) position, so attention scores see
only relative offsets. :class:`Rope3D` builds the rotation tables (from a token grid or from explicit positions,
cached per grid and device) and applies them; three channel layouts exist because trained weights depend on
the one they were trained with:

- ``pairs`` (the encoder, its masked predictor): each head's channel pairs (2i, 2i+1) split into three equal
  groups of ``head_dim // 6`` pairs rotated by t, h and w, frequencies ``theta ** -(k / bands)`` (timm's
  ``build_rotary_pos_embed`` layout); leftover pairs (head_dim not a multiple of 6) pass through. Applied as one
  complex multiply, float32 inside: timm's ``apply_rot_embed`` uses rotate/stack copies that cost 40-60% of a
  block's CPU time at width 192.
- ``vjepa2`` (converted facebookresearch/vjepa2 checkpoints): the first ``3 * s`` channels,
  ``s = 2 * ((head_dim // 3) // 2)``, in three segments rotated by t, h and w; within a segment channel ``j`` uses
  ``theta ** -((j mod s/2) / (s/2))`` and pairs (2i, 2i+1) turn as ``x * cos + (-x[2i+1], x[2i]) * sin``
  (their ``RoPEAttention``), float32 inside.
- ``halves`` (the action-conditioned predictor): pairs (i, i + head_dim/2), a temporal share of
  ``pairs - 2 * (pairs // 3)`` and two spatial shares of ``pairs // 3``, frequencies ``theta ** -(k / n)``
  (angles in float64), applied in the input's dtype; a position of 0 on an axis leaves that axis unrotated.
"""
from __future__ import annotations

import torch
import torch.nn as nn

LAYOUTS = ("pairs", "vjepa2", "halves")


def grid_positions(grid: tuple[int, int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Integer (t, h, w) positions (N, 3) of a token grid in raster order (t slowest, w fastest)."""
    axes = [torch.arange(n, device=device) for n in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rope3D(nn.Module):
    """Rotation tables and their application for one head width and layout (see the module docstring).

    ``table(grid, device)`` / ``table_at(positions)`` -> the layout's table for N tokens: complex (N, hd/2) for
    ``pairs``, real (N, 2, hd) (cos, sin per channel) for ``vjepa2`` and ``halves``; ``apply(x, tab)`` rotates
    x (..., N, hd) by a table broadcastable to it.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0, layout: str = "pairs"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"rope layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        if head_dim % 2 or (layout == "pairs" and head_dim < 6):
            raise ValueError(f"head_dim {head_dim} must be even{' and >= 6' if layout == 'pairs' else ''} for 3D RoPE")
        self.head_dim, self.theta, self.layout = head_dim, theta, layout
        self._cache: dict[tuple, torch.Tensor] = {}

    def table(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        """The table of every token of ``grid`` (positions from 0), cached per (grid, device)."""
        key = (tuple(grid), str(device))
        if key not in self._cache:
            self._cache[key] = self.table_at(grid_positions(grid)).to(device)
        return self._cache[key]

    def gather(self, grid: tuple[int, int, int], idx: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """Tables of tokens ``idx`` (B, K) of ``grid``, with a head axis: (B, 1, K, ...); all tokens if idx is None."""
        tab = self.table(grid, device)
        return tab if idx is None else tab[idx].unsqueeze(1)

    def table_at(self, positions: torch.Tensor) -> torch.Tensor:
        """The table for explicit positions (N, 3) = (t, h, w)."""
        return {"pairs": self._pairs, "vjepa2": self._vjepa2, "halves": self._halves}[self.layout](positions)

    def apply(self, x: torch.Tensor, tab: torch.Tensor) -> torch.Tensor:
        """x (..., N, hd) rotated by ``tab`` (broadcastable to the layout's (..., N, ...) table)."""
        if self.layout == "pairs":  # one complex multiply: no sin/cos tables, no rotate-half copies
            xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (..., N, hd/2)
            return torch.view_as_real(xc * tab).flatten(-2).to(x.dtype)
        if self.layout == "vjepa2":
            xf = x.float()
            pairs = xf.unflatten(-1, (-1, 2))  # (..., N, hd/2, 2)
            swapped = torch.stack((-pairs[..., 1], pairs[..., 0]), -1).flatten(-2)  # (-x[2i+1], x[2i])
            return (xf * tab[..., 0, :] + swapped * tab[..., 1, :]).to(x.dtype)
        cos, sin = tab[..., 0, :].to(x.dtype), tab[..., 1, :].to(x.dtype)  # under autocast x stays bf16
        return x * cos + _rotate_half(x) * sin

    def _pairs(self, positions: torch.Tensor) -> torch.Tensor:
        bands = self.head_dim // 6  # frequencies per axis
        freq = 1.0 / self.theta ** (torch.arange(bands).float() / bands)  # (bands,)
        ang = (positions.float().unsqueeze(-1) * freq).flatten(1)  # (N, 3 * bands): t bands, h bands, w bands
        rot = torch.complex(ang.cos(), ang.sin())
        pad = self.head_dim // 2 - rot.shape[-1]
        return torch.cat([rot, torch.ones(len(rot), pad, dtype=rot.dtype)], -1) if pad else rot  # (N, hd/2)

    def _vjepa2(self, positions: torch.Tensor) -> torch.Tensor:
        seg = 2 * ((self.head_dim // 3) // 2)
        half = seg // 2
        pos = positions.float()
        omega = 1.0 / self.theta ** (torch.arange(half, dtype=torch.float32) / half)  # (s/2,)
        ang = torch.cat([(pos[:, a:a + 1] * omega).repeat(1, 2) for a in range(3)], -1)  # (N, 3s)
        cos, sin = ang.cos(), ang.sin()
        rest = self.head_dim - 3 * seg
        if rest:
            cos = torch.cat([cos, torch.ones(len(pos), rest)], -1)
            sin = torch.cat([sin, torch.zeros(len(pos), rest)], -1)
        return torch.stack([cos, sin], 1)  # (N, 2, hd)

    def _halves(self, positions: torch.Tensor) -> torch.Tensor:
        pairs = self.head_dim // 2
        p_sp = pairs // 3
        angles = []
        for axis, n in enumerate((pairs - 2 * p_sp, p_sp, p_sp)):  # (t, h, w) pairs
            inv_freq = self.theta ** (-torch.arange(n, dtype=torch.float64) / max(n, 1))  # (n,)
            angles.append(positions[:, axis:axis + 1].double() * inv_freq)  # (N, n)
        ang = torch.cat(angles, dim=-1)  # (N, pairs)
        ang = torch.cat((ang, ang), dim=-1)  # (N, hd)
        return torch.stack([ang.cos().float(), ang.sin().float()], 1)  # (N, 2, hd)
