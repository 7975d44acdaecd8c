"""Speed against facebookresearch/vjepa2's own modules, in one process: a pretraining step and an AC rollout.

    git clone https://github.com/facebookresearch/vjepa2 /tmp/vjepa2 && pip install einops  # their code needs it
    python scripts/vjepa2_speed.py --vjepa2 /tmp/vjepa2 --threads 2

Both sides get the same configuration, random weights and inputs, and the same thread count:
- **pretrain**: batch ``--batch`` clips of ``--frames`` x ``--size``^2 pixels (tubelet 2, patch 8), encoder 192 wide
  x 6 blocks x 4 heads, predictor 96 x 4, 3D RoPE, SDPA, AdamW, two mask views (our multi-block sampler; the same
  indices go to both sides). One step = EMA-target forward + layer norm, context encoder and predictor per view,
  L1 loss, backward, AdamW, EMA update: their ``app/vjepa/train.py`` step on their ``VisionTransformer`` and
  ``VisionTransformerPredictor``, ours as ``wm pretrain`` runs it (``worldmodel.train.pretrain.JEPA``).
- **ac**: ``--rollouts`` sequences x ``--steps`` predicted frames of 64 tokens (8 x 8), predictor 192 wide x 4 blocks
  x 4 heads, 7-dim actions and states. Theirs (``VisionTransformerPredictorAC``) is run as their planner runs it: the
  whole sequence again at every step (their model has no cache); ours with its key/value cache (``use_cache=True``)
  and, for reference, without it.
Medians over ``--repeats`` timed runs after ``--warmup``; prints one table of seconds and ratios. Their code is
imported from the checkout given, never copied into this project.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from worldmodel.losses import latent_loss
from worldmodel.masks import MaskConfig, sample_masks
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.masked_predictor import PredictorConfig
from worldmodel.models.video_vit import VideoViTConfig
from worldmodel.train.pretrain import JEPA, ema_update


def median_seconds(fn, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones."""
    times = []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def pretrain_steps(args, theirs_vit, theirs_pred):
    """(their step, our step): closures doing one full pretraining step on the same clips and masks."""
    S, T, B = args.size, args.frames, args.batch
    x = torch.randn(B, 3, T, S, S)
    grid = (T // 2, S // 8, S // 8)
    views = [tuple(m) for m in sample_masks(B, grid, MaskConfig(), torch.Generator().manual_seed(0))]

    torch.manual_seed(0)
    enc = theirs_vit.VisionTransformer(img_size=(S, S), patch_size=8, num_frames=T, tubelet_size=2, embed_dim=192,
                                       depth=6, num_heads=4, mlp_ratio=4, qkv_bias=True, use_rope=True, use_sdpa=True,
                                       norm_layer=lambda d: torch.nn.LayerNorm(d, eps=1e-6))
    pred = theirs_pred.VisionTransformerPredictor(img_size=(S, S), patch_size=8, num_frames=T, tubelet_size=2,
                                                  embed_dim=192, predictor_embed_dim=96, depth=4, num_heads=4,
                                                  use_mask_tokens=True, num_mask_tokens=len(views), use_rope=True,
                                                  use_sdpa=True)
    target = copy.deepcopy(enc).requires_grad_(False)
    opt = torch.optim.AdamW(list(enc.parameters()) + list(pred.parameters()), lr=1e-4)

    def theirs():
        with torch.no_grad():
            h = target(x)
            h = F.layer_norm(h, (h.size(-1),))
        loss = 0
        for i, (ctx, tgt) in enumerate(views):
            z = pred(enc(x, [ctx]), [ctx], [tgt], mask_index=i)
            loss = loss + torch.mean(torch.abs(z - torch.gather(h, 1, tgt.unsqueeze(-1).expand(-1, -1, h.size(-1)))))
        (loss / len(views)).backward()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            t, o = list(target.parameters()), list(enc.parameters())
            torch._foreach_mul_(t, 0.999)
            torch._foreach_add_(t, o, alpha=0.001)

    torch.manual_seed(0)
    jepa = JEPA(VideoViTConfig(img_size=S, num_frames=T, embed_dim=192, depth=6, num_heads=4),
                PredictorConfig(embed_dim=96, depth=4, num_heads=4))
    our_target = copy.deepcopy(jepa.encoder).requires_grad_(False)
    our_opt = torch.optim.AdamW(jepa.parameters(), lr=1e-4)

    def ours():
        with torch.no_grad():
            h = F.layer_norm(our_target(x), (192,))
        loss = sum(latent_loss(p, torch.gather(h, 1, t.unsqueeze(-1).expand(-1, -1, 192)))
                   for (p, _), (_, t) in zip(jepa(x, views), views)) / len(views)
        our_opt.zero_grad(set_to_none=True)
        loss.backward()
        our_opt.step()
        ema_update(our_target, jepa.encoder, 0.999)

    return theirs, ours


def ac_rollouts(args, theirs_ac):
    """(theirs recomputing, ours cached, ours recomputing): closures rolling out the same batch."""
    B, H, N, D, A = args.rollouts, args.steps, 64, 192, 7
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(B, 1, N, D, generator=g)
    actions = torch.randn(B, H, A, generator=g)
    states = torch.randn(B, H, A, generator=g)
    torch.manual_seed(0)
    their = theirs_ac.VisionTransformerPredictorAC(img_size=(64, 64), patch_size=8, num_frames=2 * (H + 1),
                                                   tubelet_size=2, embed_dim=D, predictor_embed_dim=D, depth=4,
                                                   num_heads=4, action_embed_dim=A, use_rope=True).eval()
    our = ACPredictor(ACPredictorConfig(embed_dim=D, pred_dim=D, depth=4, num_heads=4, pool=1, grid_h=8, grid_w=8,
                                        action_dim=A, state_dim=A)).eval()

    @torch.no_grad()
    def theirs():
        seq = z0.flatten(1, 2)  # (B, T*N, D)
        for t in range(H):
            out = their(seq, actions[:, :t + 1], states[:, :t + 1])  # the whole sequence, every step
            seq = torch.cat([seq, out[:, -N:]], 1)

    @torch.no_grad()
    def ours(use_cache: bool):
        our.rollout(z0, actions, states[:, :1], use_cache=use_cache)

    return theirs, lambda: ours(True), lambda: ours(False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vjepa2", required=True, help="a checkout of facebookresearch/vjepa2 (its src/ is imported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="pretrain clips per step")
    ap.add_argument("--frames", type=int, default=16, help="pretrain frames per clip (16 x 64 px: 512 tokens)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rollouts", type=int, default=300, help="AC sequences rolled out at once")
    ap.add_argument("--steps", type=int, default=5, help="AC predicted frames")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(args.vjepa2).resolve()))
    from src.models import ac_predictor as theirs_ac  # noqa: E402  (their code, from their checkout)
    from src.models import predictor as theirs_pred  # noqa: E402
    from src.models import vision_transformer as theirs_vit  # noqa: E402

    their_step, our_step = pretrain_steps(args, theirs_vit, theirs_pred)
    pt = {name: median_seconds(fn, args.repeats, args.warmup) for name, fn in (("theirs", their_step),
                                                                                 ("ours", our_step))}
    their_roll, our_cached, our_full = ac_rollouts(args, theirs_ac)
    ac = {name: median_seconds(fn, args.repeats, args.warmup) for name, fn in
          (("theirs", their_roll), ("ours cached", our_cached), ("ours recompute", our_full))}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print("| | facebookresearch/vjepa2 | this project | ratio |\n|---|---|---|---|")
    print(f"| pretrain step, batch {args.batch} x {args.frames // 2 * (args.size // 8) ** 2} tokens, encoder 192x6, "
          f"predictor 96x4 | {pt['theirs']:.3f} s | {pt['ours']:.3f} s | {pt['theirs'] / pt['ours']:.2f}x |")
    print(f"| AC rollout {args.rollouts} x {args.steps} steps, 64 tokens/frame, predictor 192x4 | "
          f"{ac['theirs']:.3f} s (recompute) | {ac['ours cached']:.3f} s (cached) | "
          f"{ac['theirs'] / ac['ours cached']:.2f}x |")
    print(f"| (ours without the cache) | | {ac['ours recompute']:.3f} s | {ac['theirs'] / ac['ours recompute']:.2f}x |")


if __name__ == "__main__":
    main()
