"""Episode dataset: write -> read round trip (lossless video), windows with frame_skip stacking, validation,
corrupt episodes skipped and counted, interrupted collection resumed."""
import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from worldmodel.contracts.manifest import EpisodeEntry, Manifest  # noqa: E402
from worldmodel.data import collect  # noqa: E402
from worldmodel.data.rollouts import (  # noqa: E402
    EpisodeError,
    RolloutDataset,
    complete_episodes,
    episode_paths,
    load_episode,
    read_manifest,
    read_video,
    split_episodes,
    write_episode,
    write_manifest,
    write_video,
)

A, S, H = 2, 3, 32


def make_dataset(root: Path, lengths=(9, 12, 7)) -> dict:
    """Episodes with structured frames (a moving square on noise), actions a[t] = (ep, t)."""
    rng = np.random.default_rng(0)
    entries, eps = [], {}
    for i, T in enumerate(lengths):
        frames = rng.integers(0, 256, (T + 1, H, H, 3), dtype=np.uint8)
        for t in range(T + 1):
            frames[t, 4:10, t: t + 6] = (255, 0, 0)
        actions = np.stack([np.full(T, i / 10), np.arange(T) / 100], 1).astype(np.float32)  # (T, A)
        states = np.arange((T + 1) * S, dtype=np.float32).reshape(T + 1, S) + 1000 * i
        entries.append(write_episode(root, i, frames, actions, states, np.zeros(T), np.zeros(T, bool), fps=20,
                                     seed=100 + i))
        eps[i] = dict(frames=frames, actions=actions, states=states)
    write_manifest(root, Manifest.from_dict({
        "env_id": "test", "env_kwargs": {}, "action_low": [-1.0] * A, "action_high": [1.0] * A, "action_dim": A,
        "state_dim": S, "frame_skip": 1, "fps": 20, "resolution": [H, H], "episodes": len(entries),
        "frames": sum(T + 1 for T in lengths), "policy": "test", "episode_list": entries}))
    return eps


def test_round_trip_is_lossless(tmp_path):
    eps = make_dataset(tmp_path)
    m = read_manifest(tmp_path)
    assert m.episode_list[1] == EpisodeEntry(id=1, steps=12, seed=101)
    for i, ref in eps.items():
        ep = load_episode(tmp_path, i)
        assert ep["frames"].dtype == np.uint8 and ep["frames"].shape == ref["frames"].shape
        assert np.abs(ep["frames"].astype(int) - ref["frames"]).max() == 0  # libx264rgb crf 0: exact
        assert np.array_equal(ep["actions"], ref["actions"]) and np.array_equal(ep["states"], ref["states"])
    assert complete_episodes(tmp_path) == [0, 1, 2]


def test_widths_decord_cannot_read_fall_back_to_ffmpeg(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (5, 24, 48, 3), dtype=np.uint8)  # width 48: decord#336
    write_video(tmp_path / "x.mp4", frames, fps=20)
    assert np.array_equal(read_video(tmp_path / "x.mp4"), frames)
    assert np.array_equal(read_video(tmp_path / "x.mp4", [4, 1]), frames[[4, 1]])


@pytest.mark.parametrize("cache", [True, False])
def test_windows_with_frame_skip(tmp_path, cache):
    eps = make_dataset(tmp_path)
    ds = RolloutDataset(tmp_path, num_frames=3, frame_skip=2, cache=cache)
    span = 4  # (num_frames - 1) * frame_skip env steps per window
    assert len(ds) == sum(T - span + 1 for T in (9, 12, 7)) and ds.action_dim_step == 2 * A
    for index in (0, len(ds) - 1, 7):
        item = ds[index]
        e, s = item["episode"], item["start"]
        ref = eps[e]
        assert item["frames"].shape == (3, H, H, 3) and item["actions"].shape == (2, 2 * A)
        assert np.array_equal(item["frames"].numpy(), ref["frames"][[s, s + 2, s + 4]])
        assert np.array_equal(item["states"].numpy(), ref["states"][[s, s + 2, s + 4]])
        # action j = concat(a[s+2j], a[s+2j+1]): the env actions between frames j and j+1, in time order
        want = np.stack([np.concatenate(ref["actions"][s + 2 * j: s + 2 * j + 2]) for j in range(2)])
        assert np.array_equal(item["actions"].numpy(), want)
    sub = RolloutDataset(tmp_path, num_frames=2, episodes=[1])
    assert set(sub.windows[:, 0].tolist()) == {1} and len(sub) == 12


def test_corrupt_episode_skipped_and_counted(tmp_path):
    make_dataset(tmp_path)
    episode_paths(tmp_path, 1)[0].write_bytes(b"not a video")
    ds = RolloutDataset(tmp_path, num_frames=2, max_bad_fraction=0.5)
    assert ds.num_skipped == 1 and 1 in ds.skipped and 1 not in ds.windows[:, 0]
    with pytest.raises(ValueError, match="1 of 3 episodes are corrupt .* episode 1: ep_000001.mp4 unreadable"):
        RolloutDataset(tmp_path, num_frames=2)  # 33% corrupt > the default max_bad_fraction 10%
    with pytest.raises(ValueError, match="episode 1"):
        RolloutDataset(tmp_path, num_frames=2, strict=True, max_bad_fraction=0.5)
    ds = RolloutDataset(tmp_path, num_frames=9, max_bad_fraction=0.5)  # episode 2 (7 steps) is too short: not corrupt
    assert ds.too_short == [2] and ds.num_skipped == 1 and len(ds) == 2
    npz = episode_paths(tmp_path, 2)[1]
    npz.write_bytes(npz.read_bytes()[:50])  # truncated npz
    ds = RolloutDataset(tmp_path, num_frames=2, max_bad_fraction=0.7)
    assert ds.num_skipped == 2 and len(ds) == 9 and "ep_000002.npz unreadable" in ds.skipped[2]
    with pytest.raises(ValueError, match="no window"):
        RolloutDataset(tmp_path, num_frames=20, max_bad_fraction=0.7)


def test_validation_errors_name_the_problem(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "manifest.json"
    good = json.loads(path.read_text())
    for key, value, match in [("action_dim", None, "action_dim"), ("episodes", 5, "episode_list"),
                              ("action_low", [-1.0], "action_low")]:
        bad = dict(good)
        if value is None:
            del bad[key]
        else:
            bad[key] = value
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            read_manifest(tmp_path)
    path.write_text(json.dumps({**good, "action_high": [0.05, 1.0]}))  # episode 1's actions are 0.1 > 0.05
    with pytest.raises(ValueError, match=r"episode 1: ep_000001.npz: action 0.1000 at step 0, dim 0 is outside"):
        RolloutDataset(tmp_path, num_frames=2)
    path.write_text(json.dumps({**good, "state_dim": 4}))
    with pytest.raises(EpisodeError, match=r"episode 0: states have shape \(10, 3\)"):
        load_episode(tmp_path, 0)
    with pytest.raises(FileNotFoundError, match="manifest"):
        read_manifest(tmp_path / "nowhere")


def episodes_manifest(n: int) -> Manifest:
    """A manifest listing episodes 0..n-1 of 5 steps each."""
    return Manifest(env_id="test", action_low=[-1.0], action_high=[1.0], action_dim=1, state_dim=1, frame_skip=1,
                    fps=20.0, resolution=[8, 8], episodes=n, frames=6 * n,
                    episode_list=[EpisodeEntry(id=i, steps=5) for i in range(n)])


def test_split_episodes_deterministic():
    m = episodes_manifest(10)
    tr, va = split_episodes(m, 0.2, seed=3)
    assert len(va) == 2 and sorted(tr + va) == list(range(10)) and (tr, va) == split_episodes(m, 0.2, seed=3)
    assert split_episodes(episodes_manifest(2), 0.01)[1] != []


def test_resume_after_interruption(tmp_path, monkeypatch):
    from worldmodel.commands import compose_config
    from worldmodel.config import settings

    cfg = settings(compose_config("collect", ["preset=smoke", f"out_dir={tmp_path}", "episodes=4", "steps=8"]))
    real, calls = collect.collect_episode, []

    def dying(job):  # the third episode is interrupted half-way through its write
        calls.append(job["index"])
        if len(calls) == 3:
            mp4, _ = episode_paths(job["root"], job["index"])
            mp4.parent.mkdir(parents=True, exist_ok=True)
            mp4.with_name(mp4.name + ".partial").write_bytes(b"half")
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(collect, "collect_episode", dying)
    with pytest.raises(KeyboardInterrupt):
        collect.run(cfg)
    m = read_manifest(tmp_path)
    assert m.episodes == 2 and m.episode_ids == [0, 1]
    first = load_episode(tmp_path, 1)
    monkeypatch.setattr(collect, "collect_episode", real)
    summary = collect.run(cfg)  # the same command resumes
    assert summary.new_episodes == 2 and summary.episodes == 4
    assert not list((tmp_path / "episodes").glob("*.partial"))
    assert np.array_equal(load_episode(tmp_path, 1)["frames"], first["frames"])  # kept, not redone
    # an orphan video without its npz (killed between the renames) is redone, identically
    ref = load_episode(tmp_path, 3)
    episode_paths(tmp_path, 3)[1].unlink()
    summary = collect.run(cfg)
    assert summary.new_episodes == 1
    again = load_episode(tmp_path, 3)
    assert np.array_equal(again["frames"], ref["frames"]) and np.array_equal(again["actions"], ref["actions"])
