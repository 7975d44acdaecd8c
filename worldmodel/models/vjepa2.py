"""Official V-JEPA 2 encoder checkpoints (facebookresearch/vjepa2) as a frozen VideoViT, by key mapping.

Their released files hold ``encoder`` and ``target_encoder`` state dicts (keys prefixed ``module.`` and
``backbone.``) of a RoPE ViT: Conv3d tubelet embedding (``patch_embed.proj``), pre-norm blocks (``norm1``,
``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``, LayerNorm eps 1e-6, GELU MLP), a final ``norm``,
no position table. Our VideoViT has the same modules under the same names but one (``patch_embed`` is the Conv3d
itself); its ``rope_style=vjepa2`` rotates queries and keys exactly as their ``RoPEAttention`` does. The width,
depth, patch and tubelet sizes and MLP ratio are read from the weights' shapes; the head count is not stored
in the weights and comes from the width (ViT-L 1024 -> 16, ViT-H 1280 -> 16, ViT-g 1408 -> 22) or ``heads``.

Single frames are encoded as that codebase does: the frame repeated to fill one tubelet.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

HEADS_BY_WIDTH = {384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 22}  # their vit_small .. vit_giant_xformers
STATE_KEYS = ("target_encoder", "encoder")  # which state dict of a training checkpoint to use, in order


def clean_keys(state: dict) -> dict:
    """Drop the DDP and wrapper prefixes their checkpoints carry (``module.``, ``backbone.``)."""
    return {k.replace("module.", "").replace("backbone.", ""): v for k, v in state.items()}


def convert_state(state: dict, heads: int = 0, source: str | Path = "checkpoint") -> tuple[dict, dict]:
    """Their encoder state dict -> (VideoViTConfig fields, our state dict). Every key is mapped or refused
    (ValueError naming it); shapes are checked when the weights are loaded into the model."""
    state = clean_keys(state)
    if "pos_embed" in state:
        raise ValueError(f"{source}: has a pos_embed table (a V-JEPA 1 / non-RoPE ViT); only RoPE encoders convert")
    if "patch_embed.proj.weight" not in state:
        raise ValueError(f"{source}: no patch_embed.proj.weight; not a V-JEPA 2 encoder state dict")
    if any(".mlp.fc3." in k for k in state):
        raise ValueError(f"{source}: a SwiGLU MLP (mlp.fc3); only GELU-MLP encoders (ViT-L/H/g) convert")
    w = state["patch_embed.proj.weight"]  # (D, C, tubelet, p, p)
    if w.dim() != 5:
        raise ValueError(f"{source}: patch_embed.proj.weight has shape {tuple(w.shape)}; expected a Conv3d (5-D)")
    dim, chans, tubelet, patch = w.shape[0], w.shape[1], w.shape[2], w.shape[3]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    heads = int(heads) or HEADS_BY_WIDTH.get(dim, 0)
    if not heads:
        raise ValueError(f"{source}: width {dim} has no known head count; set encoder_heads")
    hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    cfg = {"embed_dim": dim, "depth": depth, "num_heads": heads, "patch_size": patch, "tubelet_size": tubelet,
           "in_chans": chans, "mlp_ratio": hidden / dim, "rope_style": "vjepa2", "rope_theta": 10000.0}
    ours = {}
    for k, v in state.items():
        if k.startswith("patch_embed.proj."):
            ours["patch_embed." + k[len("patch_embed.proj."):]] = v
        elif k.startswith(("blocks.", "norm.")):
            ours[k] = v
        else:
            raise ValueError(f"{source}: key {k!r} has no place in the encoder")
    return cfg, ours


def load_vjepa2(path: str | Path, heads: int = 0) -> tuple[dict, dict]:
    """Read their checkpoint file (a training checkpoint with ``target_encoder``/``encoder``, or a bare encoder
    state dict) with ``weights_only=True`` and convert it (:func:`convert_state`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"V-JEPA 2 checkpoint {path}: no such file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"V-JEPA 2 checkpoint {path}: cannot be read safely ({type(e).__name__}: {e})") from e
    if not isinstance(blob, dict):
        raise ValueError(f"V-JEPA 2 checkpoint {path}: not a dict of weights")
    state = next((blob[k] for k in STATE_KEYS if isinstance(blob.get(k), dict)), blob)
    return convert_state(state, heads, path)
