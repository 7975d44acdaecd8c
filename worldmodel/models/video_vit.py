"""VideoViT: the video encoder pretrained with V-JEPA and used frozen by every later stage.

Tokens come from a Conv3d tubelet embedding (``tubelet_size`` frames x ``patch_size``^2 pixels); position enters
only through a 3D rotary embedding over (t, h, w) applied to queries and keys in every block (attention through
SDPA). Token features therefore carry absolute position only where the content reveals it.

RoPE: :mod:`worldmodel.models.rope`, layout ``pairs`` (``rope_style=worldmodel``) or ``vjepa2`` (converted
checkpoints). The small block below (timm ``Mlp``) rather than timm's ``EvaBlock`` applies it as one complex
multiply: ``EvaBlock``'s rotate/stack copies cost 40-60% of a block's CPU time at width 192.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.data.video import normalize_frames
from worldmodel.models.rope import Rope3D
from worldmodel.utils.checkpoint import load_checkpoint, load_weights


@dataclass
class VideoViTConfig:
    # frame height and width in pixels (square frames)
    img_size: int = 64
    # frames per clip the encoder is trained on (any multiple of tubelet_size works at inference)
    num_frames: int = 8
    # spatial patch size in pixels
    patch_size: int = 8
    # frames per tubelet (temporal patch size)
    tubelet_size: int = 2
    # input channels
    in_chans: int = 3
    # token width
    embed_dim: int = 192
    # number of transformer blocks
    depth: int = 6
    # attention heads (head_dim = embed_dim / num_heads; a multiple of 6 uses every channel for RoPE)
    num_heads: int = 4
    # MLP hidden width / embed_dim
    mlp_ratio: float = 4.0
    # stochastic depth rate of the last block (linearly increasing from 0)
    drop_path: float = 0.0
    # RoPE base (inverse-frequency temperature)
    rope_theta: float = 10000.0
    # RoPE channel layout: worldmodel (ours, above) | vjepa2 (facebookresearch/vjepa2's, for converted checkpoints)
    rope_style: str = "worldmodel"
    # frames are resized to input_size x input_size before encoding (0: encoded at the size they come in)
    input_size: int = 0


class RopeAttention(nn.Module):
    """Multi-head self-attention with 3D RoPE on queries and keys, through SDPA."""

    def __init__(self, dim: int, num_heads: int, rope_apply, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rope_apply = rope_apply

    def forward(self, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)  # (3, B, H, N, hd)
        qk = self.rope_apply(qkv[:2], freqs)  # (2, B, H, N, hd) rotated queries and keys
        v = qkv[2]
        out = F.scaled_dot_product_attention(qk[0].to(v.dtype), qk[1].to(v.dtype), v)  # (B, H, N, hd)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), x + mlp(norm(x)) (timm ``Mlp``, ``DropPath``)."""

    def __init__(self, dim: int, num_heads: int, rope_apply, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RopeAttention(dim, num_heads, rope_apply)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), rope))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def make_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float, drop_path: float,
                rope_apply) -> nn.ModuleList:
    """Rotary pre-norm blocks with stochastic depth increasing linearly to ``drop_path``; ``rope_apply(x, table)``
    rotates their queries and keys (``Rope3D.apply``)."""
    rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
    return nn.ModuleList([Block(dim, num_heads, rope_apply, mlp_ratio, r) for r in rates])


def init_transformer(module: nn.Module, blocks: nn.ModuleList) -> None:
    """ViT/V-JEPA init: trunc-normal(0.02) linears, unit LayerNorms, output projections scaled by 1/sqrt(2*layer)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for i, blk in enumerate(blocks):
        blk.attn.proj.weight.data.div_(math.sqrt(2.0 * (i + 1)))
        blk.mlp.fc2.weight.data.div_(math.sqrt(2.0 * (i + 1)))


class VideoViT(nn.Module):
    """Video transformer encoder: tubelet embedding, 3D RoPE blocks, final LayerNorm."""

    def __init__(self, cfg: VideoViTConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.embed_dim % cfg.num_heads:
            raise ValueError(f"embed_dim {cfg.embed_dim} not divisible by num_heads {cfg.num_heads}")
        self.embed_dim = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.tubelet_size = cfg.tubelet_size
        self.img_size = cfg.img_size
        self.num_frames = cfg.num_frames
        self.patch_embed = nn.Conv3d(cfg.in_chans, cfg.embed_dim,
                                     kernel_size=(cfg.tubelet_size, cfg.patch_size, cfg.patch_size),
                                     stride=(cfg.tubelet_size, cfg.patch_size, cfg.patch_size))
        head_dim = cfg.embed_dim // cfg.num_heads
        if cfg.rope_style not in ("worldmodel", "vjepa2"):
            raise ValueError(f"model.rope_style={cfg.rope_style!r}; expected worldmodel or vjepa2")
        self.rope = Rope3D(head_dim, cfg.rope_theta, "pairs" if cfg.rope_style == "worldmodel" else "vjepa2")
        self.blocks = make_blocks(cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.drop_path,
                                  self.rope.apply)
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        init_transformer(self, self.blocks)

    def grid(self, T: int, H: int | None = None, W: int | None = None) -> tuple[int, int, int]:
        """Token grid (t, h, w) for a clip of T frames of H x W pixels (default img_size)."""
        H = self.img_size if H is None else H
        W = self.img_size if W is None else W
        return T // self.tubelet_size, H // self.patch_size, W // self.patch_size

    def num_tokens(self, T: int | None = None) -> int:
        t, h, w = self.grid(self.num_frames if T is None else T)
        return t * h * w

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encode clips.

        Args:
            x: (B, 3, T, H, W) normalized frames.
            keep: optional (B, K) long indices of the tokens to encode (raster order over the grid); the other
                tokens are dropped before the first block (the V-JEPA context encoder sees only these).
        Returns:
            (B, N, D) token features, or (B, K, D) with ``keep``; final LayerNorm applied.
        """
        B, _, T, H, W = x.shape
        grid = self.grid(T, H, W)
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        if keep is not None:
            tokens = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))  # (B, K, D)
        rope = self.rope.gather(grid, keep, x.device)  # rotation tables of all tokens, or (B, 1, K, ...) of keep
        for blk in self.blocks:
            tokens = blk(tokens, rope=rope)
        return self.norm(tokens)

    # ---- the frame-encoder interface (worldmodel.models.encoders) ---------------------------------------
    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) token grid of one frame of height x width pixels, after ``input_size`` resizing."""
        if self.cfg.input_size:
            height = width = self.cfg.input_size
        return height // self.patch_size, width // self.patch_size

    @torch.no_grad()
    def encode_images(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> (B, h*w, D), without gradients (see ``images_to_tokens``)."""
        return self.images_to_tokens(frames)

    def images_to_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> (B, h*w, D): ImageNet-normalized, resized to ``input_size`` when set, each
        frame encoded on its own (``encode_frames``); differentiable (train-ac's encoder fine-tuning)."""
        dev = next(self.parameters()).device
        x = normalize_frames(frames.to(dev))  # (B, 3, H, W)
        if self.cfg.input_size and tuple(x.shape[-2:]) != (self.cfg.input_size,) * 2:
            x = F.interpolate(x, size=(self.cfg.input_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        return self.encode_frames(x[:, None])[:, 0]  # (B, h*w, D)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode every frame on its own (the observation/goal convention of train-ac, drift and plan).

        Args:
            frames: (B, T, 3, H, W) normalized frames (``worldmodel.data.video.normalize_frames``).
        Returns:
            (B, T, h*w, D): each frame repeated ``tubelet_size`` times to fill one tubelet, final LayerNorm then
            a no-affine layer norm (the same normalization as the V-JEPA targets).
        """
        B, T, C, H, W = frames.shape
        x = frames.reshape(B * T, C, 1, H, W).expand(-1, -1, self.tubelet_size, -1, -1)  # (B*T, 3, tub, H, W)
        z = self.forward(x)  # (B*T, h*w, D)
        z = F.layer_norm(z, (z.shape[-1],))
        return z.reshape(B, T, z.shape[1], z.shape[2])


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def encoder_weights(checkpoint_path) -> tuple[dict, dict]:
    """(model config, weights) of the encoder in a ``wm pretrain`` checkpoint: the EMA target weights when the
    checkpoint has them (``extra["target"]``), else the online encoder (``model`` entries under ``encoder.``)."""
    ckpt = load_checkpoint(checkpoint_path)
    cfg_dict = CheckpointMeta.of(ckpt, str(checkpoint_path)).model_config
    if not cfg_dict:
        raise ValueError(f"checkpoint {checkpoint_path}: no model config (config.model); not a pretrain checkpoint?")
    extra = ckpt.get("extra") or {}
    if extra.get("target"):
        return cfg_dict, extra["target"]
    state = ckpt["model"]
    state = _strip(state, "module.") or state
    return cfg_dict, _strip(state, "encoder.")


def build_encoder(cfg_dict: dict, state: dict, source, device="cpu") -> VideoViT:
    """A frozen, eval-mode VideoViT from its config and weights (``source`` names where they came from)."""
    known = VideoViTConfig.__dataclass_fields__
    model = VideoViT(VideoViTConfig(**{k: v for k, v in cfg_dict.items() if k in known}))
    load_weights(model, state, source, "encoder")
    model.to(device).eval()
    model.requires_grad_(False)
    return model


def load_encoder(checkpoint_path, device="cpu") -> VideoViT:
    """Rebuild the pretrained encoder from a ``wm pretrain`` checkpoint, frozen and in eval mode."""
    return build_encoder(*encoder_weights(checkpoint_path), checkpoint_path, device)
