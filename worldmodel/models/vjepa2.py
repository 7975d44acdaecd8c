"""Official V-JEPA 2 encoder checkpoints (facebookresearch/vjepa2) as a frozen VideoViT, by key mapping.

Their released files hold ``encoder`` and ``target_encoder`` state dicts (keys prefixed ``module.`` and
``backbone.``) of a RoPE ViT: Conv3d tubelet embedding (``patch_embed.proj``), pre-norm blocks (``norm1``,
``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``, LayerNorm eps 1e-6, GELU MLP), a final ``norm``,
no position table. Our VideoViT has the same modules under the same names but one (``patch_embed`` is the Conv3d
itself); its ``rope_style=vjepa2`` rotates queries and keys exactly as their ``RoPEAttention`` does. The width,
depth, patch and tubelet sizes and MLP ratio are read from the weights' shapes; the head count is not stored
in the weights and comes from the width (ViT-L 1024 -> 16, ViT-H 1280 -> 16, ViT-g 1408 -> 22) or ``heads``.

Single frames are encoded as that codebase does: the frame repeated to fill one tubelet.

Their Hugging Face releases (``facebook/vjepa2-vitl-fpc64-256``, transformers' ``VJEPA2Model``) hold the same
weights under other names (``encoder.layer.N.attention.{query,key,value}`` split from ``qkv``,
``encoder.embeddings.patch_embeddings.proj``, ``encoder.layernorm``) beside the predictor's, with the head count in
``config.json``: :func:`from_hf_state` maps them back, :func:`load_vjepa2_hub` reads them through the hub's cache.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from worldmodel.data import hub

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


HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")  # a single file, or shards named by an index
HF_RENAMES = (("encoder.embeddings.patch_embeddings.", "patch_embed."), ("encoder.layernorm.", "norm."),
              ("encoder.layer.", "blocks."), ("attention.attention.", "attn."), (".attention.", ".attn."))


def from_hf_state(state: dict, source: str = "checkpoint") -> dict:
    """transformers' ``VJEPA2Model`` state dict -> their original encoder layout (``blocks.N.attn.qkv``, ...);
    the predictor's keys (``predictor.*``) are left out: only the encoder is used."""
    out: dict = {}
    split: dict[str, dict[str, torch.Tensor]] = {}  # "blocks.N.attn.qkv.weight" -> {"query": ..., ...}
    for key, value in state.items():
        if key.startswith("predictor."):
            continue
        for old, new in HF_RENAMES:
            key = key.replace(old, new)
        m = re.match(r"(blocks\.\d+\.attn\.)(query|key|value)\.(weight|bias)$", key)
        if m:
            split.setdefault(f"{m[1]}qkv.{m[3]}", {})[m[2]] = value
        else:
            out[key] = value
    for key, parts in split.items():
        if set(parts) != {"query", "key", "value"}:
            raise ValueError(f"{source}: {key.replace('qkv', '{query,key,value}')} incomplete (has {sorted(parts)})")
        out[key] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)  # (3D, D) / (3D,)
    return out


def read_safetensors(files: list[Path]) -> dict:
    """Tensors of one or more safetensors files, merged."""
    from safetensors.torch import load_file

    state: dict = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def hub_files(spec: str) -> tuple[dict, list[Path]]:
    """(config.json, weights files) of a V-JEPA 2 model repository on the hub (``<org>/<name>[@revision]``,
    transformers layout), through the hub's cache (``HF_HUB_OFFLINE=1`` honoured); refuses what does not convert."""
    config = json.loads(hub.model_file(spec, "config.json").read_text())
    if config.get("model_type") != "vjepa2":
        raise ValueError(f"encoder=vjepa2:{spec}: its config.json has model_type={config.get('model_type')!r}; "
                         f"expected 'vjepa2' (a transformers V-JEPA 2 repository)")
    for field, expected in (("hidden_act", "gelu"), ("layer_norm_eps", 1e-6), ("use_rope", True)):
        if config.get(field, expected) != expected:
            raise ValueError(f"encoder=vjepa2:{spec}: config.json {field}={config[field]!r}; "
                             f"only {expected!r} converts")
    weights = hub.first_model_file(spec, HF_WEIGHTS)
    if weights.name != HF_WEIGHTS[1]:
        return config, [weights]
    index = json.loads(weights.read_text())
    return config, [hub.model_file(spec, name) for name in sorted(set(index["weight_map"].values()))]


def load_vjepa2_hub(spec: str, heads: int = 0) -> tuple[dict, dict]:
    """A V-JEPA 2 model repository on the hub -> (VideoViTConfig fields, our state dict) (:func:`hub_files`)."""
    config, files = hub_files(spec)
    state = from_hf_state(read_safetensors(files), f"encoder=vjepa2:{spec}")
    return convert_state(state, heads or int(config.get("num_attention_heads", 0)), f"encoder=vjepa2:{spec}")
