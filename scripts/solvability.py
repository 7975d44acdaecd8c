"""Solvability of the worldmodel tasks under the goal-reaching protocol.

For every task and seed: build the goal with ``envs.protocol.make_goal`` (default goal_offset), then run, from
the same start, (a) the scripted state-feedback controller, (b) uniform random actions, (c) zero actions and,
for TwoRoom, (d) a straight-line greedy controller (no door logic), each for the default budget. Prints a
table and writes JSON.

    python scripts/solvability.py --seeds 50 --out runs/solvability.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import worldmodel.envs as envs  # noqa: E402
from worldmodel.envs import protocol  # noqa: E402
from worldmodel.envs.policies import PointController, RandomPolicy  # noqa: E402


def greedy_controller(env, goal_state):
    """Straight-line proportional drive to the goal position, ignoring walls (TwoRoom baseline)."""
    ctrl, target = PointController(env), np.asarray(goal_state[:2], np.float64)
    return lambda s: ctrl.act(np.asarray(s, np.float64), target).astype(np.float32)


def evaluate(env_id: str, seeds: list[int]) -> dict:
    """Success rates of scripted / random / zero (/ greedy) controllers on ``seeds`` for one task."""
    env = envs.make(env_id, render=True)
    cfg = protocol.settings(env)
    rates: dict[str, list[bool]] = {"scripted": [], "random": [], "zero": []}
    if env_id.endswith("TwoRoom-v0"):
        rates["greedy"] = []
    steps, trivial, other_room = [], 0, 0
    for seed in seeds:
        goal = protocol.make_goal(env, seed)
        _, info = env.reset(seed=seed)
        trivial += protocol.is_success(env, info["state"], goal.state)
        if env_id.endswith("TwoRoom-v0"):
            other_room += bool(np.sign(info["state"][0]) != np.sign(goal.state[0]))
        res = protocol.run_episode(env, goal, envs.scripted_controller(env, goal.state))
        rates["scripted"].append(res["success"])
        steps.append(res["steps"])
        rnd = RandomPolicy(env, np.random.default_rng(seed))
        rates["random"].append(protocol.run_episode(env, goal, rnd)["success"])
        zero = np.zeros(env.action_space.shape, np.float32)
        rates["zero"].append(protocol.run_episode(env, goal, lambda s: zero)["success"])
        if "greedy" in rates:
            rates["greedy"].append(protocol.run_episode(env, goal, greedy_controller(env, goal.state))["success"])
    env.close()
    out = {k: float(np.mean(v)) for k, v in rates.items()}
    out.update(
        seeds=len(seeds),
        scripted_steps_mean=float(np.mean(steps)),
        scripted_steps_max=int(np.max(steps)),
        goal_met_at_start=trivial / len(seeds),
        protocol=cfg,
    )
    if env_id.endswith("TwoRoom-v0"):
        out["goal_in_other_room"] = other_room / len(seeds)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="number of seeds per task")
    parser.add_argument("--first", type=int, default=0, help="first seed (seeds first..first+N-1)")
    parser.add_argument("--envs", nargs="*", default=list(envs.TASKS), help="env ids")
    parser.add_argument("--out", default="runs/solvability.json", help="JSON output path")
    args = parser.parse_args(argv)
    results, t0 = {}, time.time()
    print(f"{'task':28s} {'scripted':>8s} {'random':>7s} {'zero':>6s} {'greedy':>7s} {'steps':>6s} "
          f"{'offset':>6s} {'budget':>6s}")
    for env_id in args.envs:
        r = evaluate(env_id, list(range(args.first, args.first + args.seeds)))
        results[env_id] = r
        greedy = f"{r['greedy']:7.2f}" if "greedy" in r else f"{'-':>7s}"
        print(f"{env_id:28s} {r['scripted']:8.2f} {r['random']:7.2f} {r['zero']:6.2f} {greedy} "
              f"{r['scripted_steps_mean']:6.1f} {r['protocol']['goal_offset']:6d} {r['protocol']['budget']:6d}")
    results["seconds"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out} ({results['seconds']} s)")
    return results


if __name__ == "__main__":
    main()
