"""Encoder + predictor trained together (``wm train-ac finetune.blocks=K``, LeWorldModel-style).

The default train-ac design keeps the pretrained encoder frozen and trains the predictor on cached latents. With
``finetune.blocks = K`` the last K blocks of the encoder (and its final norm; K = -1: the whole encoder) train with
the predictor from frames: the latents of the window's frames are computed with gradients, the predictor's
teacher-forcing and rollout losses flow into both, and SIGReg on the latents keeps the encoder from collapsing
(no stop-gradient, no EMA target). The latents follow the frame convention of
:func:`worldmodel.models.world_model.encode_observations` exactly, so the fine-tuned encoder saved with the
predictor is what drift and planning encode with.

Checkpoint layout: the trainer's model is this module, so ``checkpoint["model"]`` holds ``encoder.*`` (a complete
encoder state, frozen blocks included) and ``predictor.*``; :func:`worldmodel.models.world_model.split_state`
separates them.
"""
from __future__ import annotations

import torch
from torch import nn

from worldmodel.models.ac_predictor import ACPredictor
from worldmodel.models.world_model import pool_tokens


def trainable_blocks(encoder: nn.Module, blocks: int) -> int:
    """Unfreeze the last ``blocks`` transformer blocks and the final norm of a VideoViT (``blocks = -1`` or more
    than its depth: every parameter); returns how many blocks train. Other encoders are refused."""
    if not hasattr(encoder, "blocks") or not hasattr(encoder, "images_to_tokens"):
        raise ValueError(f"finetune.blocks={blocks}: only VideoViT encoders (ours, vjepa2:) can be fine-tuned, "
                         f"not {type(encoder).__name__}")
    depth = len(encoder.blocks)
    encoder.requires_grad_(False)
    if blocks < 0 or blocks >= depth:
        encoder.requires_grad_(True)
        return depth
    for blk in list(encoder.blocks)[depth - blocks:]:
        blk.requires_grad_(True)
    encoder.norm.requires_grad_(True)
    return blocks


class EncoderPredictor(nn.Module):
    """A frame encoder (partly trainable) and the AC predictor as one module (one optimizer, one DDP wrapper)."""

    def __init__(self, encoder: nn.Module, predictor: ACPredictor, pool: int, blocks: int):
        super().__init__()
        self.encoder, self.predictor, self.pool = encoder, predictor, int(pool)
        self.blocks = trainable_blocks(encoder, blocks)

    def train(self, mode: bool = True):
        """Frozen-encoder parts stay in eval mode (no dropout or drop-path on features they never learn)."""
        super().train(mode)
        self.encoder.train(mode and self.blocks == len(self.encoder.blocks))
        return self

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, T, H, W, 3) -> latents (B, T, N, D) with gradients (the observation convention)."""
        B, T = frames.shape[:2]
        flat = frames.reshape(B * T, *frames.shape[2:])  # (B*T, H, W, 3)
        z = pool_tokens(self.encoder, self.encoder.images_to_tokens(flat), *flat.shape[1:3], self.pool)  # (B*T, N, D)
        return z.reshape(B, T, *z.shape[1:])

    def forward(self, frames: torch.Tensor, actions: torch.Tensor, states: torch.Tensor | None,
                rollout_steps: int):
        """frames (B, T+1, H, W, 3) uint8, actions (B, T, A), states (B, T, S) | None ->
        (z (B, T+1, N, D), z_tf, s_tf, z_roll, s_roll) as :meth:`ACPredictor.forward` on z[:, :T]."""
        z = self.encode(frames)
        T = actions.shape[1]
        return (z, *self.predictor(z[:, :T], actions, states, rollout_steps=rollout_steps))
