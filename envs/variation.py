"""Factors of variation of the built-in tasks: what the frames show changes, the task never does.

Set through the env's ``variation`` keyword (``env.kwargs.variation={floor_rgb: [0.3, 0.5, 0.8], distractors: 3}``
on the command line; it is recorded with the dataset's ``env_kwargs`` and with every plan summary):

- ``floor_rgb`` / ``floor_jitter``: the floor's colour (RGB in [0, 1]; empty: the task's own), and a per-episode
  uniform jitter of each channel by up to ``floor_jitter``;
- ``light`` / ``light_jitter``: a scale of the headlight's ambient and diffuse light, and its per-episode jitter;
- ``distractors`` / ``distractor_speed`` / ``distractor_radius``: discs of random colours drawn over the scene that
  random-walk on their own (world units per env step; they bounce off the arena's edges); the agent cannot move or
  predict them, and they are in no state vector;
- ``frame_noise``: the standard deviation of per-pixel Gaussian noise added to every frame (0-255 units);
- ``body_jitter``: a per-episode uniform jitter of each channel of every body's colour (the agent's and the objects'
  geoms: all but the floor and the walls) by up to this;
- ``camera_jitter``: a per-episode uniform shift of the top camera along x and y by up to this many world units (the
  whole scene moves in the frame; distractors stay put in the world).

Sizes are not a factor: a geom's size is also its collision shape, so it would change the task.

Every draw comes from a generator seeded by the reset seed (and, for the noise, the step), never from the env's own
generator: the same seed and actions give the same states and success with or without variation, and the same
frames every time.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

ARENA = 1.1  # the top camera covers [-ARENA, ARENA]^2
SALT = 0x5EED  # separates the variation's random streams from the env's own


@dataclass(frozen=True)
class Variation:
    floor_rgb: tuple[float, ...] = ()  # floor colour, RGB in [0, 1] (empty: the task's own)
    floor_jitter: float = 0.0  # per-episode uniform jitter of each floor channel, +- this
    light: float = 1.0  # headlight brightness scale (ambient and diffuse)
    light_jitter: float = 0.0  # per-episode uniform jitter of that scale, +- this
    distractors: int = 0  # moving discs drawn over the scene (never in the state)
    distractor_speed: float = 0.05  # their random-walk speed, world units per env step
    distractor_radius: float = 0.1  # their radius, world units
    frame_noise: float = 0.0  # std of per-pixel Gaussian noise on every frame, 0-255 units
    body_jitter: float = 0.0  # per-episode uniform jitter of each body colour channel, +- this
    camera_jitter: float = 0.0  # per-episode uniform shift of the camera along x and y, +- this (world units)

    @classmethod
    def parse(cls, settings: dict | None) -> Variation:
        """Validated settings; one line naming the key or value otherwise."""
        settings = dict(settings or {})
        known = {f.name for f in fields(cls)}
        for key in settings:
            if key not in known:
                raise ValueError(f"env.kwargs.variation.{key}: unknown; expected one of {sorted(known)}")
        v = cls(**{k: (tuple(float(c) for c in val) if k == "floor_rgb" else val) for k, val in settings.items()})
        if v.floor_rgb and (len(v.floor_rgb) != 3 or not all(0 <= c <= 1 for c in v.floor_rgb)):
            raise ValueError(f"env.kwargs.variation.floor_rgb={list(v.floor_rgb)}: expected 3 values in [0, 1]")
        for key in ("floor_jitter", "light_jitter", "distractor_speed", "distractor_radius", "frame_noise",
                    "body_jitter", "camera_jitter"):
            if float(getattr(v, key)) < 0:
                raise ValueError(f"env.kwargs.variation.{key}={getattr(v, key)}: expected >= 0")
        if float(v.light) <= 0 or int(v.distractors) < 0:
            raise ValueError(f"env.kwargs.variation: light={v.light} must be > 0 and distractors={v.distractors} "
                             ">= 0")
        return v

    @property
    def active(self) -> bool:
        return self != Variation()


class SceneVariation:
    """The per-episode draws of a ``Variation`` applied to one MuJoCo task: ``reset`` (after the env's own reset),
    ``step`` (after each env step), ``frame`` (on each rendered frame)."""

    def __init__(self, variation: Variation, model):
        self.v, self.model = variation, model
        self.floor = model.geom("floor").id
        self.nominal_floor = model.geom_rgba[self.floor, :3].copy()
        self.nominal_light = (model.vis.headlight.ambient.copy(), model.vis.headlight.diffuse.copy())
        self.bodies = np.flatnonzero(model.geom_bodyid != 0)  # geoms of the agent and the objects (not the world's)
        self.nominal_bodies = model.geom_rgba[self.bodies, :3].copy()
        self.camera = model.camera("top").id
        self.nominal_camera = model.cam_pos[self.camera].copy()
        self.shift = np.zeros(2)  # the camera's shift this episode (world units)
        self.seed, self.episode, self.t = 0, 0, 0
        self.pos = self.vel = self.colours = np.zeros((0, 3))
        self.rng = np.random.default_rng([SALT])  # replaced at every reset

    def reset(self, seed: int | None) -> None:
        """New episode draws: from ``seed`` when the reset had one, else the next episode of the last seed."""
        self.seed, self.episode = (int(seed), 0) if seed is not None else (self.seed, self.episode + 1)
        self.t = 0
        rng = np.random.default_rng([SALT, self.seed, self.episode])
        v = self.v
        floor = np.asarray(v.floor_rgb, np.float64) if v.floor_rgb else self.nominal_floor
        floor = floor + rng.uniform(-v.floor_jitter, v.floor_jitter, 3)
        self.model.geom_rgba[self.floor, :3] = np.clip(floor, 0, 1)
        scale = max(1e-3, v.light + rng.uniform(-v.light_jitter, v.light_jitter))
        self.model.vis.headlight.ambient[:] = np.clip(self.nominal_light[0] * scale, 0, 1)
        self.model.vis.headlight.diffuse[:] = np.clip(self.nominal_light[1] * scale, 0, 1)
        n = int(v.distractors)
        self.pos = rng.uniform(-ARENA + v.distractor_radius, ARENA - v.distractor_radius, (n, 2))
        angle = rng.uniform(0, 2 * np.pi, n)
        self.vel = v.distractor_speed * np.stack([np.cos(angle), np.sin(angle)], -1)
        self.colours = rng.uniform(0, 255, (n, 3))
        looks = np.random.default_rng([SALT, self.seed, self.episode, 1])  # a stream of its own: the others' draws
        tint = looks.uniform(-v.body_jitter, v.body_jitter, self.nominal_bodies.shape)  # stay as they were
        self.model.geom_rgba[self.bodies, :3] = np.clip(self.nominal_bodies + tint, 0, 1)
        self.shift = looks.uniform(-v.camera_jitter, v.camera_jitter, 2)
        self.model.cam_pos[self.camera, :2] = self.nominal_camera[:2] + self.shift
        self.rng = rng

    def step(self) -> None:
        """Distractors move one env step: heading noise, then a bounce off the arena's edges."""
        self.t += 1
        if not len(self.pos):
            return
        turn = self.rng.normal(0, 0.5, len(self.pos))
        c, s = np.cos(turn), np.sin(turn)
        self.vel = np.stack([c * self.vel[:, 0] - s * self.vel[:, 1], s * self.vel[:, 0] + c * self.vel[:, 1]], -1)
        self.pos = self.pos + self.vel
        lim = ARENA - self.v.distractor_radius
        out = np.abs(self.pos) > lim
        self.vel[out] *= -1
        self.pos = np.clip(self.pos, -lim, lim)

    def frame(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> the same frame with the distractors drawn and the noise added."""
        if not len(self.pos) and not self.v.frame_noise:
            return frame
        H, W = frame.shape[:2]
        out = frame.astype(np.float32)
        x = (np.arange(W) + 0.5) / W * 2 * ARENA - ARENA + self.shift[0]  # (W,) world x of the pixel centres
        y = ARENA - (np.arange(H) + 0.5) / H * 2 * ARENA + self.shift[1]  # (H,) world y
        for (px, py), colour in zip(self.pos, self.colours):
            out[((y[:, None] - py) ** 2 + (x[None, :] - px) ** 2) < self.v.distractor_radius ** 2] = colour
        if self.v.frame_noise:
            noise_rng = np.random.default_rng([SALT, self.seed, self.episode, self.t])
            out += noise_rng.normal(0, self.v.frame_noise, out.shape)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
