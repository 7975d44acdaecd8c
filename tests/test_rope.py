"""3D RoPE (worldmodel.models.rope): attention scores depend only on relative position (our two layouts; vjepa2's
released layout turns the two channels of a pair by different frequencies, so it is not purely relative, and is
checked against their code by tests/test_encoders.py), each axis counts, tables are cached, and the encoder
layout is timm's."""
import pytest
import torch
from timm.layers import build_rotary_pos_embed

from worldmodel.models.rope import Rope3D, grid_positions


def _score(rope: Rope3D, tab, q, k, i, j):
    """Attention logit of query at token i and key at token j (one head)."""
    return (rope.apply(q, tab[i]) * rope.apply(k, tab[j])).sum()


@pytest.mark.parametrize("layout", ["pairs", "halves"])
@pytest.mark.parametrize("hd", [12, 64])  # 64: leftover channels pass through unrotated (ViT-L heads)
def test_scores_depend_only_on_relative_position(layout, hd):
    torch.manual_seed(0)
    rope, grid = Rope3D(hd, 100.0, layout), (4, 5, 6)
    tab = rope.table(grid, torch.device("cpu"))
    q, k = torch.randn(hd), torch.randn(hd)

    def flat(t, h, w):
        return (t * grid[1] + h) * grid[2] + w

    # same offset (1, 2, -3) at two different absolute places -> same score
    s1 = _score(rope, tab, q, k, flat(0, 0, 3), flat(1, 2, 0))
    s2 = _score(rope, tab, q, k, flat(2, 2, 5), flat(3, 4, 2))
    assert torch.allclose(s1, s2, atol=1e-4)
    # a different offset gives a different score
    assert not torch.allclose(s1, _score(rope, tab, q, k, flat(0, 0, 3), flat(1, 3, 0)), atol=1e-3)
    # each axis is used: offsets along t, h and w each change the score
    base = _score(rope, tab, q, k, flat(1, 1, 1), flat(1, 1, 1))
    for other in (flat(2, 1, 1), flat(1, 2, 1), flat(1, 1, 2)):
        assert not torch.allclose(base, _score(rope, tab, q, k, flat(1, 1, 1), other), atol=1e-4)


def test_tables_are_cached_pure_rotations():
    rope = Rope3D(12)
    a = rope.table((2, 3, 3), torch.device("cpu"))
    assert rope.table((2, 3, 3), torch.device("cpu")) is a
    assert a.shape == (18, 6) and a.is_complex()
    assert torch.allclose(a.abs(), torch.ones(()))
    for layout in ("vjepa2", "halves"):
        cos_sin = Rope3D(12, 10.0, layout).table((2, 3, 3), torch.device("cpu"))  # (N, 2, hd)
        assert cos_sin.shape == (18, 2, 12)
        assert torch.allclose(cos_sin.pow(2).sum(1), torch.ones(()))


@pytest.mark.parametrize("hd", [6, 32, 64])
def test_the_encoder_layout_is_timms(hd):
    grid = (3, 4, 5)
    sin, cos = build_rotary_pos_embed(feat_shape=list(grid), dim=4 * (hd // 6), in_pixels=False, temperature=1e4)
    ours = Rope3D(hd, 1e4).table(grid, torch.device("cpu"))[:, : 3 * (hd // 6)]  # (N, 3 * bands)
    assert torch.equal(ours, torch.complex(cos[:, ::2].float(), sin[:, ::2].float()))


def test_position_zero_leaves_its_channels_unrotated():
    """The action-conditioned predictor's action and state tokens carry (t, 0, 0): only temporal channels turn."""
    rope = Rope3D(12, 100.0, "halves")
    x = torch.randn(12)
    at = rope.table_at(torch.tensor([[0, 0, 0], [3, 0, 0]]))
    assert torch.equal(rope.apply(x, at[0]), x)
    moved = rope.apply(x, at[1]) != x
    temporal = 6 - 2 * (6 // 3)  # pairs turned by t
    assert moved[:temporal].all() and not moved[temporal:6].any()


def test_grid_positions_are_raster_order():
    pos = grid_positions((2, 2, 3))
    assert pos.shape == (12, 3) and pos[1].tolist() == [0, 0, 1] and pos[3].tolist() == [0, 1, 0]
    assert pos[6].tolist() == [1, 0, 0]


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="expected one of pairs, vjepa2, halves"):
        Rope3D(12, layout="interleaved")
