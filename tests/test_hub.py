"""Datasets and timm encoders named by hub id resolve through huggingface_hub's standard cache, offline, from a
cache this test builds the way the hub client lays it out (``<datasets|models>--<org>--<name>/refs/main`` +
``snapshots/<commit>/``); with the repository absent and HF_HUB_OFFLINE=1, one line naming the id, exit 2.
Nothing is downloaded."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_json

from worldmodel.data import formats, hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """A smoke train-ac run: its bootstrap dataset and encoder."""
    out = tmp_path_factory.mktemp("hub") / "ac"
    run_json("train-ac", ["preset=smoke", f"out_dir={out}"])
    return out


def _cache_with(tmp_path: Path, source: Path, repo: str = "testorg/tiny", kind: str = "datasets") -> Path:
    """An HF hub cache holding ``source`` as repository ``repo`` at COMMIT, branch main pointing at it."""
    cache = tmp_path / "hf"
    storage = cache / f"{kind}--{repo.replace('/', '--')}"
    shutil.copytree(source, storage / "snapshots" / COMMIT)
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(COMMIT)
    return cache


def _wm(args: list[str], cache: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WM_CACHE": str(tmp_path / "wm_cache")}
    return subprocess.run([sys.executable, "-m", "worldmodel.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_hub_ids_and_local_paths_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.hub_id("lerobot/pusht") == ("lerobot/pusht", None)
    assert hub.hub_id("hf://lerobot/pusht@v3.0") == ("lerobot/pusht", "v3.0")
    assert hub.hub_id("./runs/data") is None and hub.hub_id("/abs/data") is None
    (tmp_path / "runs" / "data").mkdir(parents=True)
    assert hub.hub_id("runs/data") is None  # an existing local folder wins
    assert hub.hub_id("a/b/c") is None


def test_a_hub_lerobot_dataset_trains_offline_from_the_cache(smoke, tmp_path):
    lerobot = tmp_path / "lerobot"
    formats.convert(smoke / "bootstrap" / "data", lerobot, "lerobot-v3.0")
    cache = _cache_with(tmp_path, lerobot)
    res = _wm(["data", "inspect", "dataset=testorg/tiny", f"out_dir={tmp_path / 'inspect'}"], cache, tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "inspect" / "summary.json").read_text())
    assert summary["episodes"] == json.loads((smoke / "bootstrap" / "data" / "manifest.json").read_text())["episodes"]
    enc = smoke / "bootstrap" / "encoder" / "checkpoint.pt"
    res = _wm(["train-ac", "preset=smoke", "bootstrap=false", "dataset=hf://testorg/tiny@main",
               f"encoder_checkpoint={enc}", f"out_dir={tmp_path / 'ac'}"], cache, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "ac" / "checkpoint.pt").is_file()
    copies = list((tmp_path / "wm_cache").glob("datasets--testorg--tiny--*.wm"))
    assert len(copies) == 1  # converted once, outside the hub's cache
    assert sorted(p.name for p in (cache / "datasets--testorg--tiny" / "snapshots").iterdir()) == [COMMIT]
    with np.load(copies[0] / "episodes" / "ep_000000.npz") as a, \
            np.load(smoke / "bootstrap" / "data" / "episodes" / "ep_000000.npz") as b:
        assert np.array_equal(a["actions"], b["actions"])


def test_an_uncached_hub_dataset_offline_is_one_line(smoke, tmp_path):
    cache = tmp_path / "empty_hf"
    cache.mkdir()
    enc = smoke / "bootstrap" / "encoder" / "checkpoint.pt"
    res = _wm(["train-ac", "preset=smoke", "bootstrap=false", "dataset=testorg/absent",
               f"encoder_checkpoint={enc}", f"out_dir={tmp_path / 'ac'}"], cache, tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert "testorg/absent" in line and "HF_HUB_OFFLINE=1" in line and "not in the hub cache" in line


def test_a_hub_timm_encoder_trains_offline_from_the_cache(smoke, tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32)
    repo = tmp_path / "repo"
    repo.mkdir()
    save_file(model.state_dict(), repo / "model.safetensors")
    (repo / "config.json").write_text(json.dumps({"architecture": "vit_tiny_patch16_224", "num_classes": 0,
                                                  "pretrained_cfg": {"tag": "", "mean": [0.5] * 3, "std": [0.5] * 3}}))
    cache = _cache_with(tmp_path, repo, "testorg/tiny-vit", kind="models")
    data = smoke / "bootstrap" / "data"
    res = _wm(["train-ac", "preset=smoke", "bootstrap=false", f"dataset={data}", "encoder_img_size=32",
               "encoder=timm:hf-hub:testorg/tiny-vit", f"out_dir={tmp_path / 'ac'}"], cache, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    ckpt = torch.load(tmp_path / "ac" / "checkpoint.pt", weights_only=True)
    enc = {k.removeprefix("model."): v for k, v in ckpt["extra"]["encoder"].items() if k.startswith("model.")}
    assert all(torch.equal(enc[k], v) for k, v in model.state_dict().items())  # the hub's weights, embedded
    res = _wm(["train-ac", "preset=smoke", "bootstrap=false", f"dataset={data}", "encoder_img_size=32",
               "encoder=timm:hf-hub:testorg/absent-vit", f"out_dir={tmp_path / 'ac2'}"], cache, tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert "testorg/absent-vit" in line and "HF_HUB_OFFLINE=1" in line


def _vjepa2_hf_repo(tmp_path: Path) -> tuple[Path, dict]:
    """Their tiny fixture encoder (tests/data/vjepa2_tiny.pt, made by facebookresearch/vjepa2's code) laid out as
    transformers' VJEPA2Model release is: qkv split into query/key/value, renamed, sharded in two safetensors
    files with an index, a predictor key beside it, heads in config.json."""
    import torch
    from safetensors.torch import save_file

    blob = torch.load(Path(__file__).parent / "data" / "vjepa2_tiny.pt", weights_only=True)
    hf = {"predictor.embeddings.mask_tokens": torch.zeros(2, 1, 1, 8)}
    for key, value in blob["checkpoint"]["encoder"].items():
        key = key.removeprefix("module.backbone.")
        if key.startswith("blocks."):
            key = "encoder.layer." + key[len("blocks."):].replace("attn.", "attention.")
        else:
            key = key.replace("patch_embed.", "encoder.embeddings.patch_embeddings.")
            key = key.replace("norm.", "encoder.layernorm.")
        if ".qkv." in key:
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                hf[key.replace("qkv", name)] = part.contiguous()
        else:
            hf[key] = value
    repo = tmp_path / "vjepa2_repo"
    repo.mkdir()
    shards = {"model-00001-of-00002.safetensors": {k: v for k, v in hf.items() if ".layer.1." not in k},
              "model-00002-of-00002.safetensors": {k: v for k, v in hf.items() if ".layer.1." in k}}
    for name, part in shards.items():
        save_file(part, repo / name)
    (repo / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: name for name, part in shards.items() for k in part}}))
    (repo / "config.json").write_text(json.dumps({"model_type": "vjepa2", "hidden_size": 64, "num_attention_heads": 1,
                                                  "hidden_act": "gelu", "layer_norm_eps": 1e-6, "use_rope": True}))
    return repo, blob


def test_a_hub_vjepa2_encoder_gives_their_tokens_and_trains_offline(smoke, tmp_path, monkeypatch):
    import torch
    from huggingface_hub import constants

    from worldmodel.models.video_vit import VideoViT, VideoViTConfig
    from worldmodel.models.vjepa2 import load_vjepa2_hub

    repo, blob = _vjepa2_hf_repo(tmp_path)
    cache = _cache_with(tmp_path, repo, "testorg/tiny-vjepa2", kind="models")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cfg, state = load_vjepa2_hub("testorg/tiny-vjepa2@main")
    model = VideoViT(VideoViTConfig(**cfg)).eval()
    model.load_state_dict(state)  # strict: every weight has its place, the predictor's are left out
    with torch.no_grad():
        assert (model(blob["clip"]) - blob["tokens"]).abs().max() < 1e-5  # the tokens their own code gave

    data = smoke / "bootstrap" / "data"
    res = _wm(["train-ac", "preset=smoke", "bootstrap=false", f"dataset={data}", "encoder_img_size=32",
               "encoder=vjepa2:testorg/tiny-vjepa2", f"out_dir={tmp_path / 'ac'}"], cache, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((tmp_path / "ac" / "summary.json").read_text())
    assert summary["encoder"] == "vjepa2:testorg/tiny-vjepa2" and summary["tokens_per_frame"] == 4
    res = _wm(["train-ac", "preset=smoke", "bootstrap=false", f"dataset={data}", "encoder_img_size=32",
               "encoder=vjepa2:testorg/absent-vjepa2", f"out_dir={tmp_path / 'ac2'}"], cache, tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert "testorg/absent-vjepa2" in line and "HF_HUB_OFFLINE=1" in line
