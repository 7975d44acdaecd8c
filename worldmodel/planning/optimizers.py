"""Sampling-based trajectory optimizers over action sequences: CEM, MPPI, random shooting, CEM + gradient.

All optimizers minimize an energy over action sequences, batched over E parallel problems (evaluation
episodes) and S candidate sequences per problem in one call of the energy; there is no Python loop over
samples or episodes in the optimization itself.

Shapes (E episodes, S samples, H horizon, A action dimension):
    energy_fn(actions (E, S, H, A)) -> energies (E, S)     lower is better
    low, high         (A,)            action bounds (every sampled sequence is clipped into them)
    mean, std         (E, H, A)       the sampling distribution (a diagonal Gaussian per time step)
    noise             (E, S, H, A)    standard normal draws, one torch.Generator per episode
    elites            (E, K, H, A)    the K lowest-energy samples of each episode
    PlanResult.actions (E, H, A), .energy (E,), .mean / .std (E, H, A) for the warm start of the next call

CEM, per iteration:
    a     = clip(mean + std * noise, low, high)                 (E, S, H, A); a[:, 0] = clip(mean) (keep the
                                                                current mean as a candidate)
    e     = energy_fn(a)                                        (E, S)
    elite = the K samples with the lowest e                     (E, K, H, A)
    mean  = m_mu * mean + (1 - m_mu) * elite.mean(1)            momentum on the mean
    std   = max(m_sd * std + (1 - m_sd) * elite.std(1), min_std)
  returns the final mean (or the best sample seen, ``return_best``).
MPPI: the same loop with softmax weights w = softmax(-(e - min e) / (temperature * std_S(e))) over all samples
  instead of hard elites (the energy spread per episode sets the scale, so temperature is unitless).
Random shooting: S * iterations uniform sequences in the bounds (drawn S at a time), keep the best.
CEM + gradient ("grad"): CEM, then ``grad_steps`` of Adam on the mean through a differentiable energy.

Non-finite energies: a NaN/inf energy ranks last (``finite_energies``: +inf, zero MPPI weight); a step in which
no sample of an episode is finite fails loudly (``NonFiniteEnergyError``) rather than execute a NaN plan.

Warm start: ``shift_plan`` drops the executed steps from the previous mean and pads the tail with the zero
action (clipped into the bounds); the std is reset to ``init_std`` every call, so the search re-explores.

Seeding: one generator per episode (``episode_generators``), so an episode's samples do not depend on which
other episodes share the batch: the batched call equals a loop over episodes on the same seeds. Drawing the
noise is the only per-episode Python loop (E tiny ``randn`` calls); the energy is always one batched call.
Std values are relative to the half-range of the bounds: ``init_std=1`` spans the whole box.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Callable, Optional

import torch

EnergyFn = Callable[[torch.Tensor], torch.Tensor]  # (E, S, H, A) -> (E, S)

class Optimizer(StrEnum):
    """The planner's optimizer."""
    cem = "cem"
    mppi = "mppi"
    random = "random"
    grad = "grad"


OPTIMIZERS = tuple(m.value for m in Optimizer)


@dataclass
class PlannerConfig:
    """Settings every option of the ``planner=`` group shares (configs/planner/*.yaml): the cem and random options
    use this schema as it is (random shooting ignores the Gaussian's settings); mppi and grad extend it."""

    name: Optimizer = Optimizer.cem  # optimizer: cem | mppi | random | grad (CEM then gradient refinement of the mean)
    horizon: int = 5  # planned predictor steps (each held for action_repeat env steps)
    samples: int = 64  # candidate action sequences per episode per iteration
    elites: int = 8  # CEM: lowest-energy samples that refit the Gaussian
    iterations: int = 3  # refits of the sampling distribution per replanning step
    init_std: float = 1.0  # initial std, in units of the action half-range
    min_std: float = 0.05  # std floor, in units of the action half-range
    momentum_mean: float = 0.0  # weight of the old mean in each update (0 = plain CEM)
    momentum_std: float = 0.0  # weight of the old std in each update
    return_best: bool = False  # return the best sample seen instead of the final mean


@dataclass
class MPPIConfig(PlannerConfig):
    """MPPI: softmax weights over all samples instead of hard elites."""

    name: Optimizer = Optimizer.mppi
    temperature: float = 0.5  # softmax temperature in units of the per-episode energy std


@dataclass
class GradConfig(PlannerConfig):
    """CEM, then Adam steps on the plan through the differentiable world model."""

    name: Optimizer = Optimizer.grad
    grad_steps: int = 5  # Adam steps on the CEM mean through the energy
    grad_lr: float = 0.05  # Adam learning rate, in units of the action half-range


# option -> its settings schema
PLANNER_SCHEMAS: dict[str, type[PlannerConfig]] = {"cem": PlannerConfig, "mppi": MPPIConfig, "random": PlannerConfig,
                                                   "grad": GradConfig}


def planner_settings(values: dict) -> PlannerConfig:
    """The option's settings from a plain dict (a config's ``planner`` node, a summary's record)."""
    return PLANNER_SCHEMAS[str(values.get("name", "cem"))](**values)


@dataclass
class PlanResult:
    """Output of one optimizer call (see module docstring for shapes)."""

    actions: torch.Tensor  # (E, H, A) the plan to execute (clipped into the bounds)
    energy: torch.Tensor  # (E,) energy of the best sample seen (or of ``actions`` for grad)
    mean: torch.Tensor  # (E, H, A) final sampling mean, for warm starts
    std: torch.Tensor  # (E, H, A) final sampling std


def episode_generators(seeds: list[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One torch.Generator per episode, seeded by that episode's seed."""
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        gens.append(g)
    return gens


def _randn(gens: list[torch.Generator], shape: tuple, device) -> torch.Tensor:
    """Standard normal noise (E, *shape), episode e drawn from gens[e]."""
    return torch.stack([torch.randn(shape, generator=g, device=device) for g in gens])


def _rand(gens: list[torch.Generator], shape: tuple, device) -> torch.Tensor:
    """Uniform [0, 1) noise (E, *shape), episode e drawn from gens[e]."""
    return torch.stack([torch.rand(shape, generator=g, device=device) for g in gens])


def zero_action(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The 'do nothing' action clipped into the bounds (A,)."""
    return torch.zeros_like(low).clamp(low, high)


def shift_plan(mean: torch.Tensor, steps: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Warm start: drop the first ``steps`` actions of ``mean`` (E, H, A), pad the tail with the zero action."""
    E, H, A = mean.shape
    steps = min(steps, H)
    pad = zero_action(low, high).to(mean).expand(E, steps, A)
    return torch.cat([mean[:, steps:], pad], dim=1)  # (E, H, A)


class NonFiniteEnergyError(ValueError):
    """Every sample of some episode got a NaN/inf energy: there is nothing to rank, so the planner stops."""


def finite_energies(e: torch.Tensor) -> torch.Tensor:
    """Energies (E, S) with NaN/inf replaced by +inf, so a non-finite sample ranks last (and gets zero MPPI
    weight); raises :class:`NonFiniteEnergyError` naming the episodes none of whose samples is finite."""
    ok = torch.isfinite(e)  # (E, S)
    if not bool(ok.all()):
        dead = (~ok.any(dim=1)).nonzero().flatten().tolist()
        if dead:
            raise NonFiniteEnergyError(f"planner: every sample of episode(s) {dead[:10]} has a non-finite energy "
                                       f"(NaN/inf from the model or the goal latent); no plan to execute")
        e = torch.where(ok, e, torch.full_like(e, float("inf")))
    return e


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (E, S, H, A), idx (E, K) -> (E, K, H, A)."""
    return torch.gather(x, 1, idx[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3]))


class _Best:
    """Tracks the lowest-energy sample seen per episode."""

    def __init__(self, E: int, H: int, A: int, device, dtype):
        self.energy = torch.full((E,), float("inf"), device=device)
        self.actions = torch.zeros(E, H, A, device=device, dtype=dtype)

    def update(self, a: torch.Tensor, e: torch.Tensor) -> None:
        """a (E, S, H, A), e (E, S)."""
        val, idx = e.min(dim=1)  # (E,)
        better = val < self.energy
        cand = _gather(a, idx[:, None])[:, 0]  # (E, H, A)
        self.actions = torch.where(better[:, None, None], cand, self.actions)
        self.energy = torch.where(better, val, self.energy)


def plan(energy_fn: EnergyFn, cfg: PlannerConfig, low: torch.Tensor, high: torch.Tensor, num_episodes: int,
         generators: list[torch.Generator], mean: Optional[torch.Tensor] = None) -> PlanResult:
    """Minimize ``energy_fn`` over (E, H, A) action sequences with the optimizer ``cfg.name``.

    Args:
        energy_fn: actions (E, S, H, A) -> energies (E, S); called once per iteration on the whole batch.
        cfg: optimizer settings.
        low, high: (A,) action bounds.
        num_episodes: E.
        generators: E torch.Generators, one per episode (see ``episode_generators``).
        mean: (E, H, A) initial mean (a warm start, e.g. ``shift_plan(prev.mean, ...)``); default the zero action.
    Returns:
        PlanResult with actions (E, H, A) inside the bounds.
    """
    if cfg.name not in OPTIMIZERS:
        raise ValueError(f"unknown planner {cfg.name!r}; expected one of {OPTIMIZERS}")
    if len(generators) != num_episodes:
        raise ValueError(f"need one generator per episode: got {len(generators)} for {num_episodes} episodes")
    device = low.device
    E, H, A = num_episodes, cfg.horizon, low.shape[0]
    half = (high - low) / 2  # (A,)
    if mean is None:
        mean = zero_action(low, high).expand(E, H, A).clone()
    mean = mean.to(device=device, dtype=low.dtype).clamp(low, high)  # (E, H, A)
    std = (cfg.init_std * half).expand(E, H, A).clone()  # (E, H, A)
    if cfg.name == "random":
        return _random_shooting(energy_fn, cfg, low, high, mean, std, generators)
    res = _gaussian_search(energy_fn, cfg, low, high, mean, std, generators)
    if cfg.name == "grad" and cfg.grad_steps > 0:
        res = _grad_refine(energy_fn, cfg, low, high, res)
    return res


def _gaussian_search(energy_fn: EnergyFn, cfg: PlannerConfig, low, high, mean, std, gens) -> PlanResult:
    """CEM (hard elites) or MPPI (softmax weights) refits of a diagonal Gaussian, see the module docstring."""
    E, H, A = mean.shape
    S, K = cfg.samples, min(cfg.elites, cfg.samples)
    min_std = cfg.min_std * (high - low) / 2  # (A,)
    best = _Best(E, H, A, mean.device, mean.dtype)
    for _ in range(cfg.iterations):
        noise = _randn(gens, (S, H, A), mean.device)  # (E, S, H, A)
        a = (mean[:, None] + std[:, None] * noise).clamp(low, high)  # (E, S, H, A)
        a[:, 0] = mean  # the current mean is always a candidate, so a warm start is never lost
        e = finite_energies(energy_fn(a))  # (E, S), non-finite -> +inf (ranks last)
        best.update(a, e)
        if cfg.name == "mppi":
            fin = torch.isfinite(e)
            e0 = torch.where(fin, e, e.min(dim=1, keepdim=True).values)  # spread of the finite energies only
            scale = e0.std(dim=1, unbiased=False, keepdim=True).clamp_min(1e-8) * cfg.temperature  # (E, 1)
            w = torch.softmax(-(e - e.min(dim=1, keepdim=True).values) / scale, dim=1)  # (E, S), 0 where inf
            new_mean = (w[:, :, None, None] * a).sum(1)  # (E, H, A)
            new_std = (w[:, :, None, None] * (a - new_mean[:, None]) ** 2).sum(1).sqrt()  # (E, H, A)
        else:
            idx = torch.topk(e, K, dim=1, largest=False).indices  # (E, K)
            elites = _gather(a, idx)  # (E, K, H, A)
            new_mean = elites.mean(1)  # (E, H, A)
            new_std = elites.std(1, unbiased=False)  # (E, H, A)
        mean = cfg.momentum_mean * mean + (1 - cfg.momentum_mean) * new_mean
        std = torch.maximum(cfg.momentum_std * std + (1 - cfg.momentum_std) * new_std, min_std)
    actions = best.actions if cfg.return_best else mean.clamp(low, high)
    return PlanResult(actions=actions, energy=best.energy, mean=mean, std=std)


def _random_shooting(energy_fn: EnergyFn, cfg: PlannerConfig, low, high, mean, std, gens) -> PlanResult:
    """Uniform sequences in the bounds, S per iteration; the best one wins (the warm start is a candidate)."""
    E, H, A = mean.shape
    best = _Best(E, H, A, mean.device, mean.dtype)
    for it in range(cfg.iterations):
        a = low + (high - low) * _rand(gens, (cfg.samples, H, A), mean.device)  # (E, S, H, A)
        if it == 0:
            a[:, 0] = mean
        best.update(a, finite_energies(energy_fn(a)))
    return PlanResult(actions=best.actions, energy=best.energy, mean=best.actions, std=std)


def _grad_refine(energy_fn: EnergyFn, cfg: PlannerConfig, low, high, res: PlanResult) -> PlanResult:
    """Adam on the plan through a differentiable energy; keeps the refined plan only where it is better."""
    center, half = (high + low) / 2, (high - low) / 2  # (A,)
    start = res.actions  # (E, H, A)
    u = ((start - center) / half).detach().clone().requires_grad_(True)  # (E, H, A) in [-1, 1]
    opt = torch.optim.Adam([u], lr=cfg.grad_lr)  # steps in units of the half-range, whatever the bounds
    with torch.enable_grad():
        for _ in range(cfg.grad_steps):
            opt.zero_grad(set_to_none=True)
            e = energy_fn((center + half * u)[:, None])[:, 0]  # (E,)
            e.sum().backward()  # episodes are independent, so the sum's gradient is each episode's own
            opt.step()
            with torch.no_grad():
                u.clamp_(-1, 1)
    with torch.no_grad():
        refined = center + half * u.detach()  # (E, H, A)
        e_ref = energy_fn(refined[:, None])[:, 0]  # (E,)
        e_start = energy_fn(start[:, None])[:, 0]  # (E,)
        keep = torch.isfinite(e_ref) & (e_ref < e_start)  # a NaN gradient step is dropped
        actions = torch.where(keep[:, None, None], refined, start)
        energy = torch.where(keep, e_ref, e_start)
    return PlanResult(actions=actions, energy=energy, mean=actions, std=res.std)
