"""Frozen-encoder probes: the attentive probe localizes a marked token, its setting is chosen on validation
videos (not on the test clips), and the feature normalizations do what they say."""
from dataclasses import replace

import pytest
import torch

from worldmodel.probes.attentive import (
    ProbeConfig,
    fit_attentive,
    grid_features,
    mean_r2,
    normalize_features,
    split_by_video,
    train_attentive,
    validation_split,
)

GRID = (2, 4, 4)  # (t, h, w) tokens


def marked_tokens(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips of noise tokens (n, 32, 8) with one token per clip marked in channel 0; target: its (h, w) coordinate.

    The marker says *which* token holds the object but not *where* it is: position comes only from the grid.
    """
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(n, 32, 8, generator=g)
    where = torch.randint(0, 32, (n,), generator=g)
    tokens[torch.arange(n), where, 0] = 6.0
    coords = grid_features(GRID)[:, :3]  # (32, 3) t, h, w in [-1, 1]
    y = coords[where, 1:]  # (n, 2)
    vids = torch.arange(n) // 4  # 4 clips per "video"
    return tokens, y, vids


def test_attentive_probe_reads_position_from_grid_coordinates_only():
    tokens, y, vids = marked_tokens(256)
    train, test = split_by_video(vids, 0.25, seed=0)
    cfg = ProbeConfig(epochs=30, batch_size=32, dim=16, heads=2, lrs=[3e-3], normalize=["none"])
    fit, val = validation_split(vids, train, cfg)
    with_grid, _ = fit_attentive({"none": tokens}, y, fit, val, test, GRID, replace(cfg, coords=True))
    without, _ = fit_attentive({"none": tokens}, y, fit, val, test, GRID, cfg)
    assert with_grid.min() > 0.75, with_grid  # the marked token's grid position is recovered
    assert without.max() < 0.2, without  # features alone carry no position: nothing to read


def test_learning_rate_chosen_on_validation_videos():
    tokens, y, vids = marked_tokens(256, seed=1)
    train, test = split_by_video(vids, 0.25, seed=0)
    cfg = ProbeConfig(epochs=40, batch_size=32, dim=16, heads=2, coords=True, lrs=[1e-7, 3e-3],
                      normalize=["none"])
    fit, val = validation_split(vids, train, cfg)
    assert val is not None and not (fit & val).any() and not ((fit | val) & test).any()  # test never chooses
    r2, setting = fit_attentive({"none": tokens}, y, fit, val, test, GRID, cfg)
    assert setting["normalize"] == "none" and setting["lr"] == 3e-3  # a rate that cannot learn loses on validation
    assert r2.min() > 0.7, r2


def test_feature_normalizations_use_training_statistics():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(6, 6, generator=g)
    x = torch.randn(20, 10, 6, generator=g) @ mix + 3.0  # (n, N, D) correlated channels
    train = torch.arange(20) < 15
    w = normalize_features(x, train, "whiten")[train].reshape(-1, 6).double()
    assert torch.allclose(w.T @ w / len(w), torch.eye(6, dtype=torch.float64), atol=1e-3)  # identity covariance
    s = normalize_features(x, train, "standardize")[train].reshape(-1, 6)
    assert torch.allclose(s.std(0), torch.ones(6), atol=1e-3) and torch.allclose(s.mean(0), torch.zeros(6), atol=1e-4)
    with pytest.raises(ValueError, match="probe.normalize"):
        normalize_features(x, train, "batchnorm")


def test_early_stopping_keeps_the_weights_of_the_best_validation_epoch():
    tokens, y, _ = marked_tokens(112, seed=2)
    y = y + 0.25 * torch.randn(y.shape, generator=torch.Generator().manual_seed(3))  # noisy: long training over-fits
    tr, va = slice(0, 48), slice(48, 112)
    cfg = ProbeConfig(epochs=60, batch_size=8, dim=32, heads=2, coords=True, eval_every=1)
    probe, mu, sd, kept = train_attentive(tokens[tr], y[tr], GRID, cfg, 1e-2, val=(tokens[va], y[va]))
    restored = mean_r2(probe, mu, sd, tokens[va], y[va])
    assert kept["val_r2"] > 0.7 and kept["epochs"] < cfg.epochs  # it learned, and the best epoch was not the last
    assert restored == pytest.approx(kept["val_r2"], abs=1e-5)  # the returned weights are that epoch's
    last, mu, sd, none = train_attentive(tokens[tr], y[tr], GRID, replace(cfg, eval_every=0), 1e-2,
                                         val=(tokens[va], y[va]))
    final = mean_r2(last, mu, sd, tokens[va], y[va])
    assert none["val_r2"] is None and final < restored - 0.05  # the over-fit last epoch scores worse


def test_constant_state_dims_never_enter_a_probe():
    """A state dim that never changes (a fixed target, a wall) has nothing to predict: R^2 0, left out."""
    import torch

    from worldmodel.probes.linear import RidgeProbe

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, 8, generator=g)
    y = torch.stack([x[:, 0, 0] * 2, torch.full((200,), 3.0), x[:, 1, 1]], 1)  # dim 1 constant
    probe = RidgeProbe(x, y, min_r2=0.5)
    assert probe.r2[1] == 0.0 and 1 not in probe.dims.tolist() and probe.r2[0] > 0.9
