"""Encoder fine-tuning in train-ac (``finetune.blocks``): which weights train, that training and planning encode
frames the same way, and that drift and planning read the fine-tuned encoder from the checkpoint."""
import json
from pathlib import Path

import pytest
import torch
from helpers import run_json

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.finetune import EncoderPredictor
from worldmodel.models.video_vit import VideoViT, VideoViTConfig, encoder_weights
from worldmodel.models.world_model import LatentWorldModel, encode_observations, split_state
from worldmodel.utils.checkpoint import load_checkpoint


def _tiny(blocks: int) -> EncoderPredictor:
    torch.manual_seed(0)
    enc = VideoViT(VideoViTConfig(img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=2))
    pred = ACPredictor(ACPredictorConfig(embed_dim=24, pred_dim=16, depth=1, num_heads=2, grid_h=2, grid_w=2,
                                         action_dim=2, state_dim=0, pool=2))
    return EncoderPredictor(enc, pred, pool=2, blocks=blocks)


def test_only_the_last_blocks_train():
    model = _tiny(blocks=1)
    trainable = {n for n, p in model.encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("blocks.2.", "norm.")) for n in trainable)
    assert {n for n, p in _tiny(blocks=-1).encoder.named_parameters() if not p.requires_grad} == set()
    frames = torch.randint(0, 256, (2, 3, 32, 32, 3), dtype=torch.uint8)
    z, *_ = model(frames, torch.zeros(2, 2, 2), None, rollout_steps=1)
    z.square().mean().backward()
    grads = {n for n, p in model.encoder.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads == trainable


def test_training_latents_are_planning_latents():
    """The differentiable encoding of a window equals the observation convention drift and planning use."""
    model = _tiny(blocks=2).eval()
    frames = torch.randint(0, 256, (2, 3, 32, 32, 3), dtype=torch.uint8)
    z = model.encode(frames)  # (2, 3, 4, 24)
    ref = encode_observations(model.encoder, frames.flatten(0, 1), pool=2).reshape(z.shape)
    torch.testing.assert_close(z, ref)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    base = tmp_path_factory.mktemp("ft_base")
    first = run_json("train-ac", ["preset=smoke", f"out_dir={base}"])  # bootstraps data and encoder
    out = tmp_path_factory.mktemp("ft") / "run"
    summary = run_json("train-ac", ["preset=smoke", f"out_dir={out}", f"dataset={first['dataset']}",
                                       f"encoder_checkpoint={first['encoder_checkpoint']}", "finetune.blocks=1",
                                       "train.steps=4", "train.optim.warmup_steps=1"])
    return first, summary


def test_finetuned_checkpoint_carries_the_trained_encoder(finetuned):
    first, summary = finetuned
    assert summary["encoder_finetuned_blocks"] == 1
    assert "val_collapse_latent_std" in summary and summary["val_collapse_latent_std"] > 0
    ckpt = load_checkpoint(summary["checkpoint"])
    assert CheckpointMeta.of(ckpt).finetuned
    tuned, _ = split_state(ckpt["model"])
    _, start = encoder_weights(first["encoder_checkpoint"])
    last = max(int(k.split(".")[1]) for k in start if k.startswith("blocks."))
    for k, v in start.items():
        same = torch.equal(tuned[k], v)
        assert same != k.startswith((f"blocks.{last}.", "norm.")) or v.dim() == 0, k  # only those changed
    wm = LatentWorldModel.load(summary["checkpoint"], "cpu")
    for k, v in wm.encoder.state_dict().items():
        torch.testing.assert_close(v, tuned[k])


def test_drift_encodes_with_the_finetuned_encoder(finetuned, tmp_path):
    first, summary = finetuned
    out = run_json("drift", ["preset=smoke", f"checkpoint={summary['checkpoint']}", f"out_dir={tmp_path}"])
    assert json.loads((tmp_path / "summary.json").read_text())["horizons"]
    caches = sorted(Path(first["dataset"], "latent_cache").glob("latents_*.pt"))
    assert len(caches) == 2, caches  # the pretrained encoder's latents and the fine-tuned one's, side by side
    assert Path(out["plot"]).is_file()


def test_sigreg_term_and_monitor_flag_collapsed_latents():
    """Equal frames (what a collapsed encoder would produce) score far above varied ones, and the monitor is 0."""
    from worldmodel.train.ac_finetune import FinetuneConfig, finetune_losses

    model = _tiny(blocks=1)
    torch.manual_seed(1)
    varied = torch.randint(0, 256, (16, 3, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        z = model.encode(varied).flatten(0, 1)
    model.predictor.set_normalization(-torch.ones(2), torch.ones(2), latent_mean=z.mean(0), latent_std=z.std(0))
    batch = {"z": varied, "actions": torch.zeros(16, 2, 2), "states": torch.zeros(16, 3, 0)}
    same = {**batch, "z": varied[:1, :1].expand(16, 3, -1, -1, -1)}
    g = torch.Generator().manual_seed(0)
    parts = [finetune_losses(model, b, 1, None, "l2", FinetuneConfig(), g) for b in (batch, same)]
    assert parts[1]["sigreg"] > 10 * parts[0]["sigreg"]
    assert parts[1]["latent_std"] == 0 and parts[0]["latent_std"] > 0
