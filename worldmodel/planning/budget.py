"""What a ``wm plan`` run's settings cost in memory, checked before anything large is allocated."""
from __future__ import annotations

from worldmodel.models.ac_predictor import step_memory_bytes
from worldmodel.planning.optimizers import PlannerConfig
from worldmodel.utils.memory import F32, check_fits

ENV_BYTES = 16e6  # one planning episode's env with its renderer (measured 10-13 MB for our MuJoCo tasks + EGL)


def check_plan_memory(model, episodes: int, planner: PlannerConfig, max_batch: int) -> None:
    """Refuse settings whose largest allocations cannot fit (one line naming the setting, the estimate and what
    is available): one env per episode, all alive at once (host memory, ``episodes``); the candidate actions of
    every episode (a few copies: samples, noise, clamped, energies, elites) and the rollouts of one model call
    (all of them, or ``max_batch``) on the model's device (``planner.samples``)."""
    check_fits(f"episodes={episodes}", episodes * ENV_BYTES, f"{episodes} envs planned at once (about "
               f"{ENV_BYTES / 1e6:.0f} MB each with their renderers)", hint="lower episodes")
    samples = int(episodes) * int(planner.samples)
    action_dim = (model.manifest.action_dim if model.manifest else 1) * int(model.frame_skip)
    need = 6.0 * samples * planner.horizon * action_dim * F32
    predictor = getattr(model, "predictor", None)  # the test oracles have none
    if predictor is not None:
        batch = samples if max_batch <= 0 else min(int(max_batch), samples)
        need += step_memory_bytes(predictor.cfg, batch, planner.horizon + 1, backward=planner.name == "grad")
    check_fits(f"planner.samples={planner.samples}", need,
               f"planning {episodes} episodes x {planner.samples} samples x horizon {planner.horizon}",
               model.device, hint="lower planner.samples or episodes, or set max_batch to roll out in chunks")
