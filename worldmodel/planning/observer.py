"""What the planner sees of a frame, decided once per model: latents, the state token's input, the probe's reading.

An :class:`Observer` is built once for a (model, probe) pair and resolves the model's capabilities there — whether
its latents pool finer ones a kernel goal probe reads (:class:`~worldmodel.models.protocol.FineLatents`), whether it
reads scene keypoints from them, whether its state token has an input of its own — so the controller only asks
``observer(frames, states, read)`` and never inspects the model.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from worldmodel.models.protocol import FineLatents, WorldModel


class Observation(NamedTuple):
    """One batch of observed frames, as the planner uses them."""

    latents: torch.Tensor  # (B, N, D) the model's latents
    state: torch.Tensor | None  # (B, K) standardized state the probe reads from the frames, when asked
    fine: torch.Tensor | None  # (B, N0, D) unpooled latents, when they were computed


class Observer:
    """Frames (B, H, W, 3) uint8 and observed state dims (B, S') -> :class:`Observation` and the state token's input.

    Args:
        model: the world model (``encode_observation``; optionally ``encode_fine``/``pool_fine``, ``keypoints``,
            ``state_input``).
        probe: the planner's latent probe (``planning/probe.py``) or None; it is fitted before and never changed here.
    """

    def __init__(self, model: WorldModel, probe=None):
        self.model, self.probe, self.device = model, probe, model.device
        self.fine_probe = (probe is not None and probe.goal_probe is not None and isinstance(model, FineLatents))
        self.keypoints = getattr(model, "keypoints", None) is not None  # scene keypoints read unpooled latents
        self.own_state_input = hasattr(model, "state_input")  # proprioception (+ keypoints) built by the model

    @torch.no_grad()
    def __call__(self, frames: np.ndarray, states: np.ndarray | None, read: bool) -> Observation:
        """Encode the frames once (unpooled and pooled when a kernel read-out or the keypoints need the unpooled
        latents; ``pool_fine`` equals ``encode`` then); with ``read`` the probe's standardized state reading."""
        f = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        fine_probe = read and self.fine_probe
        if not (fine_probe or self.keypoints):
            s = None if states is None else torch.as_tensor(states, dtype=torch.float32, device=self.device)
            z = self.model.encode_observation(f, s)  # (B, N, D)
            return Observation(z, self.probe.goal_state(z) if read else None, None)
        z_fine = self.model.encode_fine(f)  # (B, N0, D)
        z = self.model.pool_fine(z_fine, f.shape[1], f.shape[2])  # (B, N, D)
        if not read:
            return Observation(z, None, z_fine)
        state = self.probe.goal_state_fine(z_fine.float()) if fine_probe else self.probe.goal_state(z)
        return Observation(z, state, z_fine)

    def state_input(self, frames: np.ndarray, states: np.ndarray, fine: torch.Tensor | None) -> torch.Tensor:
        """The state token's input (B, S): the model's own (proprioception, plus keypoints it reads from the frames
        or from their unpooled latents ``fine``) where it has one, else the observed states."""
        if self.own_state_input:
            return self.model.state_input(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device), states, fine)
        return torch.as_tensor(states, dtype=torch.float32, device=self.device)
