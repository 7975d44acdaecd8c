"""What the planner may see, and the record of anything beyond it (``privileged_inputs`` in every plan summary).

A real robot has its camera frames, its own body's readings (proprioception: the env's ``proprio_dims``) and a
goal image. In ``pure`` mode that is all the planner gets: the model's state token reads proprioception only, the
goal is encoded from its image, and any learned part of the planner (probes, the roadmap) is fit on recorded
proprioception. Everything else the simulator knows (object poses, the success criterion's dims, true states)
is for evaluation, or for runs marked ``oracle``, whose summaries list each such input.
"""
from __future__ import annotations

from enum import StrEnum

import worldmodel.envs as envs
from worldmodel.contracts.manifest import Manifest
from worldmodel.envs import protocol
from worldmodel.planning.energy import EnergyConfig
from worldmodel.planning.subgoals import SubgoalConfig


class Mode(StrEnum):
    """What a plan run may use: pure (frames, proprioception, the goal image) | oracle (full simulator state)."""
    pure = "pure"
    oracle = "oracle"


MODES = tuple(m.value for m in Mode)


def proprio_dims_of(env_id: str, env_kwargs: dict, manifest: Manifest | None) -> list[int]:
    """The env's proprioception dims: from the dataset's manifest, else from the env itself (built without a
    renderer, so no GL context exists yet)."""
    if manifest is not None and manifest.env_id == env_id and manifest.proprio_dims is not None:
        return manifest.state_token_dims("proprio")
    env = envs.make(env_id, render=False, **env_kwargs)
    try:
        return protocol.proprio_dims(env)
    finally:
        env.close()


def privileged_inputs(mode: str, state_dims: list[int], proprio: list[int], energy: EnergyConfig,
                      subgoals: SubgoalConfig) -> list[str]:
    """One line per input beyond frames, proprioception and the goal image; [] in a pure run.

    Raises ValueError for a pure run configured to use privileged state (name the setting to change)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; expected one of {list(MODES)}")
    out = []
    extra = sorted(set(state_dims) - set(proprio))
    if extra:
        out.append(f"state token reads simulator state dims {extra} beyond proprioception {proprio} "
                   "(a predictor trained with state_dims=all)")
    if mode == "oracle":
        if energy.probe_weight > 0 or energy.state_weight > 0:
            out.append("energy probes fit on the full simulator state of training frames")
        if subgoals.enabled and subgoals.space != "latent":
            out.append("subgoal roadmap at the full simulator states of training frames")
        elif subgoals.enabled and energy.state_weight > 0:
            out.append("latent roadmap's subgoals carry the full simulator states of training frames (state term)")
        if energy.criterion_weight != 1.0:
            out.append(f"success-criterion dims weighted x{energy.criterion_weight} in the energy")
    elif energy.criterion_weight != 1.0:
        raise ValueError(f"energy.criterion_weight={energy.criterion_weight} weights the success criterion's dims, "
                         "which a pure run may not know; set energy.criterion_weight=1 or mode=oracle")
    if mode == "pure" and out:
        raise ValueError(f"mode=pure but the model reads privileged state: {out[0]}; retrain with "
                         "state_dims=proprio or plan with mode=oracle")
    return out
