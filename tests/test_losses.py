"""Losses: SIGReg separates Gaussian from collapsed embeddings, VICReg terms, effective rank, L1 exponent."""
import torch

from worldmodel.losses import collapse_stats, effective_rank, latent_loss, sigreg, vicreg


def test_sigreg_small_for_gaussian_large_for_collapsed():
    g = torch.Generator().manual_seed(0)
    gauss = torch.randn(1024, 32, generator=g)
    collapsed = torch.randn(1, 32, generator=g).expand(1024, 32) + 0.01 * torch.randn(1024, 32, generator=g)
    low_rank = torch.randn(1024, 2, generator=g) @ torch.randn(2, 32, generator=g)
    s_gauss = sigreg(gauss, generator=torch.Generator().manual_seed(1)).item()
    s_coll = sigreg(collapsed, generator=torch.Generator().manual_seed(1)).item()
    s_low = sigreg(low_rank, generator=torch.Generator().manual_seed(1)).item()
    assert s_gauss < 2.0  # E[statistic] is about 1 under the null
    assert s_coll > 50 * s_gauss
    assert s_low > 5 * s_gauss
    scaled = sigreg(3 * gauss, generator=torch.Generator().manual_seed(1)).item()
    assert scaled > 10 * s_gauss  # wrong scale is not isotropic N(0, I)


def test_sigreg_gradient_pushes_towards_gaussian():
    z = (0.2 * torch.randn(256, 16)).requires_grad_()
    opt = torch.optim.SGD([z], lr=0.5)
    first = None
    for i in range(60):
        loss = sigreg(z, num_slices=64, generator=torch.Generator().manual_seed(i))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_vicreg_terms():
    g = torch.Generator().manual_seed(0)
    white = torch.randn(4096, 8, generator=g)
    v, c = vicreg(white)
    assert v.item() < 0.05 and c.item() < 0.05
    v2, _ = vicreg(0.1 * white)
    assert abs(v2.item() - 0.9) < 0.05
    corr = white[:, :1].expand(-1, 8) + 0.1 * white
    _, c2 = vicreg(corr)
    assert c2.item() > 1.0


def test_effective_rank_and_collapse_stats():
    g = torch.Generator().manual_seed(0)
    full = torch.randn(2000, 16, generator=g)
    assert 14 < effective_rank(full) <= 16
    rank2 = torch.randn(2000, 2, generator=g) @ torch.randn(2, 16, generator=g)
    assert effective_rank(rank2) < 2.1
    stats = collapse_stats(torch.zeros(10, 5, 16) + torch.randn(16, generator=g))
    assert stats["std"] < 1e-6 and stats["eff_rank"] <= 1.0 + 1e-3


def test_latent_loss_exponent():
    a, b = torch.zeros(4, 3), torch.full((4, 3), 2.0)
    assert latent_loss(a, b).item() == 2.0
    assert latent_loss(a, b, exponent=2.0).item() == 4.0


def test_rdmreg_small_for_matching_samples_large_for_collapsed():
    from worldmodel.losses import rdmreg, rectified_gg_samples

    matching = rectified_gg_samples(512, 32, p=2.0, seed=123)  # another draw of the target distribution
    gauss = torch.randn(512, 32)
    collapsed = torch.full((512, 32), 0.3) + 1e-3 * torch.randn(512, 32)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    r_match = rdmreg(matching, generator=g(), seed=7).item()
    r_gauss = rdmreg(gauss, generator=g(), seed=7).item()
    r_coll = rdmreg(collapsed, generator=g(), seed=7).item()
    assert r_match < 0.05 and r_match < r_gauss / 5 and r_match < r_coll / 5, (r_match, r_gauss, r_coll)
    # the target is rectified: about half its entries are exactly 0, none negative (p = 2, mu = 0)
    s = rectified_gg_samples(1000, 8, seed=1)
    assert (s >= 0).all() and 0.4 < (s == 0).float().mean() < 0.6


def test_rdmreg_gradient_pulls_collapsed_embeddings_towards_the_target():
    from worldmodel.losses import rdmreg

    z = torch.full((256, 16), 0.5).add_(0.01 * torch.randn(256, 16)).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    first = None
    for i in range(200):
        loss = rdmreg(z, num_slices=64, generator=torch.Generator().manual_seed(i), seed=i)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 5, (first, loss.item())
