"""``wm bench pretrain``: training throughput of the V-JEPA step and its share of this machine's matmul peak.

Measured in one run, on the device the pretrain config resolves to:
- peak: fp32 GFLOP/s of a large square matmul (the best this machine does on the simplest dense kernel);
- step: one full training step at the benchmarked preset (EMA-target forward, context encoder + predictor
  forward/backward over both mask views, AdamW step, EMA update) on random clips, median wall time;
- FLOPs of that step counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, SDPA);
- tokens/s = clips x tokens per clip / step time; achieved GFLOP/s = step FLOPs / step time, and its
  fraction of the matmul peak.
- loader: clips/s of the training clip loader (``train.num_workers``) once every video has been read, with the
  decoded-video cache (``data.cache_mb``) and decoding every clip from its file, and the share of a step each
  batch costs (the loader runs on the step's critical path when ``train.num_workers`` is 0).
The step itself is timed on random clips, without the loader.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from worldmodel.commands import compose_config
from worldmodel.config import to_dict
from worldmodel.data.video import clip_loader
from worldmodel.losses import latent_loss
from worldmodel.masks import sample_masks
from worldmodel.models.masked_predictor import PredictorConfig
from worldmodel.models.video_vit import VideoViTConfig
from worldmodel.train.core import build_optimizer
from worldmodel.train.pretrain import JEPA, ema_update, prepare_data
from worldmodel.utils.device import resolve_device


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Median fp32 GFLOP/s of an n x n @ n x n matmul."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Solo:
    """The parts of a Trainer that ``prepare_data`` reads: one process."""
    is_main, world_size = True, 1


def loader_seconds(pcfg, cache_mb: float, batches: int, repeats: int) -> float:
    """Median seconds per batch of the clip loader at ``pcfg``, after one read of every video (cache filled)."""
    pcfg.data.cache_mb = cache_mb
    ds = prepare_data(pcfg, _Solo())
    for i in range(len(ds) if cache_mb else 0):
        ds[(i, i)]  # every video read once: what the cache holds after the first pass of a run
    times = []
    for r in range(repeats):
        loader = clip_loader(ds, pcfg.train.batch_size, r * batches, (r + 1) * batches, pcfg.train.seed, 0,
                             pcfg.train.num_workers)
        t0 = time.perf_counter()
        for _ in loader:
            pass
        times.append((time.perf_counter() - t0) / batches)
    return statistics.median(times)


def run(cfg) -> dict:
    """Benchmark the pretrain step at ``cfg.command_preset``; prints a table, returns the figures."""
    import copy


    pcfg = compose_config("pretrain", [f"preset={cfg.command_preset}", *cfg.overrides])
    device = resolve_device(pcfg.train.device)
    if pcfg.train.threads > 0:
        torch.set_num_threads(pcfg.train.threads)
    B = cfg.batch or pcfg.train.batch_size
    torch.manual_seed(0)
    model = JEPA(VideoViTConfig(**to_dict(pcfg.model)), PredictorConfig(**to_dict(pcfg.predictor))).to(device)
    target = copy.deepcopy(model.encoder).requires_grad_(False)
    opt = build_optimizer(model, pcfg.train.optim)
    T, S = pcfg.data.num_frames, pcfg.model.img_size
    x = torch.randn(B, 3, T, S, S, device=device)
    grid = model.encoder.grid(T, S, S)
    g = torch.Generator().manual_seed(0)
    amp = pcfg.train.amp and device.type == "cuda"

    def step():
        views = [(c.to(device), t.to(device)) for c, t in sample_masks(B, grid, pcfg.masks, g)]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            with torch.no_grad():
                h = torch.nn.functional.layer_norm(target(x).float(), (model.encoder.embed_dim,))
            loss = sum(latent_loss(p.float(), torch.gather(h, 1, t.unsqueeze(-1).expand(-1, -1, h.shape[-1])))
                       for (p, _), (_, t) in zip(model(x, views), views)) / len(views)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(target, model.encoder, 0.999)

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    for _ in range(cfg.warmup):
        step()
    times = []
    for _ in range(cfg.repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    peak = matmul_gflops(device)
    tokens = B * model.encoder.num_tokens(T)
    achieved = flops / step_s / 1e9
    out = {
        "preset": cfg.command_preset, "device": str(device), "threads": torch.get_num_threads(),
        "batch_size": B, "tokens_per_clip": model.encoder.num_tokens(T), "step_seconds": round(step_s, 4),
        "tokens_per_s": round(tokens / step_s, 1), "clips_per_s": round(B / step_s, 2),
        "step_gflop": round(flops / 1e9, 2), "achieved_gflops": round(achieved, 2),
        "matmul_peak_gflops": round(peak, 2), "fraction_of_matmul_peak": round(achieved / peak, 3),
    }
    cached = loader_seconds(pcfg, float(pcfg.data.cache_mb) or 1024.0, 10, cfg.repeats)
    plain = loader_seconds(pcfg, 0.0, 10, cfg.repeats)
    out.update({"loader_clips_per_s_cached": round(B / cached, 1), "loader_clips_per_s_decoding": round(B / plain, 1),
                "loader_cache_speedup": round(plain / cached, 2),
                "loader_share_of_step_cached": round(cached / step_s, 3),
                "loader_share_of_step_decoding": round(plain / step_s, 3)})
    width = max(map(len, out))
    print("wm bench pretrain")
    for k, v in out.items():
        print(f"  {k:<{width}}  {v}")
    return out
