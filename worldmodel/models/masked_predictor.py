"""V-JEPA masked predictor: from the context tokens, predict the encoder features of the masked tokens.

A narrow transformer: context features are projected to the predictor width, one learned mask token is placed
at every target position, and the joint sequence runs through rotary blocks in which each token (context or
mask) carries the 3D rotary position of its own grid cell. The mask-token outputs are projected back to the
encoder width.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from worldmodel.models.rope import Rope3D
from worldmodel.models.video_vit import init_transformer, make_blocks


@dataclass
class PredictorConfig:
    # predictor token width (narrower than the encoder)
    embed_dim: int = 96
    # predictor transformer blocks
    depth: int = 4
    # attention heads (head_dim a multiple of 6 uses every channel for RoPE)
    num_heads: int = 4
    # MLP hidden width / embed_dim
    mlp_ratio: float = 4.0
    # RoPE base
    rope_theta: float = 10000.0


class MaskedPredictor(nn.Module):
    """Predicts target features of masked tokens from visible (context) tokens."""

    def __init__(self, cfg: PredictorConfig, encoder_dim: int):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(encoder_dim, cfg.embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.rope = Rope3D(cfg.embed_dim // cfg.num_heads, cfg.rope_theta)
        self.blocks = make_blocks(cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, 0.0, self.rope.apply)
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.proj = nn.Linear(cfg.embed_dim, encoder_dim)
        init_transformer(self, self.blocks)
        trunc_normal_(self.mask_token, std=0.02)

    def forward(self, ctx: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor,
                grid: tuple[int, int, int]) -> torch.Tensor:
        """Predict target-token features.

        Args:
            ctx: (B, K, D) context-encoder outputs for the visible tokens.
            ctx_idx: (B, K) grid indices of those tokens.
            tgt_idx: (B, M) grid indices of the tokens to predict.
            grid: token grid (t, h, w) the indices refer to.
        Returns:
            (B, M, D) predicted features of the target tokens.
        """
        B, K, _ = ctx.shape
        M = tgt_idx.shape[1]
        x = torch.cat([self.embed(ctx), self.mask_token.expand(B, M, -1).to(ctx.dtype)], dim=1)  # (B, K+M, Dp)
        idx = torch.cat([ctx_idx, tgt_idx], dim=1)  # (B, K+M)
        rope = self.rope.gather(grid, idx, ctx.device)  # (B, 1, K+M, hd/2) complex rotations
        for blk in self.blocks:
            x = blk(x, rope=rope)
        return self.proj(self.norm(x[:, K:]))  # (B, M, D)
