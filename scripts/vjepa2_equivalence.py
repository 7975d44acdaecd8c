"""Our converted V-JEPA 2 encoder vs facebookresearch/vjepa2's own code, on random weights.

    git clone https://github.com/facebookresearch/vjepa2 /tmp/vjepa2
    python scripts/vjepa2_equivalence.py --vjepa2 /tmp/vjepa2 --arch vit_large --frames 16 --size 256

Builds their ``<arch>`` (``use_rope=True``, as their hub does) with random weights, saves its state dict in their
training-checkpoint layout (``{"encoder": {"module.backbone." + key: ...}}``), converts that file with
``worldmodel.models.vjepa2.load_vjepa2`` into our VideoViT, encodes the same random clip with both, and prints the
largest absolute difference of the patch tokens (and of single-frame encodings, the frame repeated to fill a
tubelet). Their code is imported from the checkout given, never copied into this project.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from worldmodel.models.video_vit import VideoViT, VideoViTConfig
from worldmodel.models.vjepa2 import load_vjepa2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vjepa2", required=True, help="a checkout of facebookresearch/vjepa2 (its src/ is imported)")
    ap.add_argument("--arch", default="vit_large", help="their constructor: vit_large | vit_huge | vit_giant_xformers")
    ap.add_argument("--frames", type=int, default=16, help="clip length in frames")
    ap.add_argument("--size", type=int, default=256, help="frame height and width")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.vjepa2).resolve()))
    from src.models import vision_transformer as theirs  # noqa: E402  (their code, from their checkout)

    torch.manual_seed(args.seed)
    ref = theirs.__dict__[args.arch](img_size=(args.size, args.size), num_frames=args.frames, use_rope=True,
                                     use_sdpa=False).eval()
    for p in ref.parameters():  # their init zeroes biases and sets unit norms: perturb everything
        p.data.add_(0.02 * torch.randn_like(p))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vjepa2.pt"
        torch.save({"encoder": {f"module.backbone.{k}": v for k, v in ref.state_dict().items()}}, path)
        cfg, state = load_vjepa2(path)
    ours = VideoViT(VideoViTConfig(**cfg, img_size=args.size, num_frames=args.frames)).eval()
    ours.load_state_dict(state)  # strict: every key of both sides is used
    clip = torch.randn(1, 3, args.frames, args.size, args.size)
    with torch.no_grad():
        a, b = ref(clip), ours(clip)
        frame = clip[:, :, :1].expand(-1, -1, ref.tubelet_size, -1, -1)  # one frame filling one tubelet
        fa, fb = ref(frame), ours(frame)
    print(f"{args.arch}: width {cfg['embed_dim']}, depth {cfg['depth']}, heads {cfg['num_heads']}; clip "
          f"{args.frames}x{args.size}x{args.size} -> tokens {tuple(b.shape)}")
    print(f"max |ours - theirs| clip tokens: {(a - b).abs().max().item():.3e} (token scale {a.abs().mean():.3f})")
    print(f"max |ours - theirs| single-frame tokens: {(fa - fb).abs().max().item():.3e}")


if __name__ == "__main__":
    main()
