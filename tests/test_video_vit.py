"""VideoViT: the keep-index path matches the full path, encode_frames convention (RoPE itself: test_rope.py)."""
import torch

from worldmodel.models.masked_predictor import MaskedPredictor, PredictorConfig
from worldmodel.models.rope import Rope3D
from worldmodel.models.video_vit import VideoViT, VideoViTConfig


def tiny(**kw):
    cfg = dict(img_size=16, num_frames=4, patch_size=4, tubelet_size=2, embed_dim=24, depth=2, num_heads=2)
    cfg.update(kw)
    return VideoViT(VideoViTConfig(**cfg)).eval()


def test_forward_shapes_and_keep_all_equals_full():
    torch.manual_seed(0)
    m = tiny()
    x = torch.randn(2, 3, 4, 16, 16)
    full = m(x)
    assert full.shape == (2, m.num_tokens(4), 24) == (2, 32, 24)
    perm = torch.stack([torch.randperm(32) for _ in range(2)])  # keep every token, in shuffled order
    kept = m(x, keep=perm)
    assert torch.allclose(kept, torch.gather(full, 1, perm.unsqueeze(-1).expand(-1, -1, 24)), atol=1e-5)


def test_keep_subset_sees_only_kept_tokens():
    torch.manual_seed(0)
    m = tiny()
    x = torch.randn(1, 3, 4, 16, 16)
    keep = torch.tensor([[0, 5, 9, 17]])
    a = m(x, keep=keep)
    x2 = x.clone()
    x2[:, :, :, 8:, 8:] += 5.0  # change pixels of tokens not in keep only (bottom-right patches of all frames)
    flat = [(t * 4 + h) * 4 + w for t in range(2) for h in range(2, 4) for w in range(2, 4)]
    assert not set(keep[0].tolist()) & set(flat)
    assert torch.allclose(a, m(x2, keep=keep), atol=1e-6)
    assert not torch.allclose(m(x), m(x2))


def test_encode_frames_convention():
    torch.manual_seed(0)
    m = tiny()
    frames = torch.randn(2, 3, 3, 16, 16)  # (B, T, 3, H, W)
    z = m.encode_frames(frames)
    assert z.shape == (2, 3, 16, 24)
    one = m(frames[:, 1].unsqueeze(2).expand(-1, -1, 2, -1, -1))  # frame 1 repeated to fill a tubelet
    one = torch.nn.functional.layer_norm(one, (24,))
    assert torch.allclose(z[:, 1], one, atol=1e-5)
    assert torch.allclose(z.mean(-1), torch.zeros(()), atol=1e-5)


def test_predictor_shapes_and_position_dependence():
    torch.manual_seed(0)
    enc = tiny()
    pred = MaskedPredictor(PredictorConfig(embed_dim=12, depth=1, num_heads=2), encoder_dim=24)
    for p in pred.parameters():  # away from the near-uniform attention of the 0.02 init
        p.data.normal_(0, 0.5)
    ctx_idx = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    tgt_idx = torch.tensor([[10, 20, 30], [11, 21, 31]])
    ctx = enc(torch.randn(2, 3, 4, 16, 16), keep=ctx_idx)
    out = pred(ctx, ctx_idx, tgt_idx, enc.grid(4))
    assert out.shape == (2, 3, 24)
    # mask tokens are identical; only their rotary position tells targets apart
    assert not torch.allclose(out[:, 0], out[:, 1], atol=1e-4)


def test_sdpa_attention_matches_manual_rotary_attention():
    from worldmodel.models.video_vit import RopeAttention

    torch.manual_seed(0)
    rope = Rope3D(6)
    attn = RopeAttention(12, 2, rope.apply)
    x = torch.randn(2, 6, 12)
    freqs = rope.table((1, 2, 3), torch.device("cpu"))  # (6, 3)
    qkv = attn.qkv(x).view(2, 6, 3, 2, 6).permute(2, 0, 3, 1, 4)  # (3, B, H, N, hd)
    q, k, v = rope.apply(qkv[0], freqs), rope.apply(qkv[1], freqs), qkv[2]
    w = torch.softmax(q @ k.transpose(-1, -2) / 6**0.5, dim=-1)  # (B, H, N, N)
    manual = attn.proj((w @ v).transpose(1, 2).reshape(2, 6, 12))
    assert torch.allclose(attn(x, freqs), manual, atol=1e-5)
