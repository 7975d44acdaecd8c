"""End to end at preset=smoke: wm train-ac (bootstrapping collect + pretrain), wm drift, the latent cache,
and LatentWorldModel.load by checkpoint path."""
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import run_json


@pytest.fixture(scope="module")
def smoke_ac(tmp_path_factory):
    out = tmp_path_factory.mktemp("train_ac") / "run"
    summary = run_json("train-ac", ["preset=smoke", f"out_dir={out}"])
    return out, summary


def test_train_ac_smoke_writes_summary(smoke_ac):
    out, summary = smoke_ac
    written = json.loads((out / "summary.json").read_text())
    for key in ("steps", "final_loss", "loss_tf", "loss_rollout", "checkpoint", "seconds", "tokens_per_frame"):
        assert key in written, key
    assert Path(written["checkpoint"]).is_file()
    assert written["steps"] == 10 and written["final_loss"] == written["final_loss"]  # not NaN
    assert not written["latent_cache_hit"]  # first run encodes


def test_train_ac_rerun_reads_latent_cache(smoke_ac, tmp_path):
    out, first = smoke_ac
    summary = run_json("train-ac", ["preset=smoke", f"out_dir={tmp_path}", f"dataset={first['dataset']}",
                                       f"encoder_checkpoint={first['encoder_checkpoint']}", "train.steps=2"])
    assert summary["latent_cache_hit"] and summary["latent_cache"] == first["latent_cache"]


def test_world_model_loads_by_path(smoke_ac):
    from worldmodel.models.world_model import LatentWorldModel

    _, summary = smoke_ac
    wm = LatentWorldModel.load(summary["checkpoint"], "cpu")
    res = wm.manifest.height_width[0]
    frames = torch.randint(0, 256, (3, res, res, 3), dtype=torch.uint8)
    z = wm.encode(frames)
    assert z.shape[:2] == (3, summary["tokens_per_frame"])
    A = wm.action_dim_step
    assert A == wm.frame_skip * wm.action_dim
    s0 = torch.zeros(3, wm.state_dim) if wm.state_dim else None
    pred = wm.rollout(z, s0, torch.zeros(3, 4, A)).latents
    assert pred.shape == (3, 4, *z.shape[1:])
    assert torch.allclose(pred, wm.rollout(z, s0, torch.zeros(3, 4, A), use_cache=False).latents, atol=1e-4)


def test_drift_smoke_writes_summary_and_plot(smoke_ac, tmp_path):
    _, ac = smoke_ac
    summary = run_json("drift", ["preset=smoke", f"checkpoint={ac['checkpoint']}", f"out_dir={tmp_path}"])
    written = json.loads((tmp_path / "summary.json").read_text())
    for key in ("horizons", "latent_l1", "latent_rel_error", "probe_error", "probe_error_copy_last", "plot"):
        assert key in written, key
    H = len(written["horizons"])
    assert H == 3 and len(written["probe_error"]) == H and len(written["probe_error_copy_last"]) == H
    assert Path(summary["plot"]).is_file() and Path(summary["plot"]).stat().st_size > 0


def test_missing_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="encoder_checkpoint"):
        run_json("train-ac", ["preset=cpu", f"out_dir={tmp_path}", "dataset=/nonexistent"])
    with pytest.raises(ValueError, match="dataset"):
        run_json("train-ac", ["preset=cpu", f"out_dir={tmp_path}", "encoder_checkpoint=/x.pt"])
    with pytest.raises(ValueError, match="checkpoint"):
        run_json("drift", ["preset=cpu", f"out_dir={tmp_path}"])


def test_latent_cache_invalidation(smoke_ac, tmp_path):
    from worldmodel.train.latent_cache import load_latents

    _, ac = smoke_ac
    data, enc = tmp_path / "data", tmp_path / "encoder.pt"
    shutil.copytree(ac["dataset"], data, ignore=shutil.ignore_patterns("latent_cache"))
    shutil.copy(ac["encoder_checkpoint"], enc)
    kw = dict(pool=2, cache_dir=tmp_path / "cache", progress=False)
    first = load_latents(data, enc, **kw)
    assert first.encoded and Path(first.path).is_file()
    again = load_latents(data, enc, **kw)
    assert not again.encoded and torch.equal(again.latents[0], first.latents[0])
    assert load_latents(data, enc, pool=1, cache_dir=tmp_path / "cache", progress=False).encoded  # other pooling
    # the dataset changes: an episode file is rewritten
    ep = sorted((data / "episodes").glob("*.npz"))[0]
    st = ep.stat()
    os.utime(ep, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert load_latents(data, enc, **kw).encoded
    assert not load_latents(data, enc, **kw).encoded
    # the encoder changes at the same path: perturbed weights
    ckpt = torch.load(enc, weights_only=True)
    for sd in [ckpt["model"], *(ckpt.get("extra") or {}).values()]:
        for v in sd.values():
            if v.is_floating_point():
                v.add_(0.01)
    torch.save(ckpt, enc)
    changed = load_latents(data, enc, **kw)
    assert changed.encoded and not torch.equal(changed.latents[0], first.latents[0])


def test_predictor_weights_of_another_layout_fail_naming_the_checkpoint(tmp_path):
    """A checkpoint whose weights do not fit its own predictor config gives a clear error, not a traceback."""
    from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
    from worldmodel.utils.checkpoint import load_weights

    cfg = ACPredictorConfig(embed_dim=8, pred_dim=16, depth=1, num_heads=2, grid_h=2, grid_w=2, action_dim=2,
                            state_dim=2, global_head=True)
    old = ACPredictor(ACPredictorConfig(**{**cfg.__dict__, "global_from_state": False}))
    with pytest.raises(ValueError, match="old.pt.*predictor weights do not match"):
        load_weights(ACPredictor(cfg), old.state_dict(), tmp_path / "old.pt", "predictor")
