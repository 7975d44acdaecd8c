"""Every command's ``summary.json`` as a dataclass: one class per command, written with :func:`to_dict` and read
back with :func:`load_summary` (validated; a missing required field is one line naming the file and the field).

Each class declares the figures other stages read; what a command records beyond them (per-variant details such as
fine-tuning monitors, a bench target's timings) travels in ``extra`` and round-trips unchanged. Optional fields are
``None`` where a run did not produce them (no baselines, no probe, no pixel model).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from worldmodel.contracts.headline import Headline
from worldmodel.contracts.records import from_dict


@dataclass(frozen=True)
class Summary:
    """What every command's summary has: the command and its wall-clock seconds (set by the command runner)."""

    command: str = ""
    seconds: float | None = None
    extra: dict = field(default_factory=dict)  # figures this class does not declare


@dataclass(frozen=True)
class DataSummary(Summary):
    """``wm data``: the dataset's layout and what was done (inspect | preview | convert)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("action", "format", "path", "episodes")

    action: str = ""
    format: str = ""
    path: str = ""
    episodes: int = 0
    steps: int = 0
    lengths: list[int] = field(default_factory=list)
    length_min: int = 0
    length_max: int = 0
    fps: float | None = None
    keys: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=dict)
    action_low: list | None = None
    action_high: list | None = None
    all_keys: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    output: str | None = None  # convert
    to: str | None = None
    converted: int | None = None
    preview_png: str | None = None  # preview
    preview_gif: str | None = None
    previewed: int | None = None


@dataclass(frozen=True)
class CollectSummary(Summary):
    """``wm collect``: the dataset's size after the run and what this run added."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("dataset", "episodes", "frames")

    dataset: str = ""
    episodes: int = 0
    frames: int = 0
    new_episodes: int = 0
    new_frames: int = 0
    frames_per_s: float = 0.0
    collect_seconds: float = 0.0
    env_id: str = ""
    policy: str = ""
    workers: int = 1
    steps: int = 0
    resolution: int = 0
    coverage: dict = field(default_factory=dict)  # state-space coverage statistics of the whole dataset
    warnings: list[str] = field(default_factory=list)  # dataset checks that failed (static frames, agent out of view)


@dataclass(frozen=True)
class PretrainSummary(Summary):
    """``wm pretrain``: losses, throughput and the encoder probe (pretrained vs random-init, when probed)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("checkpoint", "steps")

    checkpoint: str = ""
    steps: int = 0
    start_step: int = 0
    final_loss: float | None = None
    final_pred_loss: float | None = None
    regularizer: str = ""
    embed_dim: int = 0
    tokens_per_clip: int = 0
    videos: int = 0
    bad_videos: int = 0
    bad_video_files: list = field(default_factory=list)
    train_seconds: float | None = None
    world_size: int = 1
    tokens_per_s: float | None = None
    probe_r2: float | None = None
    probe_r2_random_init: float | None = None
    probe_r2_margin: float | None = None
    probe_r2_coords: float | None = None  # the same probe given each token's grid coordinates
    probe_r2_coords_random_init: float | None = None
    probe_r2_coords_per_factor: dict | None = None
    probe_r2_coords_per_factor_random_init: dict | None = None
    probe_r2_ridge: float | None = None
    probe_r2_ridge_random_init: float | None = None
    probe_r2_per_factor: dict | None = None
    probe_r2_per_factor_random_init: dict | None = None
    effective_rank: float | None = None
    effective_rank_random_init: float | None = None
    probe_setting: dict | None = None
    probe_clips: int | None = None
    probe_seconds: float | None = None


@dataclass(frozen=True)
class PredictorSummary(Summary):
    """What train-ac and train-pixel share: the checkpoint, data, losses (train means and held-out)."""

    checkpoint: str = ""
    dataset: str = ""
    steps: int = 0
    parameters: int = 0
    tokens_per_frame: int = 0
    final_loss: float | None = None
    loss_tf: float | None = None
    loss_rollout: float | None = None
    loss_state: float | None = None
    loss_copy_last: float | None = None
    val_loss_tf: float | None = None
    val_loss_rollout: float | None = None
    val_loss_state_tf: float | None = None
    val_loss_state_rollout: float | None = None
    val_loss_copy_last: float | None = None
    episodes_skipped: int = 0
    skipped_episodes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainACSummary(PredictorSummary):
    """``wm train-ac``: the action-conditioned predictor on a frozen (or fine-tuned) encoder."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("checkpoint", "dataset", "steps", "encoder_checkpoint")

    encoder_checkpoint: str = ""
    encoder: str = ""
    encoder_describe: str = ""
    encoder_finetuned_blocks: int = 0
    latent_cache: str | None = None
    latent_cache_hit: bool | None = None
    scene_keypoints: int = 0
    keypoints_fit_loss: float | None = None


@dataclass(frozen=True)
class TrainPixelSummary(PredictorSummary):
    """``wm train-pixel``: the pixel baseline matched to a latent model's budget."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("checkpoint", "dataset", "steps", "latent_checkpoint")

    latent_checkpoint: str = ""
    patch_size: int = 0
    img_size: int = 0
    token_dim: int = 0
    params_pixel: int = 0
    params_latent: int = 0
    params_ratio: float | None = None
    budget_mismatch: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DriftSummary(Summary):
    """``wm drift``: error against horizon (latent, probe, copy-last, pixel when given) and energy landscapes."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("checkpoint", "dataset", "horizons", "latent_l1")

    checkpoint: str = ""
    dataset: str = ""
    env_id: str = ""
    plot: str = ""
    frame_skip: int = 1
    episodes: int = 0
    windows: int = 0
    horizons: list[int] = field(default_factory=list)
    latent_l1: list[float] = field(default_factory=list)
    latent_rel_error: list[float] = field(default_factory=list)
    latent_l1_copy_last: list[float] | None = None
    latent_rel_error_copy_last: list[float] | None = None
    probe_error: list[float] | None = None
    probe_error_copy_last: list[float] | None = None
    probe_error_gt: list[float] | None = None
    probe_error_all_dims: list[float] | None = None
    probe_error_all_dims_copy_last: list[float] | None = None
    state_head_error: list[float] | None = None
    probe_error_pixel: list[float] | None = None
    l1_pixel: list[float] | None = None
    rel_error_pixel: list[float] | None = None
    probe_state_dims: list | None = None
    probe_r2: dict | None = None
    probe_lambda: float | None = None
    probe_val_error: float | None = None
    probe_frames: int | None = None
    ratio_to_copy_last: float | None = None
    landscape_dims: list | str | None = None  # the success dims, or a sentence when the env names none
    landscape_goals: int | None = None
    landscape_rank_corr: float | None = None
    landscape_rank_corr_steps: float | None = None
    landscape_rank_corr_pixel: float | None = None
    landscape_rank_corr_steps_pixel: float | None = None
    landscape_rank_corr_temporal: float | None = None
    landscape_rank_corr_steps_temporal: float | None = None
    landscape_rank_corr_temporal_pixel: float | None = None
    landscape_rank_corr_steps_temporal_pixel: float | None = None


@dataclass(frozen=True)
class CompareSummary(Summary):
    """The pipeline's compare stage: the pixel model's own drift in pixels, beside the latent model's."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("horizons", "pixel_error")

    latent_checkpoint: str = ""
    pixel_checkpoint: str = ""
    dataset: str = ""
    plot_compare: str = ""
    windows: int = 0
    episodes: int = 0
    horizons: list[int] = field(default_factory=list)
    pixel_error: list[float] = field(default_factory=list)
    pixel_error_copy_last: list[float] = field(default_factory=list)
    probe_error_pixel_direct: list[float] | None = None
    probe_error_pixel_direct_copy_last: list[float] | None = None
    probe_error_pixel_direct_gt: list[float] | None = None
    probe_size: int | None = None
    probe_pixel_r2: dict | None = None
    probe_pixel_state_dims: list | None = None


@dataclass(frozen=True)
class GridTask:
    """Grid probe of one task's held-out frames: R² per state dim, pretrained and random-init encoder."""

    r2: dict
    r2_random_init: dict
    frames_train: int = 0
    frames_test: int = 0


@dataclass(frozen=True)
class GridProbeSummary(Summary):
    """The pipeline's grid-probe stage: a ridge probe on the flattened token grid, per task."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("tasks",)

    frames_per_episode: int = 0
    tasks: dict[str, GridTask] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "tasks", {t: from_dict(GridTask, v, f"grid probe task {t}")
                                           for t, v in self.tasks.items()})


@dataclass(frozen=True)
class PlanSummary(Summary):
    """``wm plan``: success over the episodes with its Wilson interval, beside random and zero actions."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("env", "checkpoint", "episodes", "success_rate", "success_ci95")

    env: str = ""
    checkpoint: str = ""
    model_kind: str = ""
    mode: str = ""
    episodes: int = 0
    success_rate: float = 0.0
    success_ci95: list[float] = field(default_factory=list)
    final_distance: float | None = None
    env_steps: float | None = None
    env_steps_to_success: float | None = None
    privileged_inputs: list = field(default_factory=list)  # what beyond frames + proprio reached the planner
    proprio_dims: list = field(default_factory=list)
    observed_state_dims: list = field(default_factory=list)
    seconds_planner_episodes: float | None = None
    seconds_per_plan: float | None = None
    seconds_per_plan_full_batch: float | None = None
    seconds_per_plan_per_episode: float | None = None
    plan_calls: int = 0
    subgoal_fraction: float | None = None
    success_rate_random: float | None = None
    success_ci95_random: list[float] | None = None
    final_distance_random: float | None = None
    env_steps_random: float | None = None
    success_rate_zero: float | None = None
    success_ci95_zero: list[float] | None = None
    final_distance_zero: float | None = None
    env_steps_zero: float | None = None
    warning: str | None = None
    gifs: list = field(default_factory=list)
    protocol: dict = field(default_factory=dict)  # goals, energy, planner, variation: what the figure means
    per_episode: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvalOfflineSummary(Summary):
    """``wm eval-offline``: first planned action vs the recorded one on held-out windows."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("checkpoint", "windows", "action_error")

    checkpoint: str = ""
    model_kind: str = ""
    dataset: str = ""
    windows: int = 0
    goal_steps: int = 0
    frame_skip: int = 1
    goal_env_steps: int = 0
    action_error: float | None = None
    action_error_random: float | None = None
    action_error_zero: float | None = None
    ratio_to_random: float | None = None
    ratio_to_zero: float | None = None
    action_error_per_dim: list | None = None
    energy_planned: float | None = None
    energy_recorded: float | None = None
    planner: dict = field(default_factory=dict)
    energy: dict = field(default_factory=dict)
    action_error_definition: str = ""
    landscape_png: str | None = None
    report: dict | None = None  # {"html": path, "md": path}


@dataclass(frozen=True)
class BenchSummary(Summary):
    """``wm bench <target>``: that target's timings and ratios (in ``extra``; each target prints its table)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("target",)

    target: str = ""


@dataclass(frozen=True)
class StageRecord:
    """One stage of a pipeline run."""

    summary: str  # its summary.json
    seconds: float | None = None
    cpu_seconds: float | None = None
    reused: bool = False


@dataclass(frozen=True)
class PipelineSummary(Summary):
    """``wm pipeline``: the report, every stage and the headline table."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("report", "tasks", "stages")

    report: str = ""
    report_md: str = ""
    tasks: list[str] = field(default_factory=list)
    stages: dict[str, StageRecord] = field(default_factory=dict)
    headline: Headline = field(default_factory=Headline)
    seconds_stages: float | None = None
    seconds_this_run: float | None = None


SUMMARIES: dict[str, type[Summary]] = {
    "data": DataSummary, "collect": CollectSummary, "pretrain": PretrainSummary, "train-ac": TrainACSummary,
    "train-pixel": TrainPixelSummary, "drift": DriftSummary, "plan": PlanSummary, "eval-offline": EvalOfflineSummary,
    "bench": BenchSummary, "pipeline": PipelineSummary, "compare": CompareSummary, "grid-probe": GridProbeSummary,
}


def summary_of(command: str, data: dict | Summary, where: str = "summary") -> Summary:
    """``data`` (a command's result or its summary.json) as the command's Summary class, validated."""
    if command not in SUMMARIES:
        raise KeyError(f"{where}: no summary class for command {command!r}; expected one of {sorted(SUMMARIES)}")
    return from_dict(SUMMARIES[command], data, where)


def load_summary(path: str | Path, command: str | None = None) -> Summary:
    """Read ``path`` (a summary.json) as its command's Summary (``command``: when the file does not say)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable summary.json ({e})") from e
    return summary_of(command or data.get("command", ""), data, str(path))

