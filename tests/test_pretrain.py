"""wm pretrain: EMA math, the smoke run's summary and checkpoint, exact resume, regularizers, torchrun DDP."""
import json
import os
import shutil
import subprocess

import pytest
import torch
from helpers import run_json

from worldmodel.commands import compose_config
from worldmodel.models.video_vit import load_encoder
from worldmodel.train import pretrain
from worldmodel.utils.checkpoint import load_checkpoint

FAST = ["preset=smoke", "probe.enabled=false", "collapse.every=1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("pretrain_data"))


def test_ema_update_and_schedule():
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    torch.nn.init.constant_(online.weight, 1.0)
    torch.nn.init.constant_(target.weight, 0.0)
    pretrain.ema_update(target, online, 0.9)
    assert torch.allclose(target.weight, torch.full((2, 3), 0.1))
    pretrain.ema_update(target, online, 0.9)
    assert torch.allclose(target.weight, torch.full((2, 3), 0.19))
    assert pretrain.ema_momentum(0, 100, 0.996, 1.0) == 0.996
    assert pretrain.ema_momentum(99, 100, 0.996, 1.0) == 1.0
    assert abs(pretrain.ema_momentum(33, 67, 0.99, 1.0) - 0.995) < 1e-9


def test_config_composition_groups():
    cfg = compose_config("pretrain", ["preset=smoke", "regularizer=sigreg", "model=vit_small"])
    assert cfg.regularizer.name == "sigreg" and cfg.model.embed_dim == 384 and cfg.predictor.embed_dim == 192
    assert cfg.model.img_size == 32 and cfg.data.num_frames == cfg.model.num_frames == 4
    assert cfg.data.generator.size == 32
    cpu = compose_config("pretrain", ["preset=cpu"])
    assert cpu.model.embed_dim == 192 and cpu.regularizer.name == "ema"
    with pytest.raises(Exception):
        compose_config("pretrain", ["preset=smoke", "train.steps=abc"])
    with pytest.raises(Exception):
        compose_config("pretrain", ["preset=smoke", "model.nonexistent=1"])


def test_smoke_run_writes_summary_and_loadable_encoder(tmp_path, data_dir):
    out = tmp_path / "run"
    summary = run_json("pretrain", ["preset=smoke", f"out_dir={out}", f"data.synthetic_dir={data_dir}"])
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("steps", "final_loss", "checkpoint", "probe_r2", "probe_r2_random_init", "probe_r2_ridge",
                "effective_rank", "embed_dim", "bad_videos", "seconds", "tokens_per_s"):
        assert key in on_disk, key
    assert on_disk["steps"] == summary["steps"] == 6 and on_disk["bad_videos"] == 0
    assert on_disk["embed_dim"] == 48 and 1 <= on_disk["effective_rank"] <= 48
    enc = load_encoder(on_disk["checkpoint"], "cpu")
    ckpt = load_checkpoint(on_disk["checkpoint"])
    assert torch.equal(enc.state_dict()["norm.weight"], ckpt["extra"]["target"]["norm.weight"])
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.training
    z = enc.encode_frames(torch.randn(1, 2, 3, 32, 32))
    assert z.shape == (1, 2, 16, 48)


@pytest.mark.parametrize("reg", ["sigreg", "rdmreg", "vicreg"])
def test_regularizers_run_without_ema(tmp_path, data_dir, reg):
    out = tmp_path / reg
    s = run_json("pretrain", FAST + [f"regularizer={reg}", "train.steps=2", f"out_dir={out}",
                                        f"data.synthetic_dir={data_dir}"])
    ckpt = load_checkpoint(s["checkpoint"])
    assert ckpt["extra"] == {} and s["regularizer"] == reg
    enc = load_encoder(s["checkpoint"])  # falls back to the online encoder
    assert torch.equal(enc.state_dict()["norm.weight"], ckpt["model"]["encoder.norm.weight"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"sigreg": "loss/sigreg", "rdmreg": "loss/rdmreg", "vicreg": "loss/vic_var"}[reg] in rows[0]
    assert "collapse/eff_rank" in rows[0]


def test_ema_with_vicreg_terms(tmp_path, data_dir):
    out = tmp_path / "cjepa"
    s = run_json("pretrain", FAST + ["regularizer.ema_vicreg=0.5", "train.steps=1", f"out_dir={out}",
                                        f"data.synthetic_dir={data_dir}"])
    assert "target" in load_checkpoint(s["checkpoint"])["extra"]  # still an EMA target
    r = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert r["loss/vic_var"] > 0
    expected = r["loss/pred"] + 0.5 * (1.0 * r["loss/vic_var"] + 0.04 * r["loss/vic_cov"])
    assert abs(r["loss/total"] - expected) < 1e-4 * expected


def test_killed_run_resumes_exactly(tmp_path, data_dir, monkeypatch):
    common = FAST + ["train.steps=6", "train.ckpt_every=3", f"data.synthetic_dir={data_dir}"]
    straight = run_json("pretrain", common + [f"out_dir={tmp_path / 'a'}"])

    real_step = pretrain.train_step

    def dying_step(cfg, trainer, target, x, step):
        if step == 4:
            raise KeyboardInterrupt("simulated kill")
        return real_step(cfg, trainer, target, x, step)

    monkeypatch.setattr(pretrain, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_json("pretrain", common + [f"out_dir={tmp_path / 'b'}"])
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 3
    monkeypatch.setattr(pretrain, "train_step", real_step)
    resumed = run_json("pretrain", common + [f"out_dir={tmp_path / 'b'}", "train.resume=true"])
    assert resumed["start_step"] == 3
    a, b = load_checkpoint(straight["checkpoint"]), load_checkpoint(resumed["checkpoint"])
    assert b["step"] == 6
    for k, v in a["model"].items():
        assert torch.allclose(v, b["model"][k], atol=1e-6), k
    for k, v in a["extra"]["target"].items():
        assert torch.allclose(v, b["extra"]["target"][k], atol=1e-6), k


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_torchrun_two_processes(tmp_path, data_dir):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "worldmodel.cli", "pretrain", *FAST,
           "regularizer=sigreg", "train.steps=3", f"out_dir={out}", f"data.synthetic_dir={data_dir}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    assert (out / "checkpoint.pt").is_file()


def test_each_regularizer_option_has_its_own_settings_tuned_per_preset():
    """One schema per option of the regularizer group; the cpu preset's tuned values reach the option chosen."""
    from worldmodel.config import settings
    from worldmodel.train.regularizers import EmaConfig, SigRegConfig

    ema = settings(compose_config("pretrain", ["preset=cpu"])).regularizer
    assert isinstance(ema, EmaConfig) and (ema.ema_start, ema.ema_vicreg) == (0.99, 0.1)
    assert not hasattr(ema, "sigreg_weight")
    sig = settings(compose_config("pretrain", ["preset=cpu", "regularizer=sigreg"])).regularizer
    assert isinstance(sig, SigRegConfig)
    assert (sig.sigreg_weight, sig.sigreg_slices, sig.sigreg_tokens) == (0.125, 1024, 512)
    assert settings(compose_config("pretrain", ["preset=gpu", "regularizer=sigreg"])).regularizer.sigreg_weight == 0.05
    with pytest.raises(Exception, match="ema_start"):
        compose_config("pretrain", ["preset=cpu", "regularizer=sigreg", "regularizer.ema_start=0.9"])
