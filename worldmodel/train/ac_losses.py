"""The losses of ``wm train-ac`` and ``wm train-pixel`` on one batch of windows (module docstring of
:mod:`worldmodel.train.ac`): teacher forcing, rollout, the state terms and the copy-last reference."""
from __future__ import annotations

from enum import StrEnum


class LatentLoss(StrEnum):
    """Latent loss of the predictor: l1 (V-JEPA 2-AC) | l2 (the conditional mean)."""
    l1 = "l1"
    l2 = "l2"


LATENT_LOSSES = {LatentLoss.l1: lambda d: d.abs().mean(), LatentLoss.l2: lambda d: d.pow(2).mean()}


def prediction_losses(z, preds, s, rollout_steps: int, norm_states, loss: str = "l1") -> dict:
    """Teacher-forcing, rollout (and state) losses of predictions ``preds`` = (z_tf, s_tf, z_roll, s_roll)
    (:meth:`ACPredictor.forward`) against the window's latents z (B, T+1, N, D) and states s (B, T+1, S)."""
    z_tf, s_tf, z_ro, s_ro = preds
    latent_loss = LATENT_LOSSES[loss]
    out = {"tf": latent_loss(z_tf - z[:, 1:]), "rollout": latent_loss(z_ro - z[:, 1 : rollout_steps + 1])}
    if norm_states is not None:
        out["state_tf"] = (norm_states(s_tf) - norm_states(s[:, 1:])).abs().mean()
        out["state_rollout"] = (norm_states(s_ro) - norm_states(s[:, 1 : rollout_steps + 1])).abs().mean()
    out["copy_last"] = latent_loss(z[:, :-1] - z[:, 1:]).detach()  # reference: predict z[t+1] = z[t]
    return out


def ac_losses(model, batch: dict, rollout_steps: int, norm_states, loss: str = "l1") -> dict:
    """Teacher-forcing and rollout losses of one batch (tensors on the model's device)."""
    z, a, s = batch["z"], batch["actions"], batch["states"]  # (B, T+1, N, D), (B, T, A), (B, T+1, S)
    T = a.shape[1]
    preds = model(z[:, :T], a, s[:, :T] if norm_states is not None else None, rollout_steps=rollout_steps)
    return prediction_losses(z, preds, s, rollout_steps, norm_states, loss)
