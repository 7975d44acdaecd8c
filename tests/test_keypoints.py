"""Scene keypoints: fit without labels, they carry where things are; a keypoint model's state token carries them
beside proprioception, read from the frames, in training and planning alike."""
import numpy as np
import pytest
import torch
from helpers import run_json

from worldmodel.data.episodes import load_episode
from worldmodel.models.keypoints import KeypointConfig, SceneKeypoints, fit_keypoints, grid_centres, keypoints_of
from worldmodel.models.world_model import LatentWorldModel
from worldmodel.train.latent_cache import load_latents


def scene(n: int, seed: int = 0, g: int = 8, d: int = 32, width: float = 0.35):
    """Latents (n, g*g, d) of two things on a patch grid: a 'body' (its position is the proprioception) and an
    'object' (its position unknown to the fit), each a feature in a few channels spread over nearby patches (as an
    encoder's patch features carry an object's presence into its neighbours), and noise in every channel."""
    gen = torch.Generator().manual_seed(seed)
    centres = grid_centres(g, g)  # (N0, 2)
    body, obj = torch.rand(n, 2, generator=gen) * 1.6 - 0.8, torch.rand(n, 2, generator=gen) * 1.6 - 0.8
    u, v = torch.zeros(2, d)
    u[:4], v[4:8] = 1.0, 1.0

    def blob(p):  # (n, 2) -> (n, N0, 1) weights of a Gaussian around p
        return torch.exp(-((centres[None] - p[:, None]) ** 2).sum(-1) / (2 * width ** 2))[..., None]

    return blob(body) * u + blob(obj) * v + 0.5 * torch.randn(n, g * g, d, generator=gen), body, obj


def readout_r2(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Held-out R^2 of a least-squares linear map x -> y."""
    X, Xt = (torch.cat((a, torch.ones(len(a), 1)), 1) for a in (x, x_test))
    W = torch.linalg.lstsq(X, y).solution
    return 1 - ((Xt @ W - y_test) ** 2).sum().item() / ((y_test - y_test.mean(0)) ** 2).sum().item()


def test_keypoints_fit_without_labels_carry_the_object():
    z, body, obj = scene(2048)
    kp, _ = fit_keypoints(z, (body - body.mean(0)) / body.std(0), 8, 8, KeypointConfig(num=2, steps=300),
                          progress=False)
    z_test, _, obj_test = scene(512, seed=1)
    r2 = readout_r2(keypoints_of(kp, z), obj, keypoints_of(kp, z_test), obj_test)
    untrained = SceneKeypoints(8, 8, 32, 2)
    untrained.latent_mean.copy_(kp.latent_mean), untrained.latent_std.copy_(kp.latent_std)
    r2_untrained = readout_r2(keypoints_of(untrained, z), obj, keypoints_of(untrained, z_test), obj_test)
    assert r2 > 0.8 and r2_untrained < 0.3, (r2, r2_untrained)  # the object's position, learned without it
    assert not any(p.requires_grad for p in kp.parameters())


@pytest.fixture(scope="module")
def keypoint_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp")
    data = root / "data"
    run_json("collect", ["preset=smoke", "env=pushblock", "resolution=32", "episodes=4", f"out_dir={data}"])
    s = run_json("train-ac", ["preset=smoke", f"dataset={data}", f"out_dir={root / 'ac'}", "keypoints.num=2",
                                 "keypoints.steps=20"])
    return root, data, s


def test_planning_reads_the_keypoints_training_saw(keypoint_model):
    root, data, s = keypoint_model
    assert s["scene_keypoints"] == 2 and s["keypoints_fit_loss"] > 0
    model = LatentWorldModel.load(s["checkpoint"])
    ep = load_episode(data, 0)
    frames, proprio = torch.as_tensor(ep["frames"][:5]), torch.as_tensor(ep["states"][:5, model.state_dims])
    x = model.state_input(frames, proprio)  # (5, 4 + 4): what the planner feeds the state token
    fine = load_latents(data, s["encoder_checkpoint"], 1, progress=False)  # the unpooled latents train-ac fit on
    np.testing.assert_allclose(x[:, :4].numpy(), proprio.numpy())
    np.testing.assert_allclose(x[:, 4:].numpy(), keypoints_of(model.keypoints, fine.latents[0][:5]).numpy(), atol=2e-2)
    out = model.rollout(model.encode(frames), x, torch.zeros(5, 3, model.action_dim_step))
    assert out.states.shape == (5, 3, 4)  # the env dims it predicts; the keypoints stay inside the model


def test_drift_runs_on_a_keypoint_model(keypoint_model, tmp_path):
    _, _, s = keypoint_model
    d = run_json("drift", ["preset=smoke", f"checkpoint={s['checkpoint']}", f"out_dir={tmp_path}"])
    assert np.isfinite(d["probe_error"]).all()


def test_keypoints_need_a_frozen_encoder_and_a_state_token(keypoint_model, tmp_path):
    _, data, s = keypoint_model
    base = ["preset=smoke", f"dataset={data}", f"encoder_checkpoint={s['encoder_checkpoint']}", f"out_dir={tmp_path}"]
    for bad in (["keypoints.num=2", "finetune.blocks=1"], ["keypoints.num=2", "use_state=false"], ["keypoints.num=-1"]):
        with pytest.raises(ValueError, match="keypoints.num"):
            run_json("train-ac", base + bad)
