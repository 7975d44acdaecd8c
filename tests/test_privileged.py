"""Pure mode: no simulator state beyond proprioception reaches the model, the probes, the roadmap or the energy.

PushBlock's proprioception is the pusher; the block's pose is simulator state. Replacing the block's dims — with
another episode's values in the training data the planner's probes and roadmap are fit on, and with NaN in every
state the env reports while planning — must leave every plan bit-identical."""
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from helpers import run_json

import worldmodel.envs as envs
from worldmodel.commands import compose_config
from worldmodel.config import to_dict
from worldmodel.data.episodes import episode_paths, read_manifest
from worldmodel.envs import protocol
from worldmodel.planning.energy import EnergyConfig
from worldmodel.planning.mpc import PlannerController
from worldmodel.planning.privilege import privileged_inputs
from worldmodel.planning.subgoals import SubgoalConfig

PUSHER = [0, 1, 6, 7]


class HideBlock(gym.Wrapper):
    """Reports NaN for every state dim that is not the pusher's (the success check then never fires); off while
    the protocol makes the goal (its scripted goal policy reads the block, as the evaluation may)."""

    hide = True

    def _hide(self, info):
        if not self.hide:
            return info
        info = dict(info)
        state = np.array(info["state"], np.float32)
        state[[d for d in range(len(state)) if d not in PUSHER]] = np.nan
        info["state"] = state
        return info

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        return obs, self._hide(info)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return obs, r, term, trunc, self._hide(info)


def swap_block_in_dataset(src: Path, dst: Path) -> None:
    """A copy of the dataset whose non-pusher state dims come from another episode (time-reversed)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("latent_cache"))
    ids = read_manifest(dst).episode_ids
    states = {}
    for i in ids:
        with np.load(episode_paths(src, i)[1]) as z:
            states[i] = z["states"]
    for k, i in enumerate(ids):
        with np.load(episode_paths(dst, i)[1]) as z:
            arrays = dict(z)
        other = states[ids[(k + 1) % len(ids)]][::-1]
        block = [d for d in range(arrays["states"].shape[1]) if d not in PUSHER]
        n = min(len(other), len(arrays["states"]))
        arrays["states"][:n, block] = other[:n, block] + 0.25
        with open(episode_paths(dst, i)[1], "wb") as f:
            np.savez(f, **arrays)


@pytest.fixture(scope="module", params=[0, 2], ids=["plain", "keypoints"])
def pushblock_model(tmp_path_factory, request):
    """A PushBlock predictor, plain or with 2 scene keypoints read from the frames (they must find the block from
    pixels: no block state reaches them either)."""
    root = tmp_path_factory.mktemp("pushblock")
    data = root / "data"
    run_json("collect", ["preset=smoke", "env=pushblock", "resolution=32", "episodes=6", f"out_dir={data}"])
    s = run_json("train-ac", ["preset=smoke", f"dataset={data}", f"out_dir={root / 'ac'}",
                                 f"keypoints.num={request.param}", "keypoints.steps=20"])
    return root, data, s["checkpoint"]


def test_state_token_carries_proprioception_only(pushblock_model):
    from worldmodel.models.registry import load_world_model

    _, data, ckpt = pushblock_model
    assert read_manifest(data).proprio_dims == PUSHER
    model, _ = load_world_model(ckpt)
    assert model.state_dims == PUSHER and model.predictor.cfg.state_dim == len(PUSHER) + model.scene_dim


def test_plans_ignore_non_proprio_state(pushblock_model, tmp_path, monkeypatch):
    root, data, ckpt = pushblock_model
    hidden = tmp_path / "hidden"
    swap_block_in_dataset(data, hidden)
    plans = {}
    call = PlannerController.__call__

    def recording(self, active, frames, states):
        out = call(self, active, frames, states)
        plans.setdefault(key, []).append(out.copy())
        return out

    monkeypatch.setattr(PlannerController, "__call__", recording)
    args = ["preset=smoke", f"checkpoint={ckpt}", "episodes=3", "goal_offset=50", "budget=6", "gifs=0",
            "baselines=false", "energy.state_weight=1", "energy.probe_weight=0.5", "energy.temporal_weight=1",
            "subgoals.enabled=true", "energy.probe_episodes=6"]
    key = "true"
    s_true = run_json("plan", args + [f"probe_dataset={data}", f"out_dir={tmp_path / 'a'}"])
    key = "hidden"
    make, make_goal = envs.make, protocol.make_goal

    def goal_in_the_open(env, *a, **kw):
        env.hide = False
        try:
            return make_goal(env, *a, **kw)
        finally:
            env.hide = True

    monkeypatch.setattr(envs, "make", lambda *a, **kw: HideBlock(make(*a, **kw)))
    monkeypatch.setattr(protocol, "make_goal", goal_in_the_open)
    run_json("plan", args + [f"probe_dataset={hidden}", f"out_dir={tmp_path / 'b'}"])
    assert s_true["privileged_inputs"] == [] and s_true["mode"] == "pure"
    assert len(plans["true"]) == len(plans["hidden"]) > 0
    for a, b in zip(plans["true"], plans["hidden"]):
        np.testing.assert_array_equal(a, b)
    # the oracle reads the block: its run records the privileged inputs it used
    s_oracle = run_json("plan", args + ["mode=oracle", "energy.criterion_weight=3", "energy.state_weight=0",
                                           f"probe_dataset={data}",
                                           f"out_dir={tmp_path / 'c'}"])
    assert s_oracle["mode"] == "oracle" and len(s_oracle["privileged_inputs"]) == 3


def test_pure_mode_refuses_privileged_settings(pushblock_model, tmp_path):
    _, _, ckpt = pushblock_model
    with pytest.raises(ValueError, match="criterion_weight"):
        run_json("plan", ["preset=smoke", f"checkpoint={ckpt}", "energy.criterion_weight=3",
                             f"out_dir={tmp_path}"])


def test_oracle_rows_list_what_they_used():
    full, proprio = [0, 1, 2, 3], [0, 1]
    state_graph = privileged_inputs("oracle", proprio, proprio, EnergyConfig(state_weight=1.0),
                                    SubgoalConfig(enabled=True))
    assert any("roadmap at the full simulator states" in line for line in state_graph)
    latent_graph = privileged_inputs("oracle", full, proprio, EnergyConfig(state_weight=0.0),
                                     SubgoalConfig(enabled=True, space="latent"))
    assert len(latent_graph) == 1 and latent_graph[0].startswith("state token reads simulator state dims [2, 3]")
    assert privileged_inputs("pure", proprio, proprio, EnergyConfig(state_weight=1.0),
                             SubgoalConfig(enabled=True, space="latent")) == []


def test_the_cpu_default_energy_is_latent():
    """The presets plan on a latent energy (the temporal metric, fit on frame order alone): no probe of
    proprioception or state ranks plans and no roadmap over recorded states aims them."""
    for preset in ("cpu", "gpu"):
        cfg = compose_config("plan", [f"preset={preset}", "checkpoint=x.pt"])
        energy, subgoals = EnergyConfig(**to_dict(cfg.energy)), SubgoalConfig(**to_dict(cfg.subgoals))
        assert energy.temporal_weight > 0 and energy.state_weight == 0 and energy.probe_weight == 0, preset
        assert not subgoals.enabled, preset
        assert privileged_inputs("pure", [0, 1], [0, 1], energy, subgoals) == []
