"""``wm plan``: goal-reaching evaluation of a world model with CEM/MPC, beside random and zero actions.

The episodes follow the goal protocol (:mod:`worldmodel.planning.goals`); the planner, random actions and zero
actions run on the same seeds and goals, so their rows compare episode by episode. Random actions are drawn per
predictor step and held for ``action_repeat`` env steps, like the planner's.

The model comes from ``checkpoint`` (any kind in :mod:`worldmodel.models.registry`). The env defaults to the one
the model was trained on; ``env=<name>`` (``configs/env/``) or ``env.id=<gymnasium id>`` picks another.

With ``subgoals.enabled`` the planner aims at roadmap subgoals where the way to the goal is not straight
(``worldmodel/planning/subgoals.py``); the roadmap is built from the frames the energy's probe is fit on.

Modes: ``pure`` (the default) plans from what a real robot has: frames, the agent's own proprioception (the
model's state token reads only the env's declared ``proprio_dims``), and the goal image; any probe or roadmap
is fit on recorded proprioception, never on other simulator state. ``oracle`` fits them on the full simulator
state and may weight the success criterion's dims (``energy.criterion_weight``). Every summary carries ``mode``
and ``privileged_inputs`` (empty in pure mode), see :mod:`worldmodel.planning.privilege`.

Summary: ``success_rate`` (+ ``success_ci95``, the 95% Wilson interval), ``final_distance`` (the criterion's
distance at the last step), ``env_steps`` (mean env steps used; ``env_steps_to_success`` over successes), the
same with ``_random`` and ``_zero`` suffixes, ``seconds_per_plan`` (one batched replanning step for all active
episodes; ``seconds_per_plan_full_batch`` when all ``episodes`` were active, ``..._per_episode`` divided by
them), ``subgoal_fraction`` (episode-plans aimed at a subgoal), ``episodes``, ``gifs``, ``per_episode`` rows,
and ``protocol``: every setting that defines the result.

Preemption: the planner, random and zero phases are each stored as they finish (:mod:`worldmodel.planning.phases`);
a run stopped by SIGTERM redoes only the phase it was in. Planner settings too large for memory are refused
before anything is allocated (:mod:`worldmodel.planning.budget`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from worldmodel.config import require, setting, to_dict
from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.contracts.summaries import PlanSummary, summary_of
from worldmodel.data.reader import EpisodeReader
from worldmodel.envs.config import EnvConfig
from worldmodel.models.registry import load_world_model
from worldmodel.planning.budget import check_plan_memory
from worldmodel.planning.compat import check_env_compatible
from worldmodel.planning.energy import EnergyConfig, uses_probe
from worldmodel.planning.goals import (
    DatasetStarts,
    GoalSeeds,
    make_dataset_goal_episodes,
    make_goal_episodes,
    save_gifs,
    select_dataset_starts,
    select_goal_seeds,
    stats_summary,
    timing_summary,
)
from worldmodel.planning.mpc import (
    Goals,
    PlannerController,
    PlanSettings,
    Precision,
    random_controller,
    rollout_dtype,
    zero_controller,
)
from worldmodel.planning.optimizers import PlannerConfig, planner_settings
from worldmodel.planning.phases import PhaseStore, run_key
from worldmodel.planning.privilege import Mode, privileged_inputs, proprio_dims_of
from worldmodel.planning.probe import encode_frames, fit_probe, stored_frames
from worldmodel.planning.subgoals import SubgoalConfig, SubgoalGraph
from worldmodel.planning.temporal import fit_temporal_metric
from worldmodel.utils.checkpoint import load_checkpoint
from worldmodel.utils.device import resolve_device


class Protocol(StrEnum):
    """Where goals come from: the env's goal policy from a seeded start | recorded dataset rows."""
    policy = "policy"
    dataset = "dataset"


@dataclass
class PlanConfig:
    """``wm plan`` settings; ``planner`` is a config group (configs/planner/*.yaml)."""

    out_dir: str = "runs/plan"  # where summary.json and gifs/ go
    mode: Mode = Mode.pure  # pure: frames, proprioception, goal image only | oracle: probes, roadmap on sim state
    checkpoint: str = ""  # world-model checkpoint (wm train-ac or train-pixel); required unless bootstrap
    model_kind: str = "auto"  # checkpoint kind to load as (train_ac | train_pixel), or auto (the checkpoint's own)
    bootstrap: bool = False  # no checkpoint given: train one with wm train-ac at preset=smoke (smoke only)
    bootstrap_overrides: list[str] = field(default_factory=list)  # extra overrides for the bootstrap wm train-ac
    env: EnvConfig = field(default_factory=lambda: EnvConfig(id=""))  # env=<name> or env.id=ID; "": the model's env
    allow_other_env: bool = False  # plan on an env other than the model's (its action/state spaces must still match)
    resolution: int = 0  # rendered frame size; 0: the model's training resolution
    protocol: Protocol = Protocol.policy  # goals: policy (env's goal policy, seeded start) | dataset (recorded rows)
    protocol_dataset: str = ""  # protocol=dataset: recorded episodes ("": the model's dataset, its held-out split)
    episodes: int = 50  # evaluation episodes (all planned in one batch)
    seed: int = 100_000  # episode i uses seed + i (away from collection seeds)
    goal_offset: int = 0  # env steps from the start to the goal (0: the env's default; protocol=dataset 25)
    budget: int = 0  # env steps allowed per episode (0: the env's default; protocol=dataset 50)
    reject_trivial_goals: bool = True  # replace goals that zero actions meet within the budget (they test nothing)
    execute_steps: int = 1  # planned predictor steps executed before replanning
    max_batch: int = 0  # most rollouts per model call (0: all episodes x samples at once)
    precision: Precision = Precision.fp32  # rollouts: fp32 | bf16 (autocast) | auto (bf16 on CUDA, native-bf16 CPUs)
    probe_dataset: str = ""  # dataset fitting the energy's latent probe (energy.probe_weight > 0; "": the model's)
    max_bad_fraction: float = 0.1  # corrupt probe episodes are skipped and counted; the run stops past this share
    baselines: bool = True  # also run random and zero actions on the same seeds and goals
    gifs: int = 3  # episodes saved as GIFs (observation beside goal)
    gif_fps: int = 10  # GIF frame rate
    device: str = "auto"  # auto | cpu | cuda[:i]
    threads: int = 0  # torch CPU threads (0: torch's default); 1 avoids OpenMP spin-waits on a busy machine
    planner: PlannerConfig = field(default_factory=PlannerConfig)  # the optimizer (planner= group)
    energy: EnergyConfig = field(default_factory=EnergyConfig)  # the planning energy
    subgoals: SubgoalConfig = field(default_factory=SubgoalConfig)  # roadmap subgoals (planning/subgoals.py)


# env.kwargs stays open, as for wm collect: 'env.kwargs.variation={distractors: 2}' plans on a shifted scene

ZERO_WARN = 0.2  # a zero-action success rate above this makes the goals too easy to measure anything


def goal_episodes_of(cfg, meta: CheckpointMeta) -> tuple[str | None, list[int]]:
    """protocol=dataset: (dataset, episode ids) the goals are drawn from — ``protocol_dataset`` whole, else the
    model's held-out episodes (all of its dataset when it records none); (None, []) for protocol=policy."""
    if cfg.protocol != "dataset":
        return None, []
    data = cfg.protocol_dataset or meta.dataset
    held_out = [] if cfg.protocol_dataset else meta.val_episodes
    return str(data), held_out or EpisodeReader(data).ids


@dataclass
class Setup:
    """What a plan run works with, resolved from its config and checkpoint before any env exists."""

    model: Any  # the world model (models/protocol.py)
    kind: str  # its checkpoint kind
    checkpoint: str
    meta: CheckpointMeta  # the checkpoint's: its dataset and split
    env_id: str
    env_kwargs: dict
    resolution: int
    planner: PlannerConfig
    energy: EnergyConfig
    subgoals: SubgoalConfig
    proprio: list[int]  # the env's proprioception dims
    privileged: list[str]  # what the run uses beyond frames, proprioception and the goal image


def load_setup(cfg, device: torch.device) -> Setup:
    """Check the settings, load the model and resolve the env, planner, energy and roadmap settings."""
    if not cfg.checkpoint:
        raise ValueError("wm plan: set checkpoint=PATH (a wm train-ac or train-pixel checkpoint)")
    checkpoint = str(cfg.checkpoint)
    for name, low in (("episodes", 1), ("budget", 0), ("goal_offset", 0), ("execute_steps", 1), ("resolution", 0),
                      ("planner.horizon", 1), ("planner.samples", 1), ("planner.elites", 1),
                      ("planner.iterations", 1)):
        require(name, setting(cfg, name), low)
    rollout_dtype(cfg.precision, device)  # refuses an unknown precision before anything is built
    model, kind = load_world_model(checkpoint, device, cfg.model_kind)
    meta = CheckpointMeta.of(load_checkpoint(checkpoint), str(checkpoint))  # dataset, split (probe, protocol)
    manifest = model.manifest
    env_id = cfg.env.id or (manifest.env_id if manifest else "")
    if not env_id:
        raise ValueError(f"wm plan: the checkpoint {checkpoint} does not name its env; set env=<name> or env.id=ID")
    own_kwargs = manifest.env_kwargs if manifest and env_id == manifest.env_id else {}
    env_kwargs = {**own_kwargs, **to_dict(cfg.env.kwargs)}
    resolution = int(cfg.resolution or (manifest.height_width[0] if manifest else 64))
    check_env_compatible(model, env_id, env_kwargs, resolution, checkpoint, cfg.allow_other_env)
    planner = planner_settings(to_dict(cfg.planner))
    energy = EnergyConfig(**to_dict(cfg.energy))
    check_plan_memory(model, int(cfg.episodes), planner, int(cfg.max_batch))
    subgoals = SubgoalConfig(**to_dict(cfg.subgoals))
    proprio = proprio_dims_of(env_id, env_kwargs, manifest)
    privileged = privileged_inputs(cfg.mode, model.state_dims, proprio, energy, subgoals)
    return Setup(model, kind, checkpoint, meta, env_id, env_kwargs, resolution, planner, energy, subgoals,
                 proprio, privileged)


@dataclass
class Aids:
    """What the planner is fit on recorded frames before it plans (each None when the energy and roadmap need none),
    with a record of what they were fit on (``info``, the summary's ``energy_probe``)."""

    probe: Any = None  # LatentProbe (planning/probe.py): energy.probe_weight / state_weight, the state roadmap
    temporal: Any = None  # TemporalMetric (planning/temporal.py): energy.temporal_weight
    graph: SubgoalGraph | None = None  # the subgoal roadmap
    info: dict | None = None


def planner_aids(cfg, st: Setup, exclude: list[int] | None) -> Aids:
    """The energy's probe and temporal metric and the subgoal roadmap, fit on recorded frames (never those of the
    ``exclude`` episodes), with what they were fit on."""
    energy, model = st.energy, st.model
    needs_probe = uses_probe(energy) or st.subgoals.enabled
    if not (needs_probe or energy.temporal_weight > 0):
        return Aids()
    dataset = cfg.probe_dataset or st.meta.dataset
    fine = energy.goal_fine and (energy.state_weight > 0 or st.subgoals.enabled)
    labels = st.proprio if cfg.mode == "pure" else None  # the probe's labels: recorded proprioception only
    picked, source = stored_frames(dataset, Path(st.checkpoint).parent / "planner_data", energy.probe_episodes,
                                   energy.probe_stride, state_dims=labels, max_bad_fraction=cfg.max_bad_fraction,
                                   exclude=exclude)
    frames = encode_frames(model, picked, fine=fine)
    info: dict[str, Any] = {"dataset": dataset, "frames_from": source,
                            "episodes": sorted(set(map(int, picked.episode)))}
    aids = Aids(info=info)
    if energy.temporal_weight > 0:  # frames and their order in time only: no label is read
        aids.temporal = fit_temporal_metric(frames.z, frames.episode, frames.step, energy.temporal_dim,
                                            energy.temporal_max_gap, energy.temporal_steps)
        info["temporal"] = {"labels": "none (env steps between frames of one episode)",
                            "held_out_rank_corr": aids.temporal.held_out_corr,
                            "fit_loss": round(aids.temporal.fit_loss, 3)}
    if not needs_probe:
        return aids
    probe = fit_probe(model, dataset, min_r2=energy.probe_min_r2, metric=energy.metric, fine=fine, frames=frames)
    if energy.state_weight > 0 and model.uses_state:
        probe = probe.matched(model.state_dims, labels)
    info.update({"labels": "proprio" if labels is not None else "full state", "label_dims": labels,
                 "dims": probe.dims, "r2": probe.r2, "latent_scale": probe.latent_scale, "goal_r2": probe.goal_r2})
    aids.probe = probe
    if st.subgoals.enabled:
        aids.graph = SubgoalGraph.build(frames, probe, st.subgoals, energy.probe_stride)
        info["graph"] = {"nodes": len(aids.graph.x), "edges": aids.graph.edges, "speed": aids.graph.speed}
    return aids


def choose_goals(cfg, st: Setup, goal_data: str | None, goal_ids: list[int]) -> DatasetStarts | GoalSeeds:
    """The protocol's episodes, checked on envs without a renderer before any heavy set-up: recorded rows replayed
    (``protocol=dataset``) or seeds; goals zero actions meet are replaced unless ``reject_trivial_goals=false``."""
    if goal_data is not None:
        return select_dataset_starts(st.env_id, st.env_kwargs, st.resolution, goal_data, goal_ids, int(cfg.episodes),
                                     cfg.seed, cfg.goal_offset, cfg.budget, cfg.reject_trivial_goals)
    return select_goal_seeds(st.env_id, st.env_kwargs, int(cfg.episodes), cfg.seed, cfg.goal_offset, cfg.budget,
                             cfg.reject_trivial_goals)


def goal_episodes(cfg, st: Setup, chosen: DatasetStarts | GoalSeeds):
    """The E evaluation episodes (envs that render, goals) of the chosen rows or seeds."""
    if isinstance(chosen, DatasetStarts):
        return make_dataset_goal_episodes(st.env_id, st.env_kwargs, st.resolution, chosen)
    return make_goal_episodes(st.env_id, st.env_kwargs, st.resolution, int(cfg.episodes), cfg.seed, cfg.goal_offset,
                              cfg.budget, chosen=chosen)


def run_phases(cfg, st: Setup, eps, controller: PlannerController, phases: PhaseStore) -> tuple[dict, dict]:
    """The planner's episodes, then random and zero actions on the same seeds and goals: (summary, per_episode)."""
    E, action_repeat = int(cfg.episodes), st.model.frame_skip
    t0 = time.perf_counter()
    stats, counters = phases.run(
        "planner", lambda: eps.run(controller, action_repeat, record=tuple(range(min(cfg.gifs, E))),
                                   observed_dims=st.model.state_dims),
        lambda: {"plan_seconds": controller.plan_seconds, "subgoal_plans": controller.subgoal_plans,
                 "episode_plans": controller.episode_plans})
    summary: dict[str, Any] = {"env": st.env_id, "checkpoint": st.checkpoint, "model_kind": st.kind, "episodes": E,
                               "mode": cfg.mode, "privileged_inputs": st.privileged, "proprio_dims": st.proprio,
                               "observed_state_dims": st.model.state_dims}
    summary["seconds_planner_episodes"] = round(time.perf_counter() - t0, 2)
    summary.update(stats_summary(stats, ""))
    succ_steps = stats.steps[stats.success]
    summary["env_steps_to_success"] = float(succ_steps.mean()) if len(succ_steps) else None
    summary.update(timing_summary([tuple(t) for t in counters["plan_seconds"]], E))
    if controller.graph is not None:  # share of episode-plans aimed at a subgoal rather than the goal itself
        summary["subgoal_fraction"] = counters["subgoal_plans"] / max(counters["episode_plans"], 1)
    per_episode = {"seed": eps.seeds, "success": stats.success.tolist(), "steps": stats.steps.tolist(),
                   "final_distance": stats.final_distance.round(4).tolist()}
    zero_rate = 0.0
    if cfg.baselines:
        for name, ctrl in (("random", random_controller(eps.low, eps.high, eps.seeds)),
                           ("zero", zero_controller(eps.low, eps.high))):
            base, _ = phases.run(name, lambda c=ctrl: eps.run(c, action_repeat))
            summary.update(stats_summary(base, f"_{name}"))
            per_episode[f"success_{name}"] = base.success.tolist()
            zero_rate = float(base.success.mean()) if name == "zero" else zero_rate
    if zero_rate > ZERO_WARN:
        warning = (f"zero actions already succeed in {zero_rate:.0%} of episodes "
                   f"(> {ZERO_WARN:.0%}): the goals are too easy to measure planning")
        summary["warning"] = warning
        print(f"[wm plan] warning: {warning}")
    summary["gifs"] = save_gifs(stats, eps.goal_frames, Path(cfg.out_dir) / "gifs", cfg.gif_fps) if cfg.gifs else []
    return summary, per_episode


def protocol_record(cfg, st: Setup, eps, controller: PlannerController, probe_info: dict | None, device) -> dict:
    """Every setting that defines the result, for the summary."""
    return {**eps.settings, "env": st.env_id, "env_kwargs": st.env_kwargs, "resolution": st.resolution,
            "variation": st.env_kwargs.get("variation") or {},  # the frames' factors here and in the training data
            "train_variation": (st.model.manifest.env_kwargs.get("variation") if st.model.manifest else None) or {},
            "goal_offset": eps.goal_offset, "budget": eps.budget, "execute_steps": int(cfg.execute_steps),
            "precision": cfg.precision, "rollout_dtype": controller.rollout_dtype_name,
            "action_repeat": st.model.frame_skip, "horizon_env_steps": st.planner.horizon * st.model.frame_skip,
            "seeds": eps.seeds, "seed": int(cfg.seed), "planner": asdict(st.planner), "energy": asdict(st.energy),
            "subgoals": asdict(st.subgoals), "energy_probe": probe_info,
            "baseline_random": "uniform, held action_repeat", "success": "envs.protocol.is_success at any env step",
            "device": str(device)}


def run(cfg: PlanConfig) -> PlanSummary:
    """Evaluate planning on ``cfg.episodes`` goal-reaching episodes; returns the summary dict."""
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(int(cfg.threads))
    st = load_setup(cfg, device)
    goal_data, goal_ids = goal_episodes_of(cfg, st.meta)  # protocol=dataset: the episodes planning is judged on
    chosen = choose_goals(cfg, st, goal_data, goal_ids)  # checked before the probes are fit
    same = goal_data is not None and (Path(goal_data).resolve()
                                      == Path(cfg.probe_dataset or st.meta.dataset).resolve())
    # fitted before any rendering env exists (MuJoCo's EGL + late imports crash); no evaluation frame reaches planning
    aids = planner_aids(cfg, st, goal_ids if same else None)
    probe, probe_info = aids.probe, aids.info
    eps = goal_episodes(cfg, st, chosen)
    criterion_dims = eps.settings.get("criterion_dims")  # None: the criterion reads every state dim
    if probe is not None and st.energy.criterion_weight != 1.0 and criterion_dims is not None \
            and cfg.mode == "oracle":
        probe = probe.weighted(criterion_dims, st.energy.criterion_weight)
        probe_info["dim_weights"] = [round(w, 4) for w in probe.dim_weights.tolist()]
    settings = PlanSettings(st.planner, st.energy, int(cfg.execute_steps), int(cfg.max_batch), cfg.precision)
    controller = PlannerController(st.model, Goals(eps.goal_frames, eps.seeds, eps.low, eps.high), settings, probe,
                                   aids.graph, aids.temporal)
    phases = PhaseStore(Path(cfg.out_dir), run_key(to_dict(cfg), st.checkpoint))
    figures, per_episode = run_phases(cfg, st, eps, controller, phases)
    summary = summary_of("plan", {**figures, "per_episode": per_episode,
                                  "protocol": protocol_record(cfg, st, eps, controller, probe_info, device)},
                         f"{cfg.out_dir}: plan summary")
    eps.close()
    phases.clear()
    nan = float("nan")
    print(f"[wm plan] {st.env_id}: success {summary.success_rate:.2f} "
          f"(random {summary.success_rate_random if summary.success_rate_random is not None else nan:.2f}, "
          f"zero {summary.success_rate_zero if summary.success_rate_zero is not None else nan:.2f}) over "
          f"{cfg.episodes} episodes, {summary.seconds_per_plan:.3f} s per batched plan; {cfg.mode} mode, "
          f"privileged inputs: {st.privileged or 'none'}")
    return summary
