"""bf16 planning rollouts: the CPU attention shortcut equals SDPA, bf16 rollouts track float32 ones, and the
``precision`` setting resolves as documented."""
import pytest
import torch
import torch.nn.functional as F

from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig, _attend
from worldmodel.planning.mpc import rollout_dtype


def test_cpu_bf16_attention_shortcut_equals_sdpa():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(5, 2, 7, 8, generator=g)  # one step's queries
    k, v = torch.randn(5, 2, 18, 8, generator=g), torch.randn(5, 2, 18, 8, generator=g)  # cached + own keys
    ref = F.scaled_dot_product_attention(q, k, v)
    out = _attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), None).float()
    assert (out - ref).abs().max() < 0.05  # bf16 rounding only
    assert torch.equal(_attend(q, k, v, None), ref)  # float32 goes through SDPA unchanged
    mask = torch.ones(7, 7, dtype=torch.bool).tril()
    assert torch.equal(_attend(q, k[:, :, :7], v[:, :, :7], mask),
                       F.scaled_dot_product_attention(q, k[:, :, :7], v[:, :, :7], attn_mask=mask))


def test_bf16_rollout_tracks_float32():
    torch.manual_seed(0)
    cfg = ACPredictorConfig(embed_dim=16, pred_dim=32, depth=2, num_heads=2, grid_h=2, grid_w=2, action_dim=4,
                            state_dim=3, residual=False, global_head=True)
    m = ACPredictor(cfg).eval()
    g = torch.Generator().manual_seed(1)
    z, a = torch.randn(6, 1, 4, 16, generator=g), torch.randn(6, 5, 4, generator=g)
    s = torch.randn(6, 1, 3, generator=g)
    with torch.no_grad():
        ref_z, ref_s = m.rollout(z, a, s)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bz, bs = m.rollout(z, a, s)
    rel = (bz.float() - ref_z).norm() / ref_z.norm()
    assert rel < 0.03, rel
    assert (bs.float() - ref_s).abs().max() < 0.1
    # the shortcut is taken (bf16 inside), and it is not trivially equal to float32
    assert not torch.equal(bz.float(), ref_z)


def test_precision_setting():
    cpu = torch.device("cpu")
    assert rollout_dtype("fp32", cpu) is None
    assert rollout_dtype("bf16", cpu) is torch.bfloat16
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert rollout_dtype("auto", cpu) is (torch.bfloat16 if native else None)
    assert rollout_dtype("auto", torch.device("cuda")) is torch.bfloat16
    with pytest.raises(ValueError, match="precision='half'"):
        rollout_dtype("half", cpu)
