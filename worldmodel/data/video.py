"""Decord clip datasets for video pretraining, and the frame normalization every model input uses.

Sources are V-JEPA CSV lists (``path label`` per line, space separated; relative paths are taken relative to
the CSV's folder) or folders searched recursively for video files (so an episode dataset from ``wm collect``,
``episodes/*.mp4``, works as is). Several sources are mixed with weights: a source's weight is split evenly over
its usable videos.

Every video is checked once when the dataset is built (opened with decord, frame count compared with the clip
span): an unreadable, corrupt or too-short video is skipped with a warning naming the file and recorded in
``bad``; building fails with a clear message when no video is usable or the bad fraction exceeds
``max_bad_fraction``. A video that fails later, while decoding a clip, is skipped the same way (another video
is drawn in its place).

Sampling is a pure function of (seed, rank, step): ``StepBatchSampler`` draws each step's (video, item seed)
pairs from a generator seeded by those, and the item seed drives the clip start, crop and flip, so a resumed run
sees exactly the clips it would have seen, with any number of loader workers.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from worldmodel.data import formats
from worldmodel.utils import preempt

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def normalize_frames(x: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> float (..., 3, H, W), ImageNet mean/std normalized."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    x = x.movedim(-1, -3).float().div_(255.0)  # (..., 3, H, W)
    return (x - mean) / std


def list_videos(source) -> list[str]:
    """Video paths of one source: a CSV list (``path label`` lines), a folder searched recursively, or an episode
    dataset of a layout without videos (HDF5: converted once to this project's folder, whose mp4s are used)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"video source {source} does not exist")
    if source.suffix in (".h5", ".hdf5") or (source.is_dir() and not any(source.rglob("*.mp4"))
                                              and formats.detect_or_none(source)):
        source = formats.as_native(source) / "episodes"  # frames stored as arrays: converted to videos once
    if source.is_dir():
        return sorted(str(p) for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTS)
    paths = []
    for line in source.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = line.rsplit(" ", 1)[0] if " " in line else line  # drop the label column
        p = Path(path)
        paths.append(str(p if p.is_absolute() else source.parent / p))
    return paths


def _reader(path: str):
    import decord

    return decord.VideoReader(path, num_threads=1)


def random_resized_crop(frames: torch.Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float],
                        g: torch.Generator) -> torch.Tensor:
    """One crop box for the whole clip: float frames (T, 3, H, W) -> (T, 3, size, size), bilinear resize."""
    H, W = frames.shape[-2:]
    area = H * W
    for _ in range(10):
        s = scale[0] + (scale[1] - scale[0]) * torch.rand((), generator=g).item()
        u = torch.rand((), generator=g).item()
        r = math.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u)
        w = round(math.sqrt(s * area * r))
        h = round(math.sqrt(s * area / r))
        if 0 < w <= W and 0 < h <= H:
            break
    else:  # fall back to the central square-ish crop
        h, w = min(H, W), min(H, W)
    y0 = int(torch.randint(0, H - h + 1, (), generator=g))
    x0 = int(torch.randint(0, W - w + 1, (), generator=g))
    crop = frames[..., y0:y0 + h, x0:x0 + w]
    if (h, w) == (size, size):
        return crop
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class VideoClipDataset(torch.utils.data.Dataset):
    """Clips of ``num_frames`` frames, ``frame_step`` apart, from a weighted mixture of video sources.

    Items are indexed by ``(video_index, item_seed)`` (see ``StepBatchSampler``) and are float tensors
    (3, num_frames, img_size, img_size), normalized, ready for ``VideoViT``.
    """

    def __init__(self, sources: list, weights: list[float] | None = None, num_frames: int = 8, frame_step: int = 1,
                 img_size: int = 64, crop_scale: tuple[float, float] = (0.3, 1.0),
                 crop_ratio: tuple[float, float] = (0.75, 1.35), hflip: bool = True,
                 max_bad_fraction: float = 0.5, cache_mb: float = 0.0):
        weights = list(weights) if weights else [1.0] * len(sources)
        if len(weights) != len(sources):
            raise ValueError(f"{len(sources)} video sources but {len(weights)} weights")
        self.num_frames, self.frame_step, self.img_size = num_frames, frame_step, img_size
        self.crop_scale, self.crop_ratio, self.hflip = tuple(crop_scale), tuple(crop_ratio), hflip
        self.span = (num_frames - 1) * frame_step + 1  # frames a clip covers
        self.cache_bytes = int(cache_mb * 2**20)  # decoded videos kept in memory, per process
        self._decoded: dict[int, torch.Tensor] = {}  # video index -> uint8 (n, H, W, 3), every frame
        self._decoded_bytes = 0
        self.frame_bytes: list[int] = []  # bytes of one decoded frame, per video
        self.videos: list[str] = []
        self.lengths: list[int] = []
        self.bad: list[tuple[str, str]] = []
        video_weights: list[float] = []
        total = 0
        for source, weight in zip(sources, weights):
            found = list_videos(source)
            total += len(found)
            good = [(p, n, b) for p, n, b in map(self._check, found) if n is not None]
            for p, n, b in good:
                self.videos.append(p)
                self.lengths.append(n)
                self.frame_bytes.append(b)
                video_weights.append(weight / len(good))
        if not self.videos:
            raise ValueError(
                f"no usable video in {', '.join(map(str, sources))}: "
                + (f"{total} found, all unusable (need >= {self.span} readable frames each); e.g. "
                   f"{self.bad[0][0]}: {self.bad[0][1]}" if total else "it lists no video file"))
        frac = len(self.bad) / max(total, 1)
        if frac > max_bad_fraction:
            raise ValueError(f"{len(self.bad)} of {total} videos are unusable ({frac:.0%} > max_bad_fraction "
                               f"{max_bad_fraction:.0%}); e.g. {self.bad[0][0]}: {self.bad[0][1]}")
        self.weights = torch.tensor(video_weights, dtype=torch.float64)
        self.weights /= self.weights.sum()

    def _check(self, path: str) -> tuple[str, int | None, int]:
        """(path, frame count, bytes of a decoded frame) if usable, else (path, None, 0) after recording why."""
        try:
            vr = _reader(path)
            n = len(vr)
            if n >= self.span:
                shape = vr[0].shape  # decode one frame: catches files whose header parses but whose stream does not
        except Exception as e:  # decord raises its own error types for unreadable/corrupt files
            return path, self._mark_bad(path, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]})"), 0
        if n < self.span:
            return path, self._mark_bad(path, f"too short ({n} frames < {self.span} per clip)"), 0
        return path, n, math.prod(shape)

    def _mark_bad(self, path: str, reason: str) -> None:
        log.warning("skipping video %s: %s", path, reason)
        self.bad.append((path, reason))
        return None

    def __len__(self) -> int:
        return len(self.videos)

    def read_clip(self, index: int, g: torch.Generator) -> torch.Tensor:
        """uint8 (num_frames, H, W, 3) from a random start in video ``index``.

        While ``cache_mb`` has room, a video is decoded whole on first use and its frames are kept, so later clips
        of it are slices (the same frames the reader gives: decoding is deterministic); otherwise only the
        clip's frames are decoded, every time."""
        start = int(torch.randint(0, self.lengths[index] - self.span + 1, (), generator=g))
        frames = self._decoded.get(index)
        n = self.lengths[index]
        if frames is None and self._decoded_bytes + n * self.frame_bytes[index] <= self.cache_bytes:
            frames = self._decoded[index] = torch.from_numpy(
                _reader(self.videos[index]).get_batch(list(range(n))).asnumpy())  # (n, H, W, 3)
            self._decoded_bytes += frames.numel()
        if frames is not None:
            return frames[start:start + self.span:self.frame_step]
        idx = list(range(start, start + self.span, self.frame_step))
        return torch.from_numpy(_reader(self.videos[index]).get_batch(idx).asnumpy())

    def __getitem__(self, key) -> torch.Tensor:
        index, seed = key if isinstance(key, tuple) else (key, key)
        g = torch.Generator().manual_seed(int(seed))
        for _ in range(10):
            try:
                frames = self.read_clip(index, g)
                break
            except Exception as e:  # a video that decodes badly mid-stream: skip it, draw another
                self._mark_bad(self.videos[index], f"decode failed ({type(e).__name__})")
                index = int(torch.multinomial(self.weights, 1, generator=g))
        else:
            raise RuntimeError("10 consecutive clips failed to decode; see the warnings above")
        x = normalize_frames(frames)  # (T, 3, H, W)
        x = random_resized_crop(x, self.img_size, self.crop_scale, self.crop_ratio, g)
        if self.hflip and torch.rand((), generator=g).item() < 0.5:
            x = x.flip(-1)
        return x.transpose(0, 1).contiguous()  # (3, T, S, S)


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, for each step in [start_step, steps), a batch of (video_index, item_seed) pairs drawn from a
    generator seeded by (seed, rank, step): the data order is a function of the step alone (exact resume)."""

    def __init__(self, weights: torch.Tensor, batch_size: int, start_step: int, steps: int, seed: int = 0,
                 rank: int = 0):
        self.weights, self.batch_size = weights, batch_size
        self.start_step, self.steps, self.seed, self.rank = start_step, steps, seed, rank

    def batch_for(self, step: int) -> list[tuple[int, int]]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.rank) * 1_000_003 + step)
        vids = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=g)
        seeds = torch.randint(0, 2**62, (self.batch_size,), generator=g)
        return list(zip(vids.tolist(), seeds.tolist()))

    def __iter__(self):
        for step in range(self.start_step, self.steps):
            yield self.batch_for(step)

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0)


def clip_loader(ds: VideoClipDataset, batch_size: int, start_step: int, steps: int, seed: int = 0, rank: int = 0,
                num_workers: int = 0) -> torch.utils.data.DataLoader:
    """DataLoader yielding one (B, 3, T, S, S) batch per step from ``start_step`` to ``steps``."""
    sampler = StepBatchSampler(ds.weights, batch_size, start_step, steps, seed, rank)
    return torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=num_workers,
                                       persistent_workers=False, pin_memory=False,
                                       worker_init_fn=preempt.ignore_in_worker if num_workers else None)
