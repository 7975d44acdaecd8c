"""The frame-encoder interface and its three sources: our `wm pretrain` checkpoints, V-JEPA 2 checkpoints, timm.

Interface (what the latent cache, the predictor, drift and planning use)::

    encoder.embed_dim                      token width D
    encoder.patch_grid(H, W) -> (h, w)     token grid of one H x W frame (after the encoder's own resizing)
    encoder.encode_images(frames) -> z     uint8 frames (B, H, W, 3) -> patch tokens (B, h*w, D), normalized
                                           and resized the way the encoder expects, each frame on its own

Sources (``encoder=`` of train-ac):
    ""  or  worldmodel:<file>   a `wm pretrain` checkpoint (``encoder_checkpoint``): VideoViT, our RoPE
    vjepa2:<file>               a facebookresearch/vjepa2 checkpoint converted into VideoViT (``models/vjepa2.py``)
    vjepa2:<org>/<name>         their transformers release on the Hugging Face hub, through the hub's cache
    timm:<model name>           a timm backbone with ``encoder_weights=<file>`` (``models/timm_encoder.py``)

``read_encoder`` returns (config, weights): the config says how to rebuild it (``{"kind", ...}``) and, with the
weights, is what a train-ac checkpoint carries or pins by :func:`~worldmodel.utils.checkpoint.content_digest`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from worldmodel.data import hub
from worldmodel.models.timm_encoder import TimmFrameEncoder, from_hub
from worldmodel.models.video_vit import build_encoder, encoder_weights
from worldmodel.models.vjepa2 import hub_files, load_vjepa2, load_vjepa2_hub
from worldmodel.utils.checkpoint import load_weights

KINDS = ("worldmodel", "vjepa2", "timm")
VJEPA2_SIZE = 256  # the frame size V-JEPA 2 encoders are trained and evaluated at


@dataclass
class EncoderSpec:
    """Which encoder to use: ``kind`` (worldmodel | vjepa2 | timm) and ``target`` (a file, or a timm name)."""

    kind: str
    target: str
    weights: str = ""  # timm, and vjepa2 from the hub: the local weights file (the hub cache's, for hub ids)
    img_size: int = 0  # frames resized to this before encoding (0: the source's default)
    heads: int = 0  # vjepa2: attention heads (0: from the width)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def file(self) -> str:
        """The file holding the weights (the latent cache is keyed by it)."""
        return self.weights or self.target


def parse_spec(encoder: str, checkpoint: str = "", weights: str = "", img_size: int = 0, heads: int = 0) -> EncoderSpec:
    """``encoder=`` text (+ ``encoder_checkpoint`` for ours) -> EncoderSpec; unknown kinds fail naming them."""
    kind, _, target = (encoder or "worldmodel:").partition(":")
    if kind not in KINDS:
        raise ValueError(f"encoder={encoder!r}; expected worldmodel:<file>, vjepa2:<file or org/name> or "
                         f"timm:<model name>")
    if kind == "worldmodel":
        target = target or checkpoint
        if not target:
            raise ValueError("train-ac needs encoder_checkpoint=PATH (a `wm pretrain` checkpoint) or encoder=...")
    if not target:
        raise ValueError(f"encoder={encoder!r}: name the {'model' if kind == 'timm' else 'file'} after the colon")
    if kind == "timm" and target.startswith("hf-hub:") and not weights:  # a hub repository: its cached weights
        target, hub_weights = from_hub(target)
        weights = str(hub_weights)
    local = kind != "timm" and (kind == "worldmodel" or Path(target).is_file() or not hub.hub_id(target))
    if kind != "timm":  # the weights are the target file's, or those of the hub release it names
        weights = "" if local else str(hub_files(target)[1][0])
    if kind == "timm" and not weights:
        raise ValueError(f"encoder={encoder}: set encoder_weights=<local weights file>, or name a hub repository "
                         f"(encoder=timm:hf-hub:<org>/<name>)")
    for path in ([target] if local else [weights]):
        if not Path(path).is_file():
            raise FileNotFoundError(f"encoder {kind} weights {path}: no such file")
    return EncoderSpec(kind, str(Path(target).resolve()) if local else target,
                       str(Path(weights).resolve()) if weights else "", int(img_size), int(heads))


def read_encoder(spec: EncoderSpec) -> tuple[dict, dict]:
    """(config, weights) of the encoder ``spec`` names; ``build_frame_encoder(config, weights)`` rebuilds it."""
    if spec.kind == "worldmodel":
        cfg, state = encoder_weights(spec.target)
        return {"kind": "worldmodel", "model": {**cfg, "input_size": spec.img_size}}, state
    if spec.kind == "vjepa2":
        cfg, state = load_vjepa2_hub(spec.target, spec.heads) if spec.weights else load_vjepa2(spec.target, spec.heads)
        size = spec.img_size or VJEPA2_SIZE
        return {"kind": "vjepa2", "model": {**cfg, "img_size": size, "input_size": size,
                                             "num_frames": cfg["tubelet_size"]}}, state
    enc = TimmFrameEncoder(spec.target, spec.img_size, spec.weights)
    return {"kind": "timm", "name": spec.target, "img_size": enc.img_size}, enc.state_dict()


def build_frame_encoder(config: dict, state: dict, source, device="cpu"):
    """A frozen, eval-mode frame encoder from ``read_encoder``'s output (``source`` names where it came from)."""
    kind = config.get("kind", "worldmodel")
    if kind == "timm":
        enc = TimmFrameEncoder(config["name"], int(config["img_size"]))
        load_weights(enc, state, source, "encoder")
        return enc.to(device).eval().requires_grad_(False)
    # VideoViT (ours or converted); a bare VideoViT config: checkpoints written before the kinds
    return build_encoder(config.get("model", config), state, source, device)


def describe(config: dict) -> str:
    """One line naming an encoder config: kind, architecture, input size."""
    if config.get("kind") == "timm":
        return f"timm {config['name']} at {config['img_size']} px"
    m = config.get("model", config)
    size = m.get("input_size") or "native"
    return (f"{config.get('kind', 'worldmodel')} ViT width {m.get('embed_dim')} depth {m.get('depth')} patch "
            f"{m.get('patch_size')} at {size} px")


def frozen_encoder_from_spec(spec: EncoderSpec, device="cpu") -> tuple[dict, dict, torch.nn.Module]:
    """(config, weights, encoder) for ``spec``."""
    config, state = read_encoder(spec)
    return config, state, build_frame_encoder(config, state, spec.label, device)
