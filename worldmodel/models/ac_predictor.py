"""Action-conditioned block-causal predictor (V-JEPA 2-AC style) with a key/value-cached rollout.

Token layout. One predictor *step* t holds, in this order::

    [ action a_t | state s_t (if state_dim > 0) | patch tokens of z_t (grid_h * grid_w) ]

``a_t`` is the (stacked, ``frame_skip * A``) action taken between frames t and t+1, ``s_t`` the simulator
state at frame t, ``z_t`` the frozen encoder's (optionally pooled) latent of frame t. Each part has its own
linear embedding into the predictor width; patch tokens are projected back to the encoder width at the end.

Attention is block-causal: every token of step t sees all tokens of steps <= t and none later (a boolean
SDPA mask). The outputs at the patch tokens of step t predict z_{t+1}; the output at the state token feeds a
small head that predicts s_{t+1}. Options: ``residual`` (z_t + delta, s_t + delta: an untrained predictor starts
at "copy the last latent"); ``global_head`` (an MLP decodes a full N x D latent that is added to the patch outputs:
from the predicted next state when the model has states and ``global_from_state``, else from the mean of the
action/state token outputs, which see the whole step); ``abs_pos`` (a learned embedding of
each patch token's grid cell). The cpu preset uses global_head + abs_pos without residual: with a frozen
encoder whose latent changes are sparse, that is what makes predicted latents carry the object's position
within a few minutes of CPU training (a per-cell decoder of the step summary is learned much faster than
"render an object in my cell" through attention alone).

Positions are rotary (:mod:`worldmodel.models.rope`, layout ``halves``). A token of step t at patch (h, w) is
rotated by 3D RoPE over (t, h + 1, w + 1): the head dimension is split into a temporal part and two spatial
parts. Action and state tokens carry the temporal position only (spatial position 0: those channels are not
rotated). The tables for ``max_steps`` steps are built once at construction and sliced, never recomputed.

Future proprioception (decided). The state is only observed at the context frames. During teacher forcing
the true states s_t are fed. During rollout (training's rollout loss, drift, planning) the state token of
every step after the context gets the state head's prediction from the previous step, so training and
planning see the same kind of input. ``state_dim = 0`` drops the state token and head (envs without
proprioception). States are standardized and actions scaled to [-1, 1] inside the model by buffers
(``state_mean/std``, ``action_low/high``) set from the dataset and saved with the weights; latents are
standardized per (token, channel) on the way in and the predicted change is made in those units
(``latent_mean/std``), while outputs and losses stay in the encoder's latent space.

Rollout. ``rollout(..., use_cache=True)`` prefills the context steps once, then runs one step at a time on
only that step's tokens, attending to the cached keys/values of earlier steps: step t+1 reuses the keys and
values of steps <= t. ``use_cache=False`` recomputes the whole sequence every step (the reference; the two
agree to float precision, see tests/test_ac_predictor.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from worldmodel.models.rope import Rope3D
from worldmodel.utils.memory import F32, transformer_bytes


@dataclass
class ACPredictorConfig:
    embed_dim: int = 0  # encoder width D of the latents in and out (0: taken from the encoder at build time)
    pred_dim: int = 128  # predictor transformer width
    depth: int = 4  # transformer blocks
    num_heads: int = 4  # attention heads (pred_dim / num_heads must be even)
    mlp_ratio: float = 4.0  # MLP hidden width as a multiple of pred_dim
    pool: int = 2  # average-pool encoder patch tokens pool x pool before the predictor (1: no pooling)
    grid_h: int = 0  # patch grid height after pooling (0: taken from the encoder at build time)
    grid_w: int = 0  # patch grid width after pooling (0: taken from the encoder at build time)
    action_dim: int = 0  # action size per predictor step = frame_skip * env action dim (0: from the dataset)
    state_dim: int = 0  # simulator state size; 0 means no state token and no state head
    max_steps: int = 32  # longest sequence (context + rollout steps) the rotary tables cover
    rope_theta: float = 100.0  # rotary base; small because positions are small integers
    residual: bool = True  # predict z_{t+1} = z_t + delta (starts at copy-last) instead of z_{t+1} directly
    abs_pos: bool = True  # also add a learned embedding of each patch token's grid cell (besides RoPE)
    global_head: bool = False  # also decode the whole next latent (N x D) with an MLP (input: global_from_state)
    global_from_state: bool = True  # global head decodes the predicted next state (if any) instead of the cond tokens
    global_hidden: int = 256  # width of the global head's two hidden layers


def step_memory_bytes(cfg: ACPredictorConfig, sequences: int, steps: int, backward: bool) -> float:
    """Rough upper bound of the memory one call needs on ``sequences`` windows of ``steps`` frames: with
    ``backward`` (training) every block's activations over the whole window; without (a cached rollout) one
    step's activations and the key/value cache of all steps; plus the latents in and out."""
    per_step = 1 + (cfg.state_dim > 0) + cfg.grid_h * cfg.grid_w  # action (+ state) and patch tokens
    latents = 3.0 * sequences * steps * cfg.grid_h * cfg.grid_w * cfg.embed_dim * F32
    if backward:
        return latents + transformer_bytes(sequences, steps * per_step, cfg.pred_dim, cfg.depth, cfg.mlp_ratio)
    cache = 2.0 * cfg.depth * sequences * steps * per_step * cfg.pred_dim * F32
    return latents + cache + transformer_bytes(sequences, per_step, cfg.pred_dim, cfg.depth, cfg.mlp_ratio, False)


def pool_latents(z: torch.Tensor, grid_h: int, grid_w: int, pool: int) -> torch.Tensor:
    """Average-pool patch tokens on their grid, then layer-norm (no affine) each token again.

    z: (..., grid_h * grid_w, D) encoder tokens -> (..., (grid_h // pool) * (grid_w // pool), D).
    Re-normalizing keeps pooled tokens on the same scale as the encoder's layer-normed output.
    """
    if pool <= 1:
        return z
    *lead, N, D = z.shape
    assert N == grid_h * grid_w and grid_h % pool == 0 and grid_w % pool == 0, (N, grid_h, grid_w, pool)
    x = z.reshape(-1, grid_h, grid_w, D).permute(0, 3, 1, 2)  # (M, D, gh, gw)
    x = F.avg_pool2d(x, pool)  # (M, D, gh/p, gw/p)
    x = x.flatten(2).transpose(1, 2)  # (M, N', D)
    x = F.layer_norm(x, (D,))
    return x.reshape(*lead, x.shape[1], D)


def _cached(cache: dict, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append this call's keys/values (B, nh, L, hd) to the cache; return all of them (B, nh, Lc + L, hd).

    Without autograd the cache is one buffer of ``cache["capacity"]`` positions written in place (no copy of the
    whole cache per step); with autograd (training's rollout loss, gradient planning) it grows by concatenation,
    since in-place writes would invalidate the keys saved for backward."""
    n = cache.get("len", 0)
    L = k.shape[2]
    if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad) or cache.get("grow"):
        cache["grow"] = True
        if "k" in cache:
            k, v = torch.cat((cache["k"], k), dim=2), torch.cat((cache["v"], v), dim=2)
        cache["k"], cache["v"], cache["len"] = k, v, n + L
        return k, v
    if "k" not in cache:
        cap = max(int(cache.get("capacity", 0)), n + L)
        cache["k"], cache["v"] = k.new_empty(*k.shape[:2], cap, k.shape[3]), v.new_empty(*v.shape[:2], cap, v.shape[3])
    cache["k"][:, :, n:n + L] = k
    cache["v"][:, :, n:n + L] = v
    cache["len"] = n + L
    return cache["k"][:, :, :n + L], cache["v"][:, :, :n + L]


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q k^T / sqrt(hd)) v: q (B, nh, L, hd), k, v (B, nh, Lk, hd) -> (B, nh, L, hd).

    SDPA, except without a mask in bf16 on CPU (the planner's one-step rollout calls), where the flash kernel's
    overhead on these short sequences (L = one step's tokens) makes plain batched matmuls ~1.5x faster."""
    if mask is None and q.dtype == torch.bfloat16 and q.device.type == "cpu":
        att = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, nh, L, Lk)
        return att.float().softmax(-1).to(v.dtype) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class Attention(nn.Module):
    """Multi-head self-attention with rotary q/k, SDPA, and an optional growing key/value cache."""

    def __init__(self, dim: int, num_heads: int, rope_apply):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rope_apply = rope_apply

    def forward(self, x, rope, mask=None, cache: dict | None = None):
        B, L, C = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, nh, L, hd)
        q, k = self.rope_apply(q, rope), self.rope_apply(k, rope)  # rope (L, 2, hd)
        if cache is not None:
            k, v = _cached(cache, k, v)  # (B, nh, Lc + L, hd)
        out = _attend(q, k, v, mask)  # (B, nh, L, hd)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), x + mlp(norm(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope_apply):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, rope_apply)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, rope, mask=None, cache=None):
        x = x + self.attn(self.norm1(x), rope, mask, cache)
        return x + self.mlp(self.norm2(x))


class ACPredictor(nn.Module):
    """Block-causal action-conditioned predictor; see the module docstring for layout and policies."""

    def __init__(self, cfg: ACPredictorConfig):
        super().__init__()
        assert cfg.embed_dim > 0 and cfg.action_dim > 0 and cfg.grid_h > 0 and cfg.grid_w > 0, cfg  # resolved
        if cfg.pred_dim % cfg.num_heads or (cfg.pred_dim // cfg.num_heads) % 2:
            raise ValueError(f"model.pred_dim={cfg.pred_dim} / model.num_heads={cfg.num_heads} must be an even "
                             "integer (the head width RoPE rotates in pairs)")
        self.cfg = cfg
        C = cfg.pred_dim
        self.num_patches = cfg.grid_h * cfg.grid_w
        self.n_cond = 1 + (cfg.state_dim > 0)  # action (+ state) tokens per step
        self.tokens_per_step = self.n_cond + self.num_patches
        self.patch_in = nn.Linear(cfg.embed_dim, C)
        # where a patch token sits, as an input: rendering "is the object in my cell" needs it, RoPE alone
        # only hands relative offsets to attention
        self.pos_embed = nn.Parameter(torch.zeros(self.num_patches, C)) if cfg.abs_pos else None
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.action_in = nn.Linear(cfg.action_dim, C)
        self.state_in = nn.Linear(cfg.state_dim, C) if cfg.state_dim > 0 else None
        self.rope = Rope3D(C // cfg.num_heads, cfg.rope_theta, "halves")
        self.blocks = nn.ModuleList(Block(C, cfg.num_heads, cfg.mlp_ratio, self.rope.apply) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(C)
        self.patch_out = nn.Linear(C, cfg.embed_dim)
        self.state_out = nn.Linear(C, cfg.state_dim) if cfg.state_dim > 0 else None
        self.global_from_state = cfg.global_head and cfg.global_from_state and cfg.state_dim > 0
        self.global_out = None
        if cfg.global_head:
            Hd = cfg.global_hidden
            self.global_out = nn.Sequential(
                nn.Linear(cfg.state_dim if self.global_from_state else C, Hd), nn.GELU(), nn.Linear(Hd, Hd), nn.GELU(),
                nn.Linear(Hd, self.num_patches * cfg.embed_dim))
        if cfg.residual:  # start exactly at copy-last: zero deltas
            for head in (self.patch_out, self.state_out, self.global_out and self.global_out[-1]):
                if head is not None:
                    nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)
        # data normalization, set from the dataset by set_normalization() and saved with the weights
        self.register_buffer("action_low", -torch.ones(cfg.action_dim))
        self.register_buffer("action_high", torch.ones(cfg.action_dim))
        self.register_buffer("state_mean", torch.zeros(max(cfg.state_dim, 1)))
        self.register_buffer("state_std", torch.ones(max(cfg.state_dim, 1)))
        self.register_buffer("latent_mean", torch.zeros(self.num_patches, cfg.embed_dim))
        self.register_buffer("latent_std", torch.ones(self.num_patches, cfg.embed_dim))
        # rotary tables and block-causal mask for max_steps, built once
        K, S = self.tokens_per_step, cfg.max_steps
        hh, ww = torch.meshgrid(torch.arange(cfg.grid_h), torch.arange(cfg.grid_w), indexing="ij")
        # spatial (h, w) from 1 for patches; 0 (= unrotated) for action/state tokens
        spatial = torch.cat((torch.zeros(self.n_cond, 2, dtype=torch.long), torch.stack((hh, ww), -1).view(-1, 2) + 1))
        pos = torch.cat((torch.arange(S).repeat_interleave(K)[:, None], spatial.repeat(S, 1)), 1)  # (S*K, 3)
        self.register_buffer("rope_table", self.rope.table_at(pos), persistent=False)  # (S*K, 2, hd)
        step = torch.arange(S * K) // K
        self.register_buffer("causal_mask", step[None, :] <= step[:, None], persistent=False)  # (S*K, S*K)

    # ---- normalization ---------------------------------------------------------------------------------
    @torch.no_grad()
    def set_normalization(self, action_low, action_high, state_mean=None, state_std=None, latent_mean=None,
                          latent_std=None) -> None:
        """Record action bounds (-> [-1, 1]) and state and latent statistics (-> standardized) from the dataset.

        Latent statistics are per (token, channel), (N, D): frozen-encoder latents of a scene vary little around
        a large static part, so standardizing them is what lets a small predictor see the motion quickly.
        """
        self.action_low.copy_(torch.as_tensor(action_low, dtype=torch.float32))
        self.action_high.copy_(torch.as_tensor(action_high, dtype=torch.float32))
        if self.cfg.state_dim > 0 and state_mean is not None:
            self.state_mean.copy_(torch.as_tensor(state_mean, dtype=torch.float32))
            self.state_std.copy_(torch.as_tensor(state_std, dtype=torch.float32).clamp_min(1e-6))
        if latent_mean is not None:
            std = torch.as_tensor(latent_std, dtype=torch.float32)
            self.latent_mean.copy_(torch.as_tensor(latent_mean, dtype=torch.float32))
            self.latent_std.copy_(std.clamp_min(0.1 * std.mean().item() + 1e-8))  # no blow-up of static channels

    def norm_actions(self, a: torch.Tensor) -> torch.Tensor:
        return 2 * (a - self.action_low) / (self.action_high - self.action_low).clamp_min(1e-6) - 1

    def norm_states(self, s: torch.Tensor) -> torch.Tensor:
        return (s - self.state_mean) / self.state_std

    def denorm_states(self, s: torch.Tensor) -> torch.Tensor:
        return s * self.state_std + self.state_mean

    # ---- core ------------------------------------------------------------------------------------------
    def _embed(self, z, actions, states_n):
        """z (B, T, N, D), actions (B, T, A), states_n (B, T, S) standardized | None -> (B, T*K, C)."""
        B, T, N, _ = z.shape
        parts = [self.action_in(self.norm_actions(actions))[:, :, None]]  # (B, T, 1, C)
        if self.state_in is not None:
            parts.append(self.state_in(states_n)[:, :, None])  # (B, T, 1, C)
        patches = self.patch_in((z - self.latent_mean) / self.latent_std)  # (B, T, N, C)
        parts.append(patches if self.pos_embed is None else patches + self.pos_embed)
        return torch.cat(parts, dim=2).flatten(1, 2)  # (B, T*K, C)

    def _transformer(self, x, start_step: int, caches: list | None):
        """Run the blocks on tokens of steps start_step.. (x: (B, L, C)); caches grow when given."""
        K = self.tokens_per_step
        lo, hi = start_step * K, start_step * K + x.shape[1]
        if hi > self.causal_mask.shape[0]:
            raise ValueError(f"sequence of {hi // K} steps exceeds max_steps={self.cfg.max_steps}")
        rope = self.rope_table[lo:hi]  # (L, 2, hd)
        # one new step attends to everything before it: no mask needed (lets SDPA pick its fastest kernel)
        mask = None if x.shape[1] == K else self.causal_mask[lo:hi, :hi]
        for i, blk in enumerate(self.blocks):
            x = blk(x, rope, mask, caches[i] if caches is not None else None)
        return self.norm(x)

    def _readout(self, h, z, states_n):
        """h (B, T*K, C) outputs, z (B, T, N, D) inputs -> next latents (B, T, N, D), next states_n (B, T, S)."""
        B, T = z.shape[:2]
        h = h.view(B, T, self.tokens_per_step, -1)  # (B, T, K, C)
        z_next = self.patch_out(h[:, :, self.n_cond :])  # (B, T, N, D), standardized units
        s_next = None
        if self.state_out is not None:
            s_next = self.state_out(h[:, :, 1])  # (B, T, S)
            if self.cfg.residual:
                s_next = s_next + states_n
        if self.global_out is not None:  # per-cell decoder of the predicted next state, else of the step summary
            g = s_next if self.global_from_state else h[:, :, : self.n_cond].mean(2)  # (B, T, S) | (B, T, C)
            z_next = z_next + self.global_out(g).view(z_next.shape)
        z_next = z_next * self.latent_std
        z_next = z_next + (z if self.cfg.residual else self.latent_mean)
        return z_next, s_next

    def forward(self, z, actions, states=None, rollout_steps: int = 0):
        """Teacher forcing: z (B, T, N, D), actions (B, T, A), states (B, T, S) | None.

        Returns (z_pred (B, T, N, D), s_pred (B, T, S) | None): predictions of z[t+1] and s[t+1] per step t.
        With ``rollout_steps = R > 0`` also returns the autoregressive rollout from the first frame under
        actions[:, :R], (z_roll (B, R, N, D), s_roll (B, R, S) | None), so one DDP forward serves both losses.
        """
        states_n = self._states_in(states)
        h = self._transformer(self._embed(z, actions, states_n), 0, None)
        z_next, s_next = self._readout(h, z, states_n)
        out = (z_next, self.denorm_states(s_next) if s_next is not None else None)
        if rollout_steps > 0:
            out = out + self.rollout(z[:, :1], actions[:, :rollout_steps], None if states is None else states[:, :1])
        return out

    def _states_in(self, states):
        if self.state_in is None:
            return None
        if states is None:
            raise ValueError(f"predictor has state_dim={self.cfg.state_dim}: states are required")
        return self.norm_states(states)

    def rollout(self, z, actions, states=None, use_cache: bool = True):
        """Open-loop autoregressive rollout from context.

        Args:
            z: (B, C, N, D) context latents (C >= 1 ground-truth frames).
            actions: (B, C - 1 + H, A) actions from the first context frame on (H = rollout steps).
            states: (B, C, S) context states, or None when state_dim == 0.
            use_cache: reuse keys/values of earlier steps (True) or recompute the full sequence each step.
        Returns:
            (B, H, N, D) predicted latents of frames C..C+H-1, and (B, H, S) predicted states (or None).
        """
        B, C = z.shape[:2]
        H = actions.shape[1] - C + 1
        assert H >= 1, (actions.shape, z.shape)
        s_n = self._states_in(states)
        z_seq, s_seq = z, s_n  # inputs so far: (B, t, N, D), (B, t, S)
        caches = [{"capacity": (C + H - 1) * self.tokens_per_step} for _ in self.blocks] if use_cache else None
        z_new, s_new = z, s_n  # tokens to run this step
        preds_z, preds_s = [], []
        for i in range(H):
            t = C + i  # number of steps fed so far after this call
            if use_cache:
                start = 0 if i == 0 else t - 1
                x = self._embed(z_new, actions[:, start:t], s_new)
                h = self._transformer(x, start, caches)
                z_next, s_next = self._readout(h[:, -self.tokens_per_step :], z_new[:, -1:],
                                               None if s_new is None else s_new[:, -1:])
            else:
                x = self._embed(z_seq, actions[:, :t], s_seq)
                h = self._transformer(x, 0, None)
                z_next, s_next = self._readout(h[:, -self.tokens_per_step :], z_seq[:, -1:],
                                               None if s_seq is None else s_seq[:, -1:])
            preds_z.append(z_next)  # (B, 1, N, D)
            preds_s.append(s_next)
            z_new, s_new = z_next, s_next
            if not use_cache and i < H - 1:
                z_seq = torch.cat((z_seq, z_next), 1)
                s_seq = None if s_seq is None else torch.cat((s_seq, s_next), 1)
        z_out = torch.cat(preds_z, 1)  # (B, H, N, D)
        s_out = self.denorm_states(torch.cat(preds_s, 1)) if self.state_out is not None else None
        return z_out, s_out
