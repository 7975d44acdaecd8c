"""Video data: normalization, CSV/folder sources, mixing, bad-video handling, deterministic sampling."""
import logging

import numpy as np
import pytest
import torch

from worldmodel.data.synthetic import (
    RED,
    TILE_RANGE,
    SyntheticConfig,
    factors_of,
    floor_image,
    generate,
    load_factors,
    render,
    shake,
    simulate,
    simulate_flicker,
    write_mp4,
)
from worldmodel.data.video import StepBatchSampler, VideoClipDataset, clip_loader, list_videos, normalize_frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("vids")
    csv = generate(root / "syn", SyntheticConfig(num_videos=3, frames=8, size=32, seed=1))
    return root, csv


def test_normalize_frames_shape_and_values():
    x = torch.full((2, 5, 4, 4, 3), 255, dtype=torch.uint8)
    y = normalize_frames(x)
    assert y.shape == (2, 5, 3, 4, 4) and y.dtype == torch.float32
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(y[0, 0, :, 0, 0], (1 - mean) / std)


def test_synthetic_factors_match_frames(videos):
    root, csv = videos
    paths = list_videos(csv)
    assert len(paths) == 3 and all(p.endswith(".mp4") for p in paths)
    fac, names = load_factors(paths[0])
    assert names == ["red_x", "red_y", "red_vx", "red_vy"] and fac.shape == (8, 4)
    import decord
    frame = decord.VideoReader(paths[0])[0].asnumpy().astype(int)  # (32, 32, 3)
    redness = frame[..., 0] - frame[..., 1]
    ys, xs = np.nonzero(redness > 120)
    assert abs(xs.mean() + 0.5 - fac[0, 0] * 32) < 1.5 and abs(ys.mean() + 0.5 - fac[0, 1] * 32) < 1.5
    assert np.allclose(fac[0, 2:], (fac[1, :2] - fac[0, :2]) * 32, atol=1e-4)  # displacement to the next frame


def test_flicker_discs_live_briefly_include_red_and_stay_behind_the_ball():
    cfg = SyntheticConfig(frames=40, flicker=5, flicker_life=3)
    rng = np.random.default_rng(0)
    traj, radii, colours, bg = simulate(rng, cfg)
    fl = simulate_flicker(rng, cfg)  # (T, K, 6)
    assert fl.shape == (40, 5, 6)
    for k in range(5):  # each disc keeps its spot at most flicker_life frames
        run = 1
        for t in range(1, 40):
            run = run + 1 if np.array_equal(fl[t, k], fl[t - 1, k]) else 1
            assert run <= 3
    assert (fl[..., 3:] == np.array(RED)).all(-1).any()  # red decoys: one frame does not identify the red ball
    frames = render(traj, radii, colours, bg, cfg.size, cfg.border, fl).astype(int)
    cx, cy = np.floor(traj[:, -1]).astype(int).T  # the red ball (drawn last) is on top of every decoy
    assert (frames[np.arange(40), cy, cx] == np.array(RED)).all()


def test_jitter_draws_the_balls_off_their_path_and_the_factors_stay_on_it():
    cfg = SyntheticConfig(frames=200, num_balls=1, jitter=1.5)
    rng = np.random.default_rng(0)
    traj, radii, colours, bg = simulate(rng, cfg)  # (T, 1, 2) the smooth bouncing path
    shown = shake(rng, traj, radii, cfg)
    lo, hi = cfg.border + radii[0], cfg.size - cfg.border - radii[0]
    assert (shown >= lo).all() and (shown <= hi).all()  # kept inside the walls
    centroid = []
    for frames in (render(traj, radii, colours, bg, cfg.size, cfg.border),
                   render(shown, radii, colours, bg, cfg.size, cfg.border)):
        red = (frames[..., 0].astype(int) - frames[..., 1]) > 120  # (T, S, S)
        centroid.append(np.stack([(np.argwhere(r).mean(0)[::-1] + 0.5) for r in red]))  # (T, 2) x, y
    path_err = np.abs(centroid[0] - traj[:, 0]).std()
    jitter_err = (centroid[1] - traj[:, 0]).std()
    assert path_err < 0.2 and 1.2 < jitter_err < 1.8  # drawn about jitter pixels off the path
    fac = factors_of(traj, cfg.size)  # factors follow the path: constant velocity between bounces
    accel = np.abs(np.diff(fac[:-1, 2:], axis=0)).max(-1)
    assert (accel < 1e-4).mean() > 0.8


def test_tiled_floor_is_shared_by_all_videos_varies_by_place_and_is_never_red():
    cfg = SyntheticConfig(tiles=4, size=32)
    floor = floor_image(cfg)  # (32, 32, 3)
    assert np.array_equal(floor, floor_image(SyntheticConfig(tiles=4, size=32, seed=7)))  # same for every dataset
    assert len(np.unique(floor.reshape(-1, 3), axis=0)) == 16  # one colour per tile
    assert (floor[..., 0] <= floor[..., 1:].max(-1)).all()  # a tile is never the reddest thing in view
    frames = [render(*simulate(np.random.default_rng(s), cfg), cfg.size, cfg.border, floor=floor) for s in (0, 1)]
    b = int(round(cfg.border))
    ball_free = [(f[0].astype(int) - np.clip(floor + 0.5, 0, 255).astype(int)) == 0 for f in frames]
    shared = ball_free[0].all(-1) & ball_free[1].all(-1)  # pixels showing the floor in both videos
    assert shared[b:-b, b:-b].mean() > 0.5  # the floor, not a per-video background, fills the arena


def test_tile_contrast_scales_the_tiles_about_mid_grey_and_keeps_them_apart():
    full, faint = (floor_image(SyntheticConfig(tiles=4, size=32, tile_contrast=c)) for c in (1.0, 0.1))
    mid = sum(TILE_RANGE) / 2  # mid grey of the tile colours
    assert np.allclose(faint - mid, 0.1 * (full - mid), atol=1e-4)  # same layout, a tenth of the spread
    assert np.ptp(faint) < 10 < np.ptp(full)
    assert len(np.unique(faint.reshape(-1, 3), axis=0)) == 16  # every tile still has its own colour
    assert (faint[..., 0] <= faint[..., 1:].max(-1)).all()  # and none is red


def test_clips_shapes_folder_source_and_determinism(videos):
    root, csv = videos
    ds = VideoClipDataset([root / "syn" / "videos"], num_frames=4, frame_step=2, img_size=16)
    assert len(ds) == 3 and ds.bad == []
    a, b = ds[(1, 123)], ds[(1, 123)]
    assert a.shape == (3, 4, 16, 16) and torch.equal(a, b)
    loader = clip_loader(ds, batch_size=2, start_step=3, steps=5, seed=0)
    batches = list(loader)
    assert len(batches) == 2 and batches[0].shape == (2, 3, 4, 16, 16)
    # a loader resumed at step 4 yields the same batch for step 4
    assert torch.equal(list(clip_loader(ds, 2, 4, 5, seed=0))[0], batches[1])


def test_decoded_video_cache_gives_the_same_clips(videos):
    """Clips sliced from videos decoded whole and kept in memory equal clips decoded one by one, and the cache
    stays inside its budget (a budget of one video keeps one; the others are decoded clip by clip)."""
    root, _ = videos
    plain = VideoClipDataset([root / "syn" / "videos"], num_frames=4, frame_step=2, img_size=16)
    one = plain.lengths[0] * plain.frame_bytes[0] / 2**20  # MB of one decoded video
    cached = VideoClipDataset([root / "syn" / "videos"], num_frames=4, frame_step=2, img_size=16, cache_mb=100)
    small = VideoClipDataset([root / "syn" / "videos"], num_frames=4, frame_step=2, img_size=16, cache_mb=one)
    for key in [(i % 3, seed) for i, seed in enumerate(range(100, 112))]:
        ref = plain[key]
        assert torch.equal(cached[key], ref) and torch.equal(small[key], ref)
    assert len(cached._decoded) == 3 and len(small._decoded) == 1 and plain._decoded == {}


def test_mixture_weights(videos, tmp_path):
    root, csv = videos
    other = tmp_path / "other.csv"
    other.write_text(f"{list_videos(csv)[0]} 7\n")
    ds = VideoClipDataset([csv, other], weights=[1.0, 3.0], num_frames=4, img_size=16)
    assert len(ds) == 4
    assert torch.allclose(ds.weights, torch.tensor([1 / 12, 1 / 12, 1 / 12, 3 / 4], dtype=torch.float64))
    picks = torch.cat([torch.tensor([v for v, _ in StepBatchSampler(ds.weights, 64, 0, 1, seed=s).batch_for(0)])
                       for s in range(10)])
    assert 0.6 < (picks == 3).float().mean() < 0.9


def test_corrupt_and_short_videos_are_skipped_and_counted(videos, tmp_path, caplog):
    root, csv = videos
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in list_videos(csv):
        (folder / p.split("/")[-1]).write_bytes(open(p, "rb").read())
    (folder / "corrupt.mp4").write_bytes(b"\x00\x01not a video" * 100)
    write_mp4(folder / "short.mp4", np.zeros((2, 32, 32, 3), np.uint8), fps=10)
    with caplog.at_level(logging.WARNING):
        ds = VideoClipDataset([folder], num_frames=4, img_size=16)
    assert len(ds) == 3 and len(ds.bad) == 2
    bad = dict(ds.bad)
    assert "unreadable" in bad[str(folder / "corrupt.mp4")]
    assert "too short" in bad[str(folder / "short.mp4")]
    assert "corrupt.mp4" in caplog.text and "short.mp4" in caplog.text
    assert ds[(0, 1)].shape == (3, 4, 16, 16)
    with pytest.raises(ValueError, match="unusable"):
        VideoClipDataset([folder], num_frames=4, img_size=16, max_bad_fraction=0.2)


def test_all_bad_is_a_clear_error(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"garbage")
    write_mp4(tmp_path / "b.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=10)
    with pytest.raises(ValueError, match="no usable video"):
        VideoClipDataset([tmp_path], num_frames=4, img_size=16)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoClipDataset([tmp_path / "missing.csv"], num_frames=4)
