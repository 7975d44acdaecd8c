"""Is a world model usable on this env (or dataset)? Checked at load, before any planning, each mismatch named in
one line.

A checkpoint records the dataset manifest it was trained on (env id, action dims and bounds, state dims,
proprioception dims, resolution, frame skip). Planning it on an env that differs in any of these would crash
deep inside the model (a shape error) or, worse, run silently wrong when the shapes happen to fit (an arm's
joint torques fed as a point mass's forces), so ``wm plan`` refuses it first.
"""
from __future__ import annotations

import numpy as np

import worldmodel.envs as envs
from worldmodel.contracts.manifest import Manifest
from worldmodel.envs import protocol

BOUND_TOL = 1e-4  # action bounds may differ by float rounding


def check_env_compatible(model, env_id: str, env_kwargs: dict, resolution: int, checkpoint: str,
                         allow_other_env: bool = False) -> None:
    """Raise ValueError naming the first field in which the env differs from what the model was trained on.

    Builds the env without a renderer (no GL context yet). ``allow_other_env`` accepts another env id whose
    spaces match (transfer experiments); the dims and bounds are checked all the same.
    """
    m = model.manifest  # None: a model built without its dataset's facts (only the spaces are checked)
    own = m.env_id if m else None
    where = f"checkpoint {checkpoint} (trained on {own!r})"
    if own and env_id != own and not allow_other_env:
        raise ValueError(f"env.id={env_id!r}: {where} was trained on another env; plan it on {own!r}, "
                         f"or set allow_other_env=true when the spaces match")
    trained = m.height_width[0] if m else None
    if trained and int(resolution) != trained:
        raise ValueError(f"resolution={resolution}: {where} was trained on {trained}x{trained} frames; its encoder "
                         f"grid and predictor tokens fit that size only")
    if m and m.frame_skip != 1:
        raise ValueError(f"{where}: its dataset has frame_skip={m.frame_skip}; planning steps the env one "
                         f"action at a time (frame_skip=1)")
    env = envs.make(env_id, render=False, **env_kwargs)
    try:
        low = np.asarray(env.action_space.low, np.float32).ravel()
        high = np.asarray(env.action_space.high, np.float32).ravel()
        _, info = env.reset(seed=0)
        state_dim = int(np.asarray(info["state"]).size)
        proprio = protocol.proprio_dims(env)
    finally:
        env.close()
    if low.size != model.action_dim:
        raise ValueError(f"env.id={env_id!r} has action dim {low.size}; {where} expects {model.action_dim}")
    want_low, want_high = model.action_low.cpu().numpy(), model.action_high.cpu().numpy()
    if np.abs(low - want_low).max() > BOUND_TOL or np.abs(high - want_high).max() > BOUND_TOL:
        raise ValueError(f"env.id={env_id!r} has action bounds [{low.tolist()}, {high.tolist()}]; {where} expects "
                         f"[{want_low.tolist()}, {want_high.tolist()}]")
    if m and state_dim != m.state_dim:
        raise ValueError(f"env.id={env_id!r} has state dim {state_dim}; {where} recorded {m.state_dim}")
    if m and m.proprio_dims is not None and [int(d) for d in m.proprio_dims] != list(proprio):
        raise ValueError(f"env.id={env_id!r} declares proprio_dims {list(proprio)}; {where} recorded "
                         f"{m.proprio_dims}")


def check_dataset_compatible(model, manifest: Manifest, dataset, checkpoint: str) -> None:
    """Raise ValueError naming the first field in which a dataset differs from the model's training data: action
    dims, state dims the model reads, frame size, frame skip (drift and offline evaluation on another dataset)."""
    m = model.manifest
    where = f"dataset {dataset}"
    ckpt = f"checkpoint {checkpoint}"
    if manifest.action_dim != model.action_dim:
        raise ValueError(f"{where}: action_dim {manifest.action_dim}; {ckpt} expects {model.action_dim}")
    if model.state_dims and max(model.state_dims) >= manifest.state_dim:
        raise ValueError(f"{where}: state_dim {manifest.state_dim}; {ckpt} reads state dims {model.state_dims}")
    if m is None:
        return
    if m.proprio_dims is not None and manifest.proprio_dims is not None \
            and list(m.proprio_dims) != list(manifest.proprio_dims):
        raise ValueError(f"{where}: proprio_dims {manifest.proprio_dims}; {ckpt} recorded {m.proprio_dims}")
    if list(manifest.resolution) != list(m.resolution):
        raise ValueError(f"{where}: resolution {manifest.resolution}; {ckpt} was trained on {m.resolution}")
    if manifest.frame_skip != m.frame_skip:
        raise ValueError(f"{where}: frame_skip {manifest.frame_skip}; {ckpt} recorded {m.frame_skip}")

