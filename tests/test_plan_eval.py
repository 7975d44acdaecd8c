"""MPC, goal protocol and bookkeeping with an oracle world model (no learning involved), and `wm plan` smoke."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401  importing triton after a MuJoCo EGL context exists segfaults; import it first

os.environ.setdefault("MUJOCO_GL", "egl")

envs = pytest.importorskip("envs")

from worldmodel.models.protocol import Rollout, WorldModel  # noqa: E402
from worldmodel.planning.energy import EnergyConfig  # noqa: E402
from worldmodel.planning.goals import make_goal_episodes, timing_summary, wilson_interval  # noqa: E402
from worldmodel.planning.mpc import (  # noqa: E402
    Goals,
    PlannerController,
    PlanSettings,
    random_controller,
    zero_controller,
)
from worldmodel.planning.optimizers import PlannerConfig  # noqa: E402

ENV = "worldmodel/PointReach-v0"


class LinearOracle:
    """A 'world model' whose latent IS the simulator state (one token): s' = s Ā^T + a B̄^T, fit by least
    squares on random transitions of the real env (a point mass is linear away from the walls).

    Follows the world-model protocol: ``encode_observation`` (frames, states) -> (B, 1, S) and
    ``rollout(z0, state0, actions (B, H, frame_skip * A)) -> Rollout((B, H, 1, S), None)``.
    """

    device = torch.device("cpu")
    uses_state = True
    manifest = None  # built without a dataset
    state_dims = [0, 1, 2, 3]  # an oracle: it reads the whole simulator state

    def __init__(self, A_mat, B_mat, frame_skip=1, scale=(1.0, 1.0, 0.1, 0.1)):
        self.A_mat, self.B_mat = A_mat, B_mat  # (S, S), (S, A)
        self.frame_skip = frame_skip
        self.scale = torch.tensor(scale)  # latent = state * scale (velocities matter less than positions)
        self.calls = []

    def encode_observation(self, frames, states):
        return (states * self.scale)[:, None]  # (B, 1, S)

    def rollout(self, z0, state0, actions):
        self.calls.append(tuple(actions.shape))
        B, H, _ = actions.shape
        a = actions.reshape(B, H, self.frame_skip, -1)  # (B, H, r, A) env actions in time order
        s, out = state0, []
        for h in range(H):
            for r in range(self.frame_skip):
                s = s @ self.A_mat.T + a[:, h, r] @ self.B_mat.T  # (B, S)
            out.append(s * self.scale)
        return Rollout(torch.stack(out, 1)[:, :, None], None)  # (B, H, 1, S)


def fit_oracle(frame_skip=1) -> LinearOracle:
    env = envs.make(ENV, resolution=32, render=False)
    rng = np.random.default_rng(0)
    X, Y = [], []
    for ep in range(4):
        _, info = env.reset(seed=ep)
        s = info["state"]
        for _ in range(40):
            a = rng.uniform(-1, 1, 2).astype(np.float32)
            _, _, _, _, info = env.step(a)
            X.append(np.concatenate([s, a]))
            Y.append(info["state"])
            s = info["state"]
    sol = np.linalg.lstsq(np.array(X), np.array(Y), rcond=None)[0].T  # (S, S + A)
    sol = torch.tensor(sol, dtype=torch.float32)
    return LinearOracle(sol[:, :4], sol[:, 4:], frame_skip=frame_skip)


@pytest.mark.parametrize("frame_skip,execute_steps", [(1, 1), (2, 2)])
def test_mpc_with_oracle_solves_point_reach(frame_skip, execute_steps):
    E = 4
    eps = make_goal_episodes(ENV, {}, 32, E, seed=500)
    model = fit_oracle(frame_skip)
    assert isinstance(model, WorldModel)
    planner = PlannerConfig(horizon=4, samples=32, elites=4, iterations=2)
    goals = Goals(eps.goal_frames, eps.seeds, eps.low, eps.high, observations=eps.goal_states)
    ctrl = PlannerController(model, goals, PlanSettings(planner, EnergyConfig(), execute_steps))
    stats = eps.run(ctrl, frame_skip, record=(0,))
    assert stats.success.all(), stats
    assert (stats.final_distance < 0.12).all() and (stats.steps <= eps.budget).all()
    # the first call plans for all E episodes in one batch; finished episodes leave the batch
    assert model.calls[0] == (E * planner.samples, planner.horizon, frame_skip * 2)
    assert ctrl.plan_seconds[0][1] == E and ctrl.plan_seconds[-1][1] <= E
    # the recorded episode kept one frame per env step, plus the start frame
    assert len(stats.frames[0]) == stats.steps[0] + 1
    # replanning happened every execute_steps * frame_skip env steps
    assert len(ctrl.plan_seconds) >= int(np.ceil(stats.steps.max() / (execute_steps * frame_skip)))

    zero = eps.run(zero_controller(eps.low, eps.high), frame_skip)
    rand = eps.run(random_controller(eps.low, eps.high, eps.seeds), frame_skip)
    assert not zero.success.any() and (zero.steps == eps.budget).all()  # the point never moves
    assert rand.success.sum() < stats.success.sum()
    timing = timing_summary(ctrl.plan_seconds, E)
    assert timing["plan_calls"] == len(ctrl.plan_seconds) and timing["seconds_per_plan"] > 0
    eps.close()


def test_wilson_interval():
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.94
    lo, hi = wilson_interval(0, 50)
    assert lo == 0.0 and 0.06 < hi < 0.08
    lo, hi = wilson_interval(25, 50)
    assert lo < 0.5 < hi


def test_wm_plan_smoke(tmp_path: Path):
    from helpers import run_json

    try:
        import worldmodel.data.collect  # noqa: F401
        import worldmodel.data.rollouts  # noqa: F401
    except ImportError:
        pytest.skip("wm collect (worldmodel.data.collect/rollouts) has not landed: train-ac smoke cannot bootstrap")
    summary = run_json("plan", ["preset=smoke", f"out_dir={tmp_path}"])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    for key in ("success_rate", "success_rate_random", "success_rate_zero", "episodes", "seconds_per_plan",
                "protocol", "gifs", "success_ci95"):
        assert key in on_disk, key
    assert on_disk["episodes"] == summary["episodes"] == 2
    for key in ("goal_offset", "budget", "execute_steps", "action_repeat", "planner", "seeds"):
        assert key in on_disk["protocol"], key
    assert all(Path(p).is_file() for p in on_disk["gifs"]) and on_disk["gifs"]
    # the same tiny model (reused from out_dir) with gradient refinement through the real predictor and the
    # probe/state energy terms
    again = run_json("plan", ["preset=smoke", f"out_dir={tmp_path}", "planner=grad", "energy.state_weight=1",
                                 "energy.probe_weight=0.5", "energy.steps=min", "gifs=0", "baselines=false",
                                 "subgoals.enabled=true"])
    assert again["checkpoint"] == summary["checkpoint"] and again["gifs"] == []
    assert again["protocol"]["energy_probe"]["dims"] and again["success_rate_random"] is None
    assert again["protocol"]["energy_probe"]["graph"]["nodes"] > 0 and 0 <= again["subgoal_fraction"] <= 1
    # test-on-shifted: the env's factors of variation set at plan time, apart from the training data's
    shifted = run_json("plan", ["preset=smoke", f"out_dir={tmp_path}", "gifs=0", "baselines=false",
                                   "env.kwargs.variation={distractors: 2, frame_noise: 4.0}"])
    assert shifted["protocol"]["variation"] == {"distractors": 2, "frame_noise": 4.0}
    assert shifted["protocol"]["train_variation"] == {} and shifted["privileged_inputs"] == []


def test_pusht_collect_train_plan_from_the_cli(tmp_path: Path):
    """PushT goes through wm collect, train-ac and plan like the other tasks; the pose criterion is recorded."""
    from helpers import run_json

    run_json("collect", ["preset=smoke", "env=pusht", "resolution=32", f"out_dir={tmp_path / 'data'}"])
    ac = run_json("train-ac", ["preset=smoke", f"dataset={tmp_path / 'data'}", f"out_dir={tmp_path / 'ac'}"])
    plan = run_json("plan", ["preset=smoke", f"checkpoint={ac['checkpoint']}", "gifs=0", f"out_dir={tmp_path / 'p'}"])
    assert plan["env"] == "worldmodel/PushT-v0" and plan["privileged_inputs"] == []
    assert "AND" in plan["protocol"]["criterion"] and plan["protocol"]["proprio_dims"] == [0, 1, 6, 7]
