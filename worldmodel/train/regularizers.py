"""The ``regularizer=`` group of ``wm pretrain``: what prevents collapse, one settings schema per option.

Each option's schema holds only its own settings (``regularizer=sigreg`` has no EMA momentum to set); the command
layer registers them as ``regularizer/<option>_schema`` and ``configs/regularizer/<option>.yaml`` extends its own.
Values tuned for a preset live in ``configs/regularizer_preset/<option>_<preset>.yaml``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Regularizer(StrEnum):
    """What prevents collapse (see :mod:`worldmodel.train.pretrain`)."""
    ema = "ema"
    sigreg = "sigreg"
    rdmreg = "rdmreg"
    vicreg = "vicreg"


@dataclass
class RegularizerConfig:
    """What every option has: its name."""

    # ema (V-JEPA EMA target) | sigreg (LeJEPA, no EMA) | rdmreg (Rectified LpJEPA, no EMA) | vicreg (no EMA)
    name: Regularizer = Regularizer.ema


@dataclass
class EmaConfig(RegularizerConfig):
    """V-JEPA: targets from an EMA copy of the encoder."""

    name: Regularizer = Regularizer.ema
    # target momentum at the first step
    ema_start: float = 0.996
    # target momentum at the last step
    ema_end: float = 1.0
    # weight of VICReg's variance and covariance terms on the context tokens, added to the prediction loss as in
    # C-JEPA (0: V-JEPA's EMA alone); the terms are weighted by vicreg_var and vicreg_cov
    ema_vicreg: float = 0.0
    # weight of the variance hinge inside the VICReg terms
    vicreg_var: float = 1.0
    # weight of the covariance penalty inside the VICReg terms
    vicreg_cov: float = 0.04


@dataclass
class SigRegConfig(RegularizerConfig):
    """LeJEPA: no EMA; SIGReg pushes the context tokens towards an isotropic Gaussian."""

    name: Regularizer = Regularizer.sigreg
    # weight w in (1 - w) * prediction + w * SIGReg
    sigreg_weight: float = 0.05
    # random 1-D projections per step
    sigreg_slices: int = 256
    # context tokens (per rank) drawn at random as the statistic's samples; the statistic grows with the sample
    # count, so this keeps its scale near LeJEPA's (a batch of a few hundred embeddings); 0 = all tokens
    sigreg_tokens: int = 256


@dataclass
class RdmRegConfig(RegularizerConfig):
    """Rectified LpJEPA: no EMA; RDMReg matches the tokens to a rectified generalized Gaussian."""

    name: Regularizer = Regularizer.rdmreg
    # weight w in (1 - w) * prediction + w * RDMReg
    rdmreg_weight: float = 0.1
    # random 1-D projections per step
    rdmreg_slices: int = 256
    # context tokens (per rank) drawn at random as samples; 0 = all tokens
    rdmreg_tokens: int = 256
    # shape p of the generalized Gaussian (2: rectified Gaussian, 1: rectified Laplace)
    rdmreg_p: float = 2.0
    # location of the generalized Gaussian before rectification (lower: sparser)
    rdmreg_mu: float = 0.0
    # scale of the generalized Gaussian
    rdmreg_sigma: float = 1.0


@dataclass
class VicRegConfig(RegularizerConfig):
    """No EMA; VICReg's variance and covariance terms on the context tokens."""

    name: Regularizer = Regularizer.vicreg
    # weight of the variance hinge
    vicreg_var: float = 1.0
    # weight of the covariance penalty
    vicreg_cov: float = 0.04


# option -> its settings schema
REGULARIZER_SCHEMAS: dict[str, type[RegularizerConfig]] = {
    "ema": EmaConfig, "sigreg": SigRegConfig, "rdmreg": RdmRegConfig, "vicreg": VicRegConfig,
}
