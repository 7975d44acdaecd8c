"""Pixel baseline: token round trip, parameter parity with the latent predictor, block-causality, cached
rollout = full recompute, a tiny training run beats copy-last on pixels, and the ``wm train-pixel`` entry point."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from worldmodel.commands import compose_config
from worldmodel.config import to_dict
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.pixel_predictor import (
    PixelWorldModel,
    frames_to_tokens,
    parameter_counts,
    patchify,
    pixel_geometry,
    pixel_model_config,
    tokens_to_frames,
    unpatchify,
)


def _latent_cfg(preset: str) -> ACPredictorConfig:
    """The latent predictor train-ac builds at ``preset`` (encoder width from the pretrain preset)."""
    model = to_dict(compose_config("train-ac", [f"preset={preset}"]))["model"]
    enc = to_dict(compose_config("pretrain", [f"preset={preset}"]))["model"]
    embed_dim, patch = enc["embed_dim"], enc["patch_size"]
    frame = 32 if preset == "smoke" else 64  # the smoke encoder and data are 32 px
    grid = frame // patch // model["pool"]
    return ACPredictorConfig(**{**model, "embed_dim": embed_dim, "grid_h": grid, "grid_w": grid,
                                "action_dim": 2, "state_dim": 4})


def test_patchify_round_trip_and_layout():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    t = patchify(x, 4)  # (2, 4, 48)
    assert t.shape == (2, 4, 48)
    assert torch.equal(t[:, 1], x[:, :, :4, 4:].reshape(2, -1))  # row-major patches, channel-major inside
    assert torch.equal(unpatchify(t, 4, 8, 8), x)
    frames = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    assert torch.equal(tokens_to_frames(frames_to_tokens(frames, 16), 16, 64, 64), frames)


def test_resized_tokens_decode_back_to_frame_size():
    frames = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    frames[:, 16:32, 8:24] = 255  # a white block on 2x2-aligned pixels survives area down / bilinear up
    t = frames_to_tokens(frames, 8, size=32)  # (2, 16, 192)
    assert t.shape == (2, 16, 192)
    back = tokens_to_frames(t, 8, 32, 32, out_size=64)
    assert back.shape == frames.shape and (back.float() - frames.float()).abs().mean() < 8


@pytest.mark.parametrize("preset", ["smoke", "cpu", "gpu"])
def test_parameter_parity_within_20_percent(preset):
    """The pixel model train-pixel builds at a preset vs the latent model train-ac builds at it."""
    latent = _latent_cfg(preset)
    px = to_dict(compose_config("train-pixel", [f"preset={preset}"]))
    frame = 32 if preset == "smoke" else 64
    img, patch = pixel_geometry(frame, latent.grid_h, latent.embed_dim, px["img_size"])
    pixel = pixel_model_config(latent, img, patch, latent.action_dim, latent.state_dim)
    assert pixel.grid_h * pixel.grid_w == latent.grid_h * latent.grid_w  # same tokens per frame
    counts = parameter_counts(pixel, latent)
    assert 0.8 <= counts["params_ratio"] <= 1.2, counts


def _pixel_world_model(state_dim: int = 3) -> PixelWorldModel:
    base = ACPredictorConfig(pred_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, max_steps=8)
    cfg = pixel_model_config(base, 32, 8, action_dim=2, state_dim=state_dim)
    torch.manual_seed(0)
    pred = ACPredictor(cfg)
    for p in pred.parameters():  # non-trivial weights (the residual heads start at zero)
        torch.nn.init.normal_(p, std=0.1)
    return PixelWorldModel(pred, patch_size=8, img_size=32, frame_size=32, frame_skip=1, action_low=[-1, -1],
                           action_high=[1, 1]).eval()


def test_block_causality_on_pixels():
    wm = _pixel_world_model()
    frames = torch.randint(0, 256, (2, 5, 32, 32, 3), dtype=torch.uint8)
    z = wm.encode(frames.flatten(0, 1)).unflatten(0, (2, 5))  # (2, 5, 16, 192)
    a, s = torch.randn(2, 5, 2), torch.randn(2, 5, 3)
    with torch.no_grad():
        ref, _ = wm.predictor(z, a, s)
        z2, a2, s2 = z.clone(), a.clone(), s.clone()
        z2[:, 3:] += 1.0
        a2[:, 3:] = -a2[:, 3:]
        s2[:, 3:] += 1.0
        out, _ = wm.predictor(z2, a2, s2)
    assert torch.allclose(out[:, :3], ref[:, :3], atol=1e-5)
    assert not torch.allclose(out[:, 3:], ref[:, 3:], atol=1e-3)


def test_cached_rollout_equals_recompute_and_decode():
    wm = _pixel_world_model()
    z0 = wm.encode(torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8))
    s0, a = torch.randn(3, 3), torch.randn(3, 6, 2)
    with torch.no_grad():
        cached = wm.rollout(z0, s0, a, use_cache=True).latents
        full = wm.rollout(z0, s0, a, use_cache=False).latents
    assert cached.shape == (3, 6, 16, 192)
    assert (cached - full).abs().max().item() <= 1e-4
    assert wm.decode(cached).shape == (3, 6, 32, 32, 3) and wm.decode(cached).dtype == torch.uint8


def _level_windows(n: int, T: int, gen: torch.Generator) -> dict:
    """Frames whose red level follows action 0 and green level action 1 (60 levels per unit), plus a fixed
    blue left half; copy-last is far off, an action-conditioned pixel model can learn the change."""
    lvl = torch.rand(n, 2, generator=gen) * 120 + 60  # (n, 2) red/green levels
    acts = torch.rand(n, T, 2, generator=gen) * 2 - 1  # (n, T, 2)
    states = [lvl]
    for t in range(T):
        states.append((states[-1] + 60 * acts[:, t]).clamp(0, 255))
    states = torch.stack(states, 1)  # (n, T+1, 2)
    frames = torch.zeros(n, T + 1, 32, 32, 3)
    frames[..., :2] = states[:, :, None, None, :]  # (n, T+1, 32, 32, 2)
    frames[..., :16, 2] = 200.0
    return {"z": frames_to_tokens(frames.round().to(torch.uint8), 8), "actions": acts, "states": states}


def test_tiny_training_beats_copy_last_on_pixels():
    from worldmodel.train.ac_losses import ac_losses

    torch.manual_seed(0)
    base = ACPredictorConfig(pred_dim=64, depth=2, num_heads=2, mlp_ratio=2.0, max_steps=8)
    model = ACPredictor(pixel_model_config(base, 32, 8, action_dim=2, state_dim=0))
    stats = _level_windows(64, 3, torch.Generator().manual_seed(2))["z"].flatten(0, 1)  # (F, N, D) tokens
    model.set_normalization([-1, -1], [1, 1], latent_mean=stats.mean(0), latent_std=stats.std(0))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        parts = ac_losses(model, _level_windows(16, 3, gen), 2, None)
        loss = parts["tf"] + parts["rollout"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        val = ac_losses(model, _level_windows(64, 3, torch.Generator().manual_seed(1)), 2, None)
    assert val["tf"].item() < 0.7 * val["copy_last"].item(), {k: v.item() for k, v in val.items()}


@pytest.mark.skipif(importlib.util.find_spec("worldmodel.data.collect") is None, reason="wm collect not built")
def test_train_pixel_smoke_entry_point(tmp_path):
    from helpers import run_json

    s = run_json("train-pixel", ["preset=smoke", f"out_dir={tmp_path / 'px'}"])
    assert (tmp_path / "px" / "summary.json").is_file() and s["tokens_per_frame"] == 4  # 2x2, as the smoke latents
    assert 0.8 <= s["params_ratio"] <= 1.2, s
    wm = PixelWorldModel.load(s["checkpoint"], "cpu")
    frames = torch.randint(0, 256, (2, wm.frame_size, wm.frame_size, 3), dtype=torch.uint8)
    z = wm.encode(frames)
    s0 = torch.zeros(2, wm.state_dim) if wm.state_dim else None
    pred = wm.rollout(z, s0, torch.zeros(2, 3, wm.action_dim_step)).latents
    assert pred.shape == (2, 3, *z.shape[1:]) and torch.isfinite(pred).all()
    assert wm.decode(pred).shape == (2, 3, wm.frame_size, wm.frame_size, 3)
