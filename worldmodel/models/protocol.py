"""The world-model protocol: what drift, planning and the benchmarks may call on a world model.

Implemented by :class:`~worldmodel.models.world_model.LatentWorldModel` (frozen encoder + AC predictor),
:class:`~worldmodel.models.pixel_predictor.PixelWorldModel` (the same predictor on pixel patches) and by the
test oracles. Optional capabilities are protocols of their own, checked with ``isinstance``:
:class:`FineLatents` (unpooled latents for probes) and :class:`PixelSpace` (predictions are pixels, with
``decode`` back to frames).
"""
from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import torch

from worldmodel.contracts.manifest import Manifest


class Rollout(NamedTuple):
    """What a rollout predicts for H steps."""

    latents: torch.Tensor  # (B, H, N, D) predicted latents
    states: torch.Tensor | None  # (B, H, S) predicted states, None when the model predicts none


@runtime_checkable
class WorldModel(Protocol):
    """Encode observations to latents; roll latents forward under action sequences (batched, cached)."""

    frame_skip: int  # env steps per predictor step; a step's action is the stack of frame_skip env actions
    manifest: Manifest | None  # the training dataset's (contracts.manifest): env, resolution, action bounds
    state_dims: list[int]  # env state dims the state token reads (proprioception; all of them only for oracles)

    @property
    def device(self) -> torch.device:
        """Where the model's tensors live; inputs are moved there."""

    @property
    def uses_state(self) -> bool:
        """True when ``rollout`` needs ``state0`` (a state token); False: it is passed as None."""

    def encode_observation(self, frames: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) and the observed state dims (B, len(state_dims)) or None -> latents (B, N, D)
        (learned models read the frames only)."""

    def rollout(self, z0: torch.Tensor, state0: torch.Tensor | None, actions: torch.Tensor) -> Rollout:
        """z0 (B, N, D), state0 (B, len(state_dims)) | None, actions (B, H, frame_skip * A) -> latents
        (B, H, N, D) and predicted states (B, H, len(state_dims))."""


@runtime_checkable
class FineLatents(Protocol):
    """Models whose latents are pooled from finer ones (probes read the finer ones)."""

    def encode_fine(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> unpooled latents (B, N0, D)."""

    def pool_fine(self, z_fine: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Unpooled latents (B, N0, D) of height x width frames -> the model's latents (B, N, D)."""


@runtime_checkable
class PixelSpace(Protocol):
    """Models that predict pixels: ``decode`` turns predictions back into frames."""

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Predicted tokens (..., N, D) -> uint8 frames (..., H, W, 3)."""
