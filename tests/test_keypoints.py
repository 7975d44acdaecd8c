"""Scene keypoints: fit without labels, they find what proprioception does not explain; a keypoint model's state
token carries them beside proprioception, read from the frames, in training and in planning alike."""
import torch

from worldmodel.models.keypoints import KeypointConfig, fit_keypoints, grid_centres, keypoints_of


def scene(n: int, g: int = 8, d: int = 16, seed: int = 0):
    """Latents (n, g*g, d) of two blobs on a grid: a 'body' (its position given as proprioception) and an
    'object' (position unknown to the fit), each a fixed feature vector spread over the nearby cells."""
    gen = torch.Generator().manual_seed(seed)
    centres = grid_centres(g, g)  # (N0, 2)
    body, obj = torch.rand(n, 2, generator=gen) * 1.6 - 0.8, torch.rand(n, 2, generator=gen) * 1.6 - 0.8
    u, v = torch.randn(2, d, generator=gen)

    def blob(p):  # (n, 2) -> (n, N0, 1) weights of a Gaussian around p
        return torch.exp(-((centres[None] - p[:, None]) ** 2).sum(-1) / (2 * 0.15 ** 2))[..., None]

    z = blob(body) * u + blob(obj) * v + 0.05 * torch.randn(n, g * g, d, generator=gen)
    return z, body, obj


def test_keypoints_find_the_object_the_proprioception_does_not_explain():
    z, body, obj = scene(2048)
    kp, loss = fit_keypoints(z, (body - body.mean(0)) / body.std(0), 8, 8, KeypointConfig(num=1, steps=600),
                             progress=False)
    zt, bt, ot = scene(512, seed=1)
    k = keypoints_of(kp, zt)  # (512, 2)
    corr = [torch.corrcoef(torch.stack((k[:, a], ot[:, a])))[0, 1].item() for a in (0, 1)]
    corr_body = [torch.corrcoef(torch.stack((k[:, a], bt[:, a])))[0, 1].item() for a in (0, 1)]
    assert min(corr) > 0.9, (corr, corr_body)  # the object, found without its position
    assert max(abs(c) for c in corr_body) < 0.3, corr_body  # not the body, which proprioception explains
    assert not any(p.requires_grad for p in kp.parameters())
