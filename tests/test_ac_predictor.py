"""ACPredictor: block-causality, cached rollout == full recompute, pooling, and that it learns dynamics."""
import pytest
import torch

from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig, pool_latents


def make(state_dim=3, residual=False, **kw):
    torch.manual_seed(0)
    cfg = ACPredictorConfig(embed_dim=16, pred_dim=32, depth=2, num_heads=2, grid_h=2, grid_w=3, action_dim=4,
                            state_dim=state_dim, residual=residual, **kw)
    m = ACPredictor(cfg).eval()
    if residual:  # zero-initialized heads would make every comparison trivially equal
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return m


def inputs(B=3, T=6, state_dim=3):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(B, T, 6, 16, generator=g)
    a = torch.randn(B, T, 4, generator=g)
    s = torch.randn(B, T, state_dim, generator=g) if state_dim else None
    return z, a, s


@pytest.mark.parametrize("state_dim,glob", [(0, False), (3, False), (3, True)])
def test_block_causality(state_dim, glob):
    m = make(state_dim, global_head=glob)
    z, a, s = inputs(state_dim=state_dim)
    zp, sp = m(z, a, s)
    for t in range(z.shape[1] - 1):  # perturb every input of steps > t
        z2, a2 = z.clone(), a.clone()
        z2[:, t + 1 :] += 3.0
        a2[:, t + 1 :] -= 2.0
        s2 = None
        if s is not None:
            s2 = s.clone()
            s2[:, t + 1 :] += 1.0
        zp2, sp2 = m(z2, a2, s2)
        assert torch.equal(zp[:, : t + 1], zp2[:, : t + 1])
        assert not torch.allclose(zp[:, t + 1 :], zp2[:, t + 1 :])  # the test can fail: later steps do change
        if state_dim:
            assert torch.equal(sp[:, : t + 1], sp2[:, : t + 1])


def test_step_sees_its_own_action():
    m = make(0)
    z, a, _ = inputs(state_dim=0)
    a2 = a.clone()
    a2[:, 2] += 1.0
    assert not torch.allclose(m(z, a)[0][:, 2], m(z, a2)[0][:, 2])


@pytest.mark.parametrize("state_dim,residual,context,glob", [(0, False, 1, False), (3, False, 1, True),
                                                             (3, True, 2, False), (3, True, 3, True)])
def test_cached_rollout_equals_full_recompute(state_dim, residual, context, glob):
    m = make(state_dim, residual, global_head=glob)
    z, a, s = inputs(T=7, state_dim=state_dim)
    s_ctx = None if s is None else s[:, :context]
    with torch.no_grad():
        z_c, s_c = m.rollout(z[:, :context], a, s_ctx, use_cache=True)
        z_f, s_f = m.rollout(z[:, :context], a, s_ctx, use_cache=False)
    assert z_c.shape == (3, 7 - context + 1, 6, 16)
    assert (z_c - z_f).abs().max().item() <= 1e-4
    if state_dim:
        assert s_c.shape == (3, 7 - context + 1, 3)
        assert (s_c - s_f).abs().max().item() <= 1e-4


def test_rollout_first_step_matches_teacher_forcing():
    m = make(3)
    z, a, s = inputs()
    with torch.no_grad():
        zp, sp = m(z, a, s)
        zr, sr = m.rollout(z[:, :3], a[:, :3], s[:, :3])
    assert torch.allclose(zr[:, 0], zp[:, 2], atol=1e-5) and torch.allclose(sr[:, 0], sp[:, 2], atol=1e-5)


def test_forward_with_rollout_steps_returns_both():
    m = make(3)
    z, a, s = inputs()
    zp, sp, zr, sr = m(z, a, s, rollout_steps=2)
    assert zp.shape == z.shape and zr.shape == (3, 2, 6, 16) and sr.shape == (3, 2, 3)


def test_max_steps_is_enforced():
    m = make(0, max_steps=4)
    z, a, _ = inputs(T=5, state_dim=0)
    with pytest.raises(ValueError, match="max_steps"):
        m(z, a)


def test_pool_latents_shapes_and_values():
    z = torch.randn(2, 5, 64, 8)  # 8x8 grid
    p = pool_latents(z, 8, 8, 2)
    assert p.shape == (2, 5, 16, 8)
    assert torch.allclose(p.mean(-1), torch.zeros(2, 5, 16), atol=1e-5)  # re-layer-normed
    grid = z.reshape(2, 5, 8, 8, 8)
    manual = grid[:, :, :2, :2].mean(dim=(2, 3))  # first 2x2 block, top-left pooled token
    assert torch.allclose(p[:, :, 0], torch.nn.functional.layer_norm(manual, (8,)), atol=1e-5)
    assert pool_latents(z, 8, 8, 4).shape == (2, 5, 4, 8)
    assert pool_latents(z, 8, 8, 1) is z


def synthetic_batch(B, T, g, proj):
    """A point moving by its actions on a 2x2 token grid; tokens = fixed random features of the point's offset."""
    pos = torch.rand(B, 1, 2, generator=g) * 2 - 1
    act = (torch.rand(B, T, 2, generator=g) * 2 - 1) * 0.3
    traj = torch.cat((pos, pos + act.cumsum(1)), 1).clamp(-1.5, 1.5)  # (B, T+1, 2)
    centers = torch.tensor([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])  # (4, 2)
    bump = torch.exp(-((traj[:, :, None] - centers) ** 2).sum(-1) / 0.3)  # (B, T+1, 4)
    feats = torch.cat((bump[..., None], (traj[:, :, None] - centers)), -1)  # (B, T+1, 4, 3)
    z = torch.tanh(feats @ proj)  # (B, T+1, 4, 16)
    return z, act


def test_tiny_training_beats_copy_last():
    torch.manual_seed(0)
    cfg = ACPredictorConfig(embed_dim=16, pred_dim=32, depth=2, num_heads=2, grid_h=2, grid_w=2, action_dim=2)
    m = ACPredictor(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    proj = torch.randn(3, 16, generator=g)
    for _ in range(150):
        z, a = synthetic_batch(32, 4, g, proj)
        zp, _, zr, _ = m(z[:, :-1], a, rollout_steps=3)
        loss = (zp - z[:, 1:]).abs().mean() + (zr - z[:, 1:4]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    z, a = synthetic_batch(256, 4, torch.Generator().manual_seed(123), proj)
    with torch.no_grad():
        zr, _ = m.rollout(z[:, :1], a)
    model_err = (zr - z[:, 1:]).abs().mean().item()
    copy_err = (z[:, :1] - z[:, 1:]).abs().mean().item()
    assert model_err < 0.6 * copy_err, (model_err, copy_err)
