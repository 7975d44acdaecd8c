"""Built-in synthetic videos with known latent factors: bouncing balls, exactly one of them red.

Each video shows ``num_balls`` anti-aliased balls of distinct colours (one red, the others drawn from a palette
without red) moving at constant speed and bouncing off the walls of the arena (a border whose four sides have
distinct colours, so absolute position is visible), over a per-video plain background.
The red ball is drawn last, so it is never occluded and its factors are always identifiable from the frames.
Optionally (``tiles``) the arena floor is a fixed pattern of muted tiles shared by all videos: every place then
looks different, so absolute position is visible everywhere, not only at the walls.
Optionally (``flicker``) short-lived decoy discs, red ones among them, flicker behind the balls: a harder set on
which one frame no longer identifies the red ball and a random encoder's features are noisier.
Optionally (``jitter``) every ball is drawn off its smooth path by Gaussian noise each frame while the factors stay
the path's: a harder set on which one pair of frames shows the velocity only roughly and a whole clip shows it well.

Written per dataset folder:
  videos/vid_000000.mp4   frames (decord-readable, H.264, near-lossless)
  videos/vid_000000.npz   per-frame ground truth: ``factors`` (T, F) float32 with ``names`` (F,):
                          red_x, red_y (centre, in [0, 1] of the frame), red_vx, red_vy (pixels per frame,
                          the displacement from this frame to the next; the last frame repeats the previous;
                          with ``jitter``, x, y and the displacement are those of the smooth path)
  train.csv               V-JEPA list, ``path label`` per line (label 0)
  meta.json               generator arguments (used to reuse a cached dataset only when they match)
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from worldmodel.utils.atomic import pid_alive

FACTOR_NAMES = ("red_x", "red_y", "red_vx", "red_vy")
RED = (230, 30, 30)
PALETTE = [(40, 200, 60), (50, 90, 230), (235, 215, 40), (40, 210, 215), (200, 60, 210), (240, 240, 240)]
WALLS = [(150, 150, 150), (70, 90, 170), (160, 150, 60), (60, 130, 120)]  # left, right, top, bottom
BACKGROUNDS = [(20, 20, 20), (45, 45, 60), (60, 45, 40), (30, 55, 45), (80, 80, 80)]

TILE_RANGE = (25.0, 120.0)  # per-channel range of the floor's tile colours (muted)


@dataclass
class SyntheticConfig:
    # number of videos to write
    num_videos: int = 200
    # frames per video
    frames: int = 32
    # frame height and width in pixels
    size: int = 64
    # balls per video (one red)
    num_balls: int = 3
    # ball radius range in pixels of a 64-pixel frame (scaled with size)
    radius: tuple[float, float] = (4.0, 7.0)
    # speed range in pixels per frame of a 64-pixel frame (scaled with size)
    speed: tuple[float, float] = (1.0, 3.0)
    # width in pixels (of a 64-pixel frame, scaled with size) of the visible arena walls the balls bounce off;
    # each side has its own colour, so absolute position is identifiable from the frames (0: no walls)
    border: float = 3.0
    # flickering distractor discs drawn behind the balls: this many at any time, each at a fixed spot for a random
    # 1..flicker_life frames, then respawned elsewhere with a new colour from the palette *including red*, so a
    # single frame does not identify the red ball: it is the red disc that persists and moves (0: none)
    flicker: int = 0
    # longest life of a flickering disc in frames
    flicker_life: int = 2
    # each frame, every ball is drawn this many pixels (std, of a 64-pixel frame, scaled with size) off its smooth
    # bouncing path; the factors are those of the path, so one frame pair shows its velocity only roughly and a clip
    # shows it well (0: drawn on the path)
    jitter: float = 0.0
    # floor of tiles x tiles muted colours, the same in every video (a fixed patterned arena, drawn from
    # ``floor_seed``),
    # instead of a plain per-video background: each place then looks different (0: plain background)
    tiles: int = 0
    # contrast of the tile colours about their mid grey (1: as drawn, within TILE_RANGE per channel; 0.1: faint
    # tiles that a patch alone barely shows)
    tile_contrast: float = 1.0
    # seed of the tile colours (shared by the training and probe sets)
    floor_seed: int = 0
    # frames per second written in the mp4
    fps: int = 10
    # seed; the dataset is a deterministic function of the config
    seed: int = 0


def simulate(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """Trajectories of all balls: positions (T, N, 2) [x, y] in pixels, radii (N,), colours (N, 3), background."""
    n, T, S = cfg.num_balls, cfg.frames, cfg.size
    scale = S / 64.0
    radii = rng.uniform(*cfg.radius, size=n) * scale
    lo, hi = centre_limits(radii, cfg)  # (N, 1) bounce limits of the centres
    pos = rng.uniform(lo, hi, size=(n, 2))  # (N, 2)
    angle = rng.uniform(0, 2 * np.pi, size=n)
    speed = rng.uniform(*cfg.speed, size=n) * scale
    vel = np.stack([np.cos(angle), np.sin(angle)], axis=1) * speed[:, None]  # (N, 2)
    traj = np.empty((T, n, 2))
    for t in range(T):
        traj[t] = pos
        pos = pos + vel
        below, above = pos < lo, pos > hi  # reflect off the walls
        pos = np.where(below, 2 * lo - pos, np.where(above, 2 * hi - pos, pos))
        vel = np.where(below | above, -vel, vel)
    others = rng.choice(len(PALETTE), size=n - 1, replace=False)
    colours = np.array([PALETTE[i] for i in others] + [RED], dtype=np.float32)  # red last: drawn on top
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    return traj, radii, colours, background


def centre_limits(radii: np.ndarray, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest centre coordinate (N, 1) of balls with ``radii`` (N,) that stay inside the walls."""
    wall = cfg.border * cfg.size / 64.0
    return wall + radii[:, None], cfg.size - wall - radii[:, None]


def shake(rng: np.random.Generator, traj: np.ndarray, radii: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    """Drawn positions (T, N, 2): the path ``traj`` plus Gaussian jitter, kept inside the walls."""
    noise = rng.normal(0.0, cfg.jitter * cfg.size / 64.0, size=traj.shape)
    return np.clip(traj + noise, *centre_limits(radii, cfg))


def simulate_flicker(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    """Flickering distractor discs per frame (T, K, 6): x, y, radius, r, g, b (K = ``cfg.flicker``)."""
    T, K, S = cfg.frames, cfg.flicker, cfg.size
    scale = S / 64.0
    colours = np.array(PALETTE + [RED], dtype=np.float32)
    out = np.empty((T, K, 6), dtype=np.float32)
    for k in range(K):
        t = 0
        while t < T:
            life = int(rng.integers(1, cfg.flicker_life + 1))
            r = rng.uniform(*cfg.radius) * scale
            out[t:t + life, k] = [*rng.uniform(0, S, size=2), r, *colours[rng.integers(len(colours))]]
            t += life
    return out


def floor_image(cfg: SyntheticConfig) -> np.ndarray:
    """The tiled floor (S, S, 3) float32: ``cfg.tiles`` x ``cfg.tiles`` tiles of muted, non-red colours."""
    rng = np.random.default_rng(cfg.floor_seed)
    colours = rng.uniform(*TILE_RANGE, size=(cfg.tiles, cfg.tiles, 3)).astype(np.float32)
    colours[..., 0] = np.minimum(colours[..., 0], colours[..., 1:].max(-1))  # never redder than green or blue
    if cfg.tile_contrast != 1.0:  # skipped at 1: the floors of existing datasets stay bit for bit
        mid = sum(TILE_RANGE) / 2
        colours = (mid + cfg.tile_contrast * (colours - mid)).astype(np.float32)
    idx = np.minimum((np.arange(cfg.size) + 0.5) * cfg.tiles // cfg.size, cfg.tiles - 1).astype(int)  # (S,)
    return colours[idx[:, None], idx[None, :]]


def _paint(img: np.ndarray, xx: np.ndarray, yy: np.ndarray, x: float, y: float, r: float, colour) -> None:
    """Paint one disc with a one-pixel anti-aliased edge onto ``img`` (S, S, 3) in place."""
    alpha = np.clip(r + 0.5 - np.sqrt((xx - x) ** 2 + (yy - y) ** 2), 0.0, 1.0)[..., None]  # (S, S, 1) coverage
    img *= 1.0 - alpha
    img += alpha * np.asarray(colour, dtype=np.float32)


def render(traj: np.ndarray, radii: np.ndarray, colours: np.ndarray, background, size: int,
           border: float = 0.0, flicker: np.ndarray | None = None, floor: np.ndarray | None = None) -> np.ndarray:
    """Frames (T, S, S, 3) uint8: background (or ``floor`` (S, S, 3)), walls, flickering discs, then the balls."""
    T, n, _ = traj.shape
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5  # pixel centres
    frames = np.empty((T, size, size, 3), dtype=np.float32)
    frames[:] = np.asarray(background, dtype=np.float32) if floor is None else floor
    b = int(round(border))
    if b > 0:
        for colour, region in zip(WALLS, [np.s_[:, :, :b], np.s_[:, :, -b:], np.s_[:, :b, b:-b], np.s_[:, -b:, b:-b]]):
            frames[region] = colour
    for t in range(T):
        img = frames[t]
        for x, y, r, *rgb in (flicker[t] if flicker is not None else ()):
            _paint(img, xx, yy, x, y, r, rgb)
        for i in range(n):
            _paint(img, xx, yy, traj[t, i, 0], traj[t, i, 1], radii[i], colours[i])
    return np.clip(frames + 0.5, 0, 255).astype(np.uint8)


def factors_of(traj: np.ndarray, size: int) -> np.ndarray:
    """Red-ball factors per frame (T, 4): x, y normalized to [0, 1], vx, vy in pixels per frame."""
    red = traj[:, -1]  # (T, 2)
    vel = np.diff(red, axis=0)
    vel = np.concatenate([vel, vel[-1:]], axis=0)
    return np.concatenate([red / size, vel], axis=1).astype(np.float32)


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """H.264 mp4 at high quality (crf 10, yuv444 keeps the colours of small balls) through imageio-ffmpeg."""
    import imageio.v2 as imageio

    with imageio.get_writer(str(path), fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv444p",
                            ffmpeg_log_level="error", output_params=["-crf", "10"]) as w:
        for f in frames:
            w.append_data(f)


def generate(root, cfg: SyntheticConfig) -> Path:
    """Write the synthetic dataset to ``root`` (reused as is when ``meta.json`` matches ``cfg``).

    Written into a temporary sibling folder and renamed into place, so concurrent runs (DDP ranks, parallel
    tests) never see half a dataset. Returns the path of the V-JEPA CSV list.
    """
    root = Path(root)
    meta = {"generator": "bouncing_balls", **asdict(cfg), "factor_names": list(FACTOR_NAMES)}
    meta = json.loads(json.dumps(meta))  # tuples -> lists, for comparison with the file
    if _matches(root, meta):
        return root / "train.csv"
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"synthetic data folder {root} holds other data (meta.json differs); choose another "
                              f"data.synthetic_dir or delete it")
    for old in root.parent.glob(f".{root.name}.tmp*"):  # folders of generations killed before their rename
        pid = old.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = root.with_name(f".{root.name}.tmp{os.getpid()}")
    (tmp / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    lines, floor = [], floor_image(cfg) if cfg.tiles else None
    for i in range(cfg.num_videos):
        traj, radii, colours, bg = simulate(rng, cfg)
        flicker = simulate_flicker(rng, cfg) if cfg.flicker else None
        shown = shake(rng, traj, radii, cfg) if cfg.jitter else traj
        frames = render(shown, radii, colours, bg, cfg.size, cfg.border * cfg.size / 64.0, flicker, floor)
        name = f"videos/vid_{i:06d}"
        write_mp4(tmp / f"{name}.mp4", frames, cfg.fps)
        np.savez(tmp / f"{name}.npz", factors=factors_of(traj, cfg.size), names=np.array(FACTOR_NAMES))
        lines.append(f"{name}.mp4 0")  # relative to the CSV's folder
    (tmp / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    root.parent.mkdir(parents=True, exist_ok=True)
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
    try:
        os.rename(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not _matches(root, meta):
            raise
    return root / "train.csv"


def _matches(root: Path, meta: dict) -> bool:
    m = root / "meta.json"
    return (root / "train.csv").exists() and m.exists() and json.loads(m.read_text()) == meta


def load_factors(video_path) -> tuple[np.ndarray, list[str]]:
    """Per-frame factors (T, F) and their names from the npz beside a video."""
    with np.load(Path(video_path).with_suffix(".npz")) as z:
        return z["factors"], [str(s) for s in z["names"]]
