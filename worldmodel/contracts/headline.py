"""The pipeline's headline figures (``PipelineSummary.headline``), per task: drift at the largest horizon, planning
success of every plan stage, and the grid probe. Figures a run did not produce are absent from the JSON
(``SPARSE``): a run without the random-init ablation has no ``*_random_encoder`` entries."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class DriftRow:
    """One task's drift at the largest horizon (state-probe errors in units of the training state std) and energy
    landscapes (rank correlations of latent distance to a goal frame with the true distance, and of the temporal
    metric), latent vs pixel vs copy-last, and the random-init encoder's when that ablation ran."""

    SPARSE: ClassVar[bool] = True

    horizon: int | None = None
    probe_error_latent: float | None = None
    probe_error_pixel: float | None = None
    probe_error_copy_last: float | None = None
    probe_error_pixel_direct: float | None = None
    pixel_error: float | None = None
    pixel_error_copy_last: float | None = None
    probe_error_latent_random_encoder: float | None = None
    landscape_rank_corr_latent_random_encoder: float | None = None
    landscape_temporal_latent_random_encoder: float | None = None
    landscape_rank_corr_latent: float | None = None
    landscape_rank_corr_pixel: float | None = None
    landscape_temporal_latent: float | None = None
    landscape_temporal_pixel: float | None = None


@dataclass(frozen=True)
class PlanCell:
    """One plan stage's outcome."""

    success_rate: float | None = None
    success_ci95: list[float] | None = None  # Wilson 95% interval
    seconds_per_plan: float | None = None
    mode: str = ""  # pure | oracle
    privileged_inputs: list[str] = field(default_factory=list)  # what beyond frames, proprio and the goal image


@dataclass(frozen=True)
class PlanRow:
    """One task's plan stages (latent, pixel, latent with the proprio probe, oracle, random-init encoder) and the
    random and zero actions on the same goals."""

    SPARSE: ClassVar[bool] = True

    latent: PlanCell | None = None
    random: float | None = None
    zero: float | None = None
    pixel: PlanCell | None = None
    latent_proprio: PlanCell | None = None
    latent_oracle: PlanCell | None = None
    latent_random_encoder: PlanCell | None = None


@dataclass(frozen=True)
class GridProbeRow:
    """Mean held-out R² of the grid probe over the state dims, pretrained vs random-init encoder."""

    mean_r2: float | None = None
    mean_r2_random_init: float | None = None


@dataclass(frozen=True)
class Headline:
    """Headline figures per task name."""

    drift: dict[str, DriftRow] = field(default_factory=dict)
    plan: dict[str, PlanRow] = field(default_factory=dict)
    grid_probe: dict[str, GridProbeRow] = field(default_factory=dict)
