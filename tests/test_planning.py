"""Optimizers and energies on problems with known answers (no world model involved)."""
import pytest
import torch

from worldmodel.planning.energy import EnergyConfig, goal_energy, step_weights, token_distance
from worldmodel.planning.optimizers import (
    NonFiniteEnergyError,
    PlannerConfig,
    episode_generators,
    plan,
    planner_settings,
    shift_plan,
)

E, H, A = 3, 4, 2
LOW, HIGH = -torch.ones(A), torch.ones(A)


def quadratic(target: torch.Tensor):
    """Energy sum_h,a (a - target_e)^2 with a known minimizer per episode: target (E, H, A)."""
    calls = []

    def energy(a: torch.Tensor) -> torch.Tensor:  # (E, S, H, A) -> (E, S)
        calls.append(tuple(a.shape))
        return ((a - target[:, None]) ** 2).sum(dim=(-1, -2))

    energy.calls = calls
    return energy


def targets(seed=0, scale=0.7):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(E, H, A, generator=g) * 2 - 1) * scale  # inside the bounds


@pytest.mark.parametrize("name", ["cem", "mppi", "grad"])
def test_finds_quadratic_minimum(name):
    target = targets()
    energy = quadratic(target)
    cfg = planner_settings(dict(name=name, horizon=H, samples=256, elites=16, iterations=8, min_std=0.01))
    res = plan(energy, cfg, LOW, HIGH, E, episode_generators([1, 2, 3]))
    assert res.actions.shape == (E, H, A)
    assert (res.actions - target).abs().max() < 0.1
    # one batched energy call per iteration: all episodes and samples together
    assert energy.calls[0] == (E, cfg.samples, H, A)


@pytest.mark.parametrize("name", ["random", "mppi", "cem", "grad"])
def test_improves_over_initial_mean(name):
    target = targets(1, scale=0.9)
    energy = quadratic(target)
    cfg = planner_settings(dict(name=name, horizon=H, samples=64, elites=8, iterations=3))
    start = -target  # a poor warm start: the optimizer must move away from it
    res = plan(energy, cfg, LOW, HIGH, E, episode_generators([4, 5, 6]), mean=start.clone())
    e0 = energy(start[:, None])[:, 0]
    e1 = energy(res.actions[:, None])[:, 0]
    assert (e1 < 0.5 * e0).all(), (e0, e1)


@pytest.mark.parametrize("name", ["cem", "mppi", "random", "grad"])
def test_non_finite_energies_rank_last(name):
    """NaN/inf energies on a region of action space: the plan stays finite, avoids that region, and equals the
    plan made with +inf there; an episode with no finite sample fails loudly instead of executing NaN."""
    target = targets(2, scale=0.5)
    base = quadratic(target)
    cfg = planner_settings(dict(name=name, horizon=H, samples=128, elites=8, iterations=4, min_std=0.01))

    def poisoned(bad):
        def energy(a):
            e = base(a)
            return torch.where(a[..., 0, 0] < 0, torch.full_like(e, bad), e)  # first action's dim 0 < 0: bad
        return energy

    res_nan = plan(poisoned(float("nan")), cfg, LOW, HIGH, E, episode_generators([7, 8, 9]))
    res_inf = plan(poisoned(float("inf")), cfg, LOW, HIGH, E, episode_generators([7, 8, 9]))
    assert torch.isfinite(res_nan.actions).all() and torch.isfinite(res_nan.energy).all()
    assert torch.equal(res_nan.actions, res_inf.actions)
    assert (res_nan.actions[:, 0, 0] >= -1e-6).all()  # never plans into the poisoned half
    with pytest.raises(NonFiniteEnergyError, match=r"episode\(s\) \[1\]"):
        plan(lambda a: torch.where(torch.arange(E)[:, None] == 1, float("nan"), base(a)), cfg, LOW, HIGH, E,
             episode_generators([7, 8, 9]))


@pytest.mark.parametrize("name", ["cem", "mppi", "random", "grad"])
def test_bounds_respected(name):
    low, high = torch.tensor([-0.5, 0.0]), torch.tensor([0.25, 2.0])
    target = torch.full((E, H, A), 5.0)  # minimum far outside the box
    cfg = planner_settings(dict(name=name, horizon=H, samples=64, elites=8, iterations=4, init_std=2.0))
    seen = []
    base = quadratic(target)

    def energy(a):
        seen.append(a.detach().clone())
        return base(a)

    res = plan(energy, cfg, low, high, E, episode_generators([0, 1, 2]))
    for a in seen + [res.actions]:
        assert (a >= low - 1e-6).all() and (a <= high + 1e-6).all()
    assert res.actions[..., 0].mean() > 0.0 and res.actions[..., 1].mean() > 1.0  # pushed towards the upper bound


def test_warm_start_shifts():
    mean = torch.arange(E * H * A, dtype=torch.float32).reshape(E, H, A) / 100
    low, high = torch.tensor([0.1, -1.0]), torch.tensor([1.0, 1.0])
    shifted = shift_plan(mean, 1, low, high)
    assert torch.equal(shifted[:, :-1], mean[:, 1:])
    assert torch.equal(shifted[:, -1], torch.tensor([0.1, 0.0]).expand(E, A))  # zero action clipped into bounds
    assert torch.equal(shift_plan(mean, 2, low, high)[:, :-2], mean[:, 2:])


def test_warm_start_is_kept_as_candidate():
    target = targets(2)
    energy = quadratic(target)
    cfg = PlannerConfig(name="cem", horizon=H, samples=8, elites=2, iterations=1, return_best=True)
    res = plan(energy, cfg, LOW, HIGH, E, episode_generators([0, 1, 2]), mean=target.clone())
    assert torch.allclose(res.actions, target) and torch.allclose(res.energy, torch.zeros(E))


@pytest.mark.parametrize("name", ["cem", "mppi", "random"])
def test_batched_equals_per_episode_loop(name):
    target = targets(3)
    seeds = [10, 11, 12]
    cfg = planner_settings(dict(name=name, horizon=H, samples=32, elites=4, iterations=3))
    batched = plan(quadratic(target), cfg, LOW, HIGH, E, episode_generators(seeds))
    for e in range(E):
        single = plan(quadratic(target[e:e + 1]), cfg, LOW, HIGH, 1, episode_generators([seeds[e]]))
        assert torch.allclose(batched.actions[e], single.actions[0], atol=1e-6)
        assert torch.allclose(batched.energy[e], single.energy[0], atol=1e-6)
    again = plan(quadratic(target), cfg, LOW, HIGH, E, episode_generators(seeds))
    assert torch.equal(again.actions, batched.actions)  # seeded: reproducible


def test_energy_metrics_and_weights():
    goal = torch.zeros(2, 5, 3)
    z = torch.ones(2, 4, 5, 3)
    z[:, -1] = 2.0
    assert torch.allclose(token_distance(z, goal, "l1"), torch.tensor([[1.0, 1, 1, 2]] * 2))
    assert torch.allclose(token_distance(z, goal, "l2")[:, 0], torch.full((2,), 3 ** 0.5))
    assert torch.allclose(token_distance(z, z[:, 0] * 3, "cosine"), torch.zeros(2, 4), atol=1e-6)
    assert torch.allclose(goal_energy(z, goal, EnergyConfig()), torch.full((2,), 2.0))
    w = step_weights(4, EnergyConfig(steps="all", step_weight_power=0.0))
    assert torch.allclose(w, torch.full((4,), 0.25))
    assert torch.allclose(goal_energy(z, goal, EnergyConfig(steps="all", step_weight_power=0.0)),
                          torch.full((2,), 1.25))
    assert torch.allclose(goal_energy(z, goal, EnergyConfig(steps="min")), torch.full((2,), 1.0))
    with pytest.raises(ValueError):
        token_distance(z, goal, "l3")


def test_probe_and_state_energy_terms():
    from worldmodel.planning.probe import LatentProbe

    B, H, N, D = 2, 3, 4, 2
    # a probe reading state dim 0 from token 0, channel 0 (weight 1 in standardized units, std 2)
    w = torch.zeros(N * D, 1)
    w[0, 0] = 1.0
    probe = LatentProbe(weight=w, x_mean=torch.zeros(N * D), y_mean=torch.zeros(1), y_std=torch.full((1,), 2.0),
                        dims=[0], r2=[0.9, 0.1], latent_scale=0.5)
    goal = torch.zeros(B, N, D)
    z = torch.zeros(B, H, N, D)
    z[:, -1, 0, 0] = 3.0  # moves only the probed channel
    cfg = EnergyConfig(probe_weight=2.0)
    # token L1 = 3 / (N * D) = 0.375, divided by latent_scale 0.5 -> 0.75; probe term |3| * 2 -> 6
    assert torch.allclose(goal_energy(z, goal, cfg, probe), torch.full((B,), 0.75 + 6.0))
    states = torch.zeros(B, H, 2)
    states[:, -1, 0] = 4.0  # standardized: 4 / 2 = 2 away from the goal's probed state 0
    cfg = EnergyConfig(state_weight=0.5)
    assert torch.allclose(goal_energy(z, goal, cfg, probe, states), torch.full((B,), 0.75 + 0.5 * 2.0))
    with pytest.raises(ValueError):
        goal_energy(z, goal, EnergyConfig(probe_weight=1.0))  # no probe
    with pytest.raises(ValueError):
        goal_energy(z, goal, cfg, probe)  # no predicted states


def test_kernel_probe_localizes_a_blob_better_than_linear():
    """The goal-state probe reads a small body's position from a token map; a linear read-out shrinks it."""
    from worldmodel.probes.linear import KernelProbe, RidgeProbe

    g = torch.Generator().manual_seed(0)
    pos = torch.rand(600, 2, generator=g) * 2 - 1  # (n, 2) positions in [-1, 1]
    axis = torch.linspace(-1, 1, 8)
    cells = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)  # (64, 2) token centres
    tokens = torch.exp(-((pos[:, None] - cells[None]) ** 2).sum(-1) / 0.02)  # (n, 64): a blob on the token grid
    x = tokens[:, :, None] * torch.randn(1, 1, 4, generator=g)  # (n, 64, 4) "features"
    tr, te = slice(0, 500), slice(500, None)
    kp = KernelProbe(x[tr].flatten(1), pos[tr])
    err_kernel = (kp.predict(x[te].flatten(1)) - pos[te]).norm(dim=1).mean()
    rp = RidgeProbe(x[tr], pos[tr])
    err_linear = (rp.predict(x[te]) - pos[te]).norm(dim=1).mean()
    assert err_kernel < 0.1 and err_kernel < 0.7 * err_linear, (err_kernel, err_linear)


def test_criterion_weight_scales_the_criterion_dims():
    """weighted: an error on a criterion dim costs ``weight`` times one on another dim; mean weight stays 1; the
    fitted probe itself is left as it was."""
    from worldmodel.planning.probe import LatentProbe

    K = 4
    probe = LatentProbe(weight=torch.zeros(3, K), x_mean=torch.zeros(3), y_mean=torch.zeros(K), y_std=torch.ones(K),
                        dims=[0, 1, 2, 3], r2=[1.0] * K, latent_scale=1.0)
    goal = torch.zeros(1, K)
    err = torch.eye(K)[:, None]  # (K, 1, K): a unit error on one dim per row
    before = probe.state_distance(err, None, goal.expand(K, K))  # (K, 1)
    assert torch.allclose(before, torch.full((K, 1), 1 / K))
    weighted = probe.weighted([2, 3], 3.0)
    after = weighted.state_distance(err, None, goal.expand(K, K))[:, 0]  # (K,)
    assert probe.dim_weights is None and torch.equal(probe.state_distance(err, None, goal.expand(K, K)), before)
    assert torch.allclose(after[2:], 3 * after[:2]) and torch.isclose(after.sum(), before.sum())


def test_each_planner_option_has_its_own_settings():
    """One schema per option of the planner group: mppi's temperature and grad's Adam steps exist only there."""
    from worldmodel.commands import compose_config
    from worldmodel.config import settings
    from worldmodel.planning.optimizers import GradConfig, MPPIConfig

    mppi = settings(compose_config("plan", ["preset=smoke", "planner=mppi", "planner.temperature=0.2"])).planner
    assert isinstance(mppi, MPPIConfig) and mppi.temperature == 0.2 and not hasattr(mppi, "grad_steps")
    grad = settings(compose_config("plan", ["preset=smoke", "planner=grad"])).planner
    assert isinstance(grad, GradConfig) and grad.grad_steps == 5 and not hasattr(grad, "temperature")
    with pytest.raises(Exception, match="temperature"):
        compose_config("plan", ["preset=smoke", "planner=cem", "planner.temperature=0.2"])
    assert type(planner_settings({"name": "mppi", "temperature": 0.3})) is MPPIConfig
