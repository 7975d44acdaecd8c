"""``wm bench encode``: frames per second through each kind of frozen encoder (the latent cache's path).

Every encoder runs ``encode_images`` on batches of uint8 frames at its own input size, with random weights (speed
does not depend on them): ours (the ``command_preset`` pretrain architecture, at its frame size), DINOv2 ViT-S/14
from timm at 224 px (the DINO-WM recipe) and V-JEPA 2 ViT-L (our VideoViT with their RoPE) at 256 px. Reports
frames/s and each one's ratio to ours, measured in one run. At ``preset=smoke`` the foreign encoders are tiny
stand-ins of the same code paths (timm ViT-Ti at 32 px, a 2-block V-JEPA 2-style ViT).
"""
from __future__ import annotations

import statistics
import time

import torch

from worldmodel.bench.ac import _compose
from worldmodel.config import to_dict
from worldmodel.models.timm_encoder import TimmFrameEncoder
from worldmodel.models.video_vit import VideoViT, VideoViTConfig
from worldmodel.utils.device import resolve_device

VJEPA2_VITL = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "patch_size": 16, "tubelet_size": 2,
               "mlp_ratio": 4.0, "rope_style": "vjepa2", "img_size": 256, "input_size": 256}


def encoders(preset: str) -> dict[str, tuple[torch.nn.Module, int]]:
    """name -> (encoder, frame size fed to it)."""
    pre = _compose("pretrain", [f"preset={preset}"])
    known = VideoViTConfig.__dataclass_fields__
    ours_cfg = VideoViTConfig(**{k: v for k, v in to_dict(pre.model).items() if k in known})
    out = {"worldmodel (ours)": (VideoViT(ours_cfg), ours_cfg.img_size)}
    if preset == "smoke":
        out["timm vit_tiny_patch16 (stand-in)"] = (TimmFrameEncoder("vit_tiny_patch16_224", 32), 32)
        small = {**VJEPA2_VITL, "embed_dim": 96, "depth": 2, "num_heads": 2, "img_size": 32, "input_size": 32}
        out["vjepa2-style ViT (stand-in)"] = (VideoViT(VideoViTConfig(**small)), 32)
    else:
        out["timm DINOv2 ViT-S/14 @224"] = (TimmFrameEncoder("vit_small_patch14_dinov2", 224), 224)
        out["V-JEPA 2 ViT-L @256"] = (VideoViT(VideoViTConfig(**VJEPA2_VITL)), 256)
    return out


@torch.no_grad()
def frames_per_second(encoder, size: int, batch: int, repeats: int, warmup: int, device) -> float:
    """Median frames/s of ``encode_images`` on ``batch`` random uint8 frames of ``size`` x ``size``."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=g)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        encoder.encode_images(frames.to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def run(cfg) -> dict:
    """Time every encoder kind; prints a table and returns frames/s and ratios to ours."""
    device = resolve_device("auto")
    batch = cfg.batch if cfg.batch > 0 else (4 if device.type == "cpu" else 64)
    rows = {}
    for name, (enc, size) in encoders(cfg.command_preset).items():
        enc = enc.to(device).eval()
        rows[name] = {"frame_size": size, "tokens_per_frame": enc.patch_grid(size, size)[0] ** 2,
                      "frames_per_s": round(frames_per_second(enc, size, batch, cfg.repeats, cfg.warmup, device), 2)}
    ours = rows["worldmodel (ours)"]["frames_per_s"]
    print(f"[bench encode] batch {batch}, device {device}")
    for name, r in rows.items():
        r["ratio_to_ours"] = round(r["frames_per_s"] / ours, 4)
        print(f"  {name:>32}: {r['frames_per_s']:>9.2f} frames/s at {r['frame_size']} px, "
              f"{r['tokens_per_frame']} tokens/frame ({r['ratio_to_ours']:.3f}x ours)")
    return {"batch": batch, "device": str(device), "encoders": rows}
