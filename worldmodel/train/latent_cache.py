"""Frozen-encoder latents of an episode dataset, computed once per (encoder, dataset, pooling) and cached.

Every frame of every episode is encoded with the observation convention of
:func:`worldmodel.models.world_model.encode_observations` (single-frame tubelet, layer-normed, pooled), so
epochs of ``wm train-ac`` and every ``wm drift`` run read latents instead of decoding and encoding video.

Cache file: ``<cache_dir>/latents_<hash of the encoder path>_pool<p>.pt`` (``cache_dir`` defaults to
``<dataset>/latent_cache``), holding latents (float16), actions and states per episode plus a fingerprint.
The fingerprint hashes the encoder checkpoint's bytes, the dataset's ``manifest.json`` bytes, the name, size
and mtime of every episode file, the pooling and the encoding convention version; a mismatch (either side
changed) re-encodes and overwrites the file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from worldmodel.data.reader import EpisodeReader
from worldmodel.models.video_vit import encoder_weights, load_encoder
from worldmodel.models.world_model import encode_observations
from worldmodel.utils.checkpoint import content_digest, save_checkpoint

CONVENTION = "single-frame-tubelet/layernorm/avgpool+layernorm/v1"  # bump when the encoding changes


def dataset_fingerprint(root: str | Path) -> str:
    """Hash of manifest.json's bytes and (name, size, mtime) of every file under ``episodes/``."""
    root = Path(root)
    h = hashlib.sha1((root / "manifest.json").read_bytes())
    for p in sorted((root / "episodes").iterdir()):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def cache_fingerprint(encoder_checkpoint: str | Path, dataset: str | Path, pool: int,
                      encoder_digest: str | None = None) -> str:
    """Key of one (encoder checkpoint, dataset, pooling) triple. The encoder is identified by its weights'
    ``encoder_digest`` (``content_digest`` of config and weights, as train-ac records it; default: computed
    from the checkpoint), so the key survives the checkpoint file being rewritten or gone."""
    digest = encoder_digest or content_digest(list(encoder_weights(encoder_checkpoint)))
    parts = [digest, dataset_fingerprint(dataset), f"pool={pool}", CONVENTION]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def cache_path(encoder_checkpoint: str | Path, dataset: str | Path, pool: int,
               cache_dir: str | Path | None = None) -> Path:
    """Where the latents of this (encoder, dataset, pool) live."""
    folder = Path(cache_dir) if cache_dir else Path(dataset) / "latent_cache"
    key = hashlib.sha1(str(Path(encoder_checkpoint).resolve()).encode()).hexdigest()[:12]
    return folder / f"latents_{key}_pool{pool}.pt"


@dataclass
class LatentEpisodes:
    """Per-episode latents (T_e+1, N, D) float16, actions (T_e, A) and states (T_e+1, S), with window sampling."""

    latents: list[torch.Tensor]
    actions: list[torch.Tensor]
    states: list[torch.Tensor]
    ids: list[int]  # dataset episode id of each entry
    fingerprint: str = ""
    path: str = ""
    encoded: bool = False  # True when this call (re-)encoded the dataset, False when read from the cache
    skipped: dict[int, str] = dataclasses.field(default_factory=dict)  # corrupt episodes left out {id: reason}

    def subset(self, episode_ids: list[int]) -> "LatentEpisodes":
        """The episodes with these dataset ids, in that order; corrupt ones (``skipped`` when read) are left out."""
        pos = {e: k for k, e in enumerate(self.ids)}
        missing = [e for e in episode_ids if e not in pos and e not in self.skipped]
        if missing:
            raise KeyError(f"episodes {missing[:5]} are not in the latent cache {self.path}")
        k = [pos[e] for e in episode_ids if e in pos]
        return dataclasses.replace(self, latents=[self.latents[i] for i in k], actions=[self.actions[i] for i in k],
                                   states=[self.states[i] for i in k], ids=[self.ids[i] for i in k])

    def __len__(self) -> int:
        return len(self.latents)

    def with_state_dims(self, dims: list[int]) -> "LatentEpisodes":
        """The same episodes whose states keep only ``dims`` (e.g. the proprioception a state token carries)."""
        return dataclasses.replace(self, states=[s[:, dims] for s in self.states])

    def windows(self, num_steps: int, frame_skip: int) -> "LatentWindows":
        """A sampler of (num_steps + 1)-frame windows, frames frame_skip env steps apart."""
        return LatentWindows(self, num_steps, frame_skip)


class LatentWindows:
    """Windows over concatenated episodes, gathered by index (no Python loop over the batch).

    Item for start frame t0 of an episode: latents z[t0 + k*fs] (k = 0..num_steps), states likewise, and
    actions for step k = the fs env actions t0+k*fs .. t0+(k+1)*fs-1 stacked in time order (fs*A).
    """

    def __init__(self, eps: LatentEpisodes, num_steps: int, frame_skip: int):
        self.num_steps, self.fs = num_steps, frame_skip
        span = num_steps * frame_skip  # env steps covered by one window
        self.z = torch.cat(eps.latents)  # (F, N, D)
        self.s = torch.cat(eps.states)  # (F, S)
        self.a = torch.cat([torch.cat((a, a[:1] * 0)) for a in eps.actions])  # (F, A) padded to frame count
        starts, offset = [], 0
        for z in eps.latents:
            n = z.shape[0] - span  # valid start frames in this episode
            if n > 0:
                starts.append(torch.arange(n) + offset)
            offset += z.shape[0]
        if not starts:
            raise ValueError(f"no episode is long enough for {num_steps} steps x frame_skip {frame_skip}")
        self.starts = torch.cat(starts)  # (W,) global frame index of every valid window start

    def __len__(self) -> int:
        return len(self.starts)

    def gather(self, idx: torch.Tensor) -> dict:
        """idx (B,) window indices -> z (B, T+1, N, D) float32, actions (B, T, fs*A), states (B, T+1, S)."""
        t0 = self.starts[idx]  # (B,)
        frames = t0[:, None] + self.fs * torch.arange(self.num_steps + 1)  # (B, T+1)
        acts = frames[:, :-1, None] + torch.arange(self.fs)  # (B, T, fs)
        B, T = acts.shape[:2]
        z = self.z[frames]  # latents (B, T+1, N, D), or frames (B, T+1, H, W, 3) uint8 when fine-tuning
        return {"z": z.float() if z.is_floating_point() else z, "states": self.s[frames],
                "actions": self.a[acts].reshape(B, T, -1)}

    def sample(self, batch_size: int, generator: torch.Generator) -> dict:
        return self.gather(torch.randint(len(self), (batch_size,), generator=generator))


def latent_stats(latents: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (token, channel) mean and std (N, D) over every frame of the given episodes (float64 sums)."""
    n, s1, s2 = 0, 0.0, 0.0
    for z in latents:
        z = z.double()
        n, s1, s2 = n + z.shape[0], s1 + z.sum(0), s2 + z.pow(2).sum(0)
    mean = s1 / n
    return mean.float(), (s2 / n - mean.pow(2)).clamp_min(0).sqrt().float()


def load_latents(dataset: str | Path, encoder_checkpoint: str | Path, pool: int, device="cpu",
                 cache_dir: str | Path | None = None, batch_size: int = 64, progress: bool = True,
                 encoder=None, max_bad_fraction: float = 0.1, encoder_digest: str | None = None) -> LatentEpisodes:
    """Latents of every episode of ``dataset`` under the encoder at ``encoder_checkpoint`` (cached on disk).

    ``encoder`` may be passed when already loaded (it must be the one at ``encoder_checkpoint``). Corrupt
    episodes are skipped and counted (:class:`~worldmodel.data.reader.EpisodeReader`, ``max_bad_fraction``).
    """

    dataset, encoder_checkpoint = Path(dataset), Path(encoder_checkpoint)
    if not (dataset / "manifest.json").is_file():
        raise FileNotFoundError(f"dataset {dataset}: no manifest.json (run `wm collect out_dir={dataset}`)")
    path = cache_path(encoder_checkpoint, dataset, pool, cache_dir)
    fp = cache_fingerprint(encoder_checkpoint, dataset, pool, encoder_digest)
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("fingerprint") == fp:
                skipped = {int(k): v for k, v in blob.get("skipped", {}).items()}
                return LatentEpisodes(blob["latents"], blob["actions"], blob["states"], blob["ids"], fp, str(path),
                                      False, skipped)
        except Exception:  # unreadable cache: rebuild it
            pass
    if encoder is None:

        encoder = load_encoder(encoder_checkpoint, device)
    reader = EpisodeReader(dataset, max_bad_fraction)
    latents, actions, states, ids = [], [], [], []
    bar = tqdm(total=len(reader.ids), desc=f"encode {dataset.name}", disable=not progress, dynamic_ncols=True)
    for i, ep in reader.episodes():
        bar.update(1)
        ids.append(i)
        frames = torch.as_tensor(ep["frames"])  # (T+1, H, W, 3) uint8
        z = torch.cat([encode_observations(encoder, frames[j : j + batch_size], pool).cpu()
                       for j in range(0, len(frames), batch_size)])  # (T+1, N, D)
        latents.append(z.half())
        actions.append(torch.as_tensor(ep["actions"], dtype=torch.float32))
        states.append(torch.as_tensor(ep["states"], dtype=torch.float32))
    bar.close()
    meta = {"dataset": str(dataset.resolve()), "encoder_checkpoint": str(encoder_checkpoint.resolve()),
            "pool": pool, "convention": CONVENTION}
    save_checkpoint(path, {"fingerprint": fp, "meta": json.dumps(meta), "latents": latents,
                           "actions": actions, "states": states, "ids": ids,
                           "skipped": {str(k): v for k, v in reader.skipped.items()}})
    return LatentEpisodes(latents, actions, states, ids, fp, str(path), True, dict(reader.skipped))
