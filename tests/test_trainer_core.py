"""Trainer core: schedules, decay groups, exact resume, non-finite stop, safe checkpoints."""
import pickle

import pytest
import torch
from torch import nn

from worldmodel.train.core import NonFiniteLossError, OptimConfig, TrainConfig, Trainer, build_optimizer, lr_at
from worldmodel.utils.checkpoint import check_matches, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=4, log_every=1, ckpt_every=4, progress=False,
                optim=OptimConfig(lr=1e-2, warmup_steps=3, min_lr=1e-4))
    base.update(kw)
    return TrainConfig(**base)


def _train(out_dir, cfg: TrainConfig, stop_after: int | None = None) -> tuple[nn.Module, nn.Module, list]:
    """Regression with an EMA 'extra' module and data drawn from generator_for(step)."""
    torch.manual_seed(0)
    model, ema = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.Linear(8, 1)), nn.Linear(3, 8)
    trainer = Trainer(cfg, out_dir, model=model, config={"model": {"width": 8}}, kind="toy", extra={"ema": ema})
    losses = []
    for step in trainer.steps():
        g = trainer.generator_for(step)
        x = torch.randn(cfg.batch_size, 3, generator=g)
        noise = torch.randn(cfg.batch_size, 1)  # global torch RNG: must also be restored on resume
        loss = ((trainer.model(x) - x.sum(1, keepdim=True) - 0.01 * noise) ** 2).mean()
        trainer.backward_step(loss)
        with torch.no_grad():
            ema.weight.lerp_(model[0].weight, 0.1)
        losses.append(loss.item())
        trainer.log(step, {"loss/pred": loss.item()})
        trainer.maybe_checkpoint(step)
        if stop_after is not None and step + 1 == stop_after:
            return model, ema, losses  # simulated kill: no final checkpoint
    trainer.save_checkpoint()
    return model, ema, losses


def test_schedules():
    cfg = OptimConfig(lr=1.0, min_lr=0.0, warmup_steps=10, schedule="cosine")
    assert lr_at(0, 100, cfg) == pytest.approx(0.1)
    assert lr_at(10, 100, cfg) == pytest.approx(1.0)
    assert lr_at(99, 100, cfg) < 0.01
    wsd = OptimConfig(lr=1.0, min_lr=0.0, warmup_steps=10, schedule="wsd", decay_fraction=0.2)
    assert lr_at(50, 100, wsd) == 1.0 and lr_at(90, 100, wsd) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="schedule"):
        lr_at(50, 100, OptimConfig(schedule="linear", warmup_steps=0))


def test_weight_decay_only_on_matrices():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    opt = build_optimizer(model, OptimConfig(weight_decay=0.1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}


def test_resume_is_exact(tmp_path):
    full_model, full_ema, full_losses = _train(tmp_path / "full", _cfg())
    _train(tmp_path / "part", _cfg(), stop_after=6)  # killed after step 6; last checkpoint at step 4
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["step"] == 4
    model, ema, losses = _train(tmp_path / "part", _cfg(resume=True))
    assert len(losses) == 12 - 4
    assert losses == pytest.approx(full_losses[4:], rel=1e-6, abs=1e-7)
    for a, b in zip(model.parameters(), full_model.parameters()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(ema.weight, full_ema.weight)
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in lines]
    assert steps == list(range(12)), "metrics.jsonl must hold each step once after a resume"


def test_nonfinite_loss_stops_and_keeps_checkpoint(tmp_path):
    model = nn.Linear(2, 1)
    trainer = Trainer(_cfg(ckpt_every=2), tmp_path, model=model, config={}, kind="toy")
    for step in trainer.steps():
        loss = model(torch.ones(1, 2)).sum() * (float("nan") if step == 3 else 1.0)
        if step < 3:
            trainer.backward_step(loss)
            trainer.maybe_checkpoint(step)
            continue
        before = model.weight.detach().clone()
        with pytest.raises(NonFiniteLossError, match="step 3.*last good checkpoint kept"):
            trainer.backward_step(loss)
        torch.testing.assert_close(model.weight, before)
        break
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


def test_checkpoint_loading_is_safe_and_errors_name_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(2)}, "config": {"model": {"embed_dim": 192}}})
    ckpt = load_checkpoint(path)
    with pytest.raises(ValueError, match=r"c.pt: field model.embed_dim is 192, config expects 128"):
        check_matches(ckpt["config"], {"model": {"embed_dim": 128}}, ["model.embed_dim"], path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": Evil(), "config": {}}))
    with pytest.raises(ValueError, match="evil.pt: cannot be read safely"):
        load_checkpoint(evil)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trips_and_keeps_only_the_model_devices_accelerator():
    state = rng_state("cpu")
    assert "device" not in state and "cuda" not in state  # a CPU model saves no accelerator RNG
    expected = torch.rand(3)
    torch.rand(5)
    set_rng_state(state, "cpu")
    assert torch.equal(torch.rand(3), expected)
    # an older checkpoint's per-GPU list, or another backend's state, is skipped when the model runs on the CPU
    set_rng_state({**state, "cuda": [torch.zeros(8, dtype=torch.uint8)]}, "cpu")
    set_rng_state({**state, "device": {"type": "mps", "rng": torch.zeros(8, dtype=torch.uint8)}}, "cpu")
    assert torch.equal(torch.rand(3), expected)


def test_lr_scales_apply_to_named_prefixes(tmp_path):
    """A prefix's lr_scale multiplies the schedule's learning rate for those parameters only, at every step."""
    model = nn.ModuleDict({"encoder": nn.Linear(3, 4), "head": nn.Linear(4, 1)})
    trainer = Trainer(_cfg(steps=2), tmp_path, model=model, config={}, kind="toy", lr_scales={"encoder.": 0.1})
    enc = {id(p) for p in model["encoder"].parameters()}
    for step in trainer.steps():
        lr = trainer.lr_at(step)
        for group in trainer.optimizer.param_groups:
            scaled = {id(p) for p in group["params"]} <= enc
            assert group["lr"] == pytest.approx(lr * (0.1 if scaled else 1.0))
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == 4
