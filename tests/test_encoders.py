"""Bring your own encoder: V-JEPA 2 checkpoints and timm backbones behind the frame-encoder interface."""
from pathlib import Path

import pytest
import timm
import torch
from helpers import run_json

from worldmodel.cli import main
from worldmodel.models.encoders import EncoderSpec, build_frame_encoder, parse_spec, read_encoder
from worldmodel.models.timm_encoder import TimmFrameEncoder
from worldmodel.models.video_vit import VideoViT, VideoViTConfig
from worldmodel.models.vjepa2 import convert_state, load_vjepa2

FIXTURE = Path(__file__).parent / "data" / "vjepa2_tiny.pt"  # made by their code, see its "made_by" entry


def vjepa2_file(tmp_path) -> Path:
    blob = torch.load(FIXTURE, weights_only=True)
    path = tmp_path / "vjepa2.pt"
    torch.save(blob["checkpoint"], path)
    return path


def test_vjepa2_conversion_matches_their_tokens(tmp_path):
    """A tiny encoder built and run by facebookresearch/vjepa2's own code (random weights, stored with its
    outputs): converted by key mapping, our VideoViT gives the same patch tokens, for clips and single frames."""
    blob = torch.load(FIXTURE, weights_only=True)
    cfg, state = load_vjepa2(vjepa2_file(tmp_path), heads=1)  # 64 wide, 1 head: not a released width
    assert cfg["rope_style"] == "vjepa2" and cfg["depth"] == 2 and cfg["tubelet_size"] == 2
    model = VideoViT(VideoViTConfig(**cfg)).eval()
    model.load_state_dict(state)  # strict: every key maps and every weight is used
    with torch.no_grad():
        tokens = model(blob["clip"])
        frame = model(blob["clip"][:, :, :1].expand(-1, -1, 2, -1, -1))
    assert (tokens - blob["tokens"]).abs().max() < 1e-5
    assert (frame - blob["frame_tokens"]).abs().max() < 1e-5
    ours = VideoViT(VideoViTConfig(**{**cfg, "rope_style": "worldmodel"})).eval()  # our RoPE layout differs
    ours.load_state_dict(state)
    with torch.no_grad():
        assert (ours(blob["clip"]) - blob["tokens"]).abs().max() > 1e-3


def test_vjepa2_key_mapping_refuses_what_does_not_fit():
    blob = torch.load(FIXTURE, weights_only=True)
    state = blob["checkpoint"]["encoder"]
    cfg, ours = convert_state(state, heads=1)
    assert set(ours) == set(VideoViT(VideoViTConfig(**cfg)).state_dict())  # nothing missing, nothing left over
    with pytest.raises(ValueError, match="'mask_token'"):
        convert_state({**state, "module.backbone.mask_token": torch.zeros(1)}, heads=1)
    with pytest.raises(ValueError, match="pos_embed"):
        convert_state({**state, "module.backbone.pos_embed": torch.zeros(1, 32, 64)}, heads=1)
    with pytest.raises(ValueError, match="head count"):
        convert_state(_widen(state, 72))


def _widen(state: dict, width: int) -> dict:
    """The state with a patch embedding of another width (no head count is known for it)."""
    out = dict(state)
    w = out["module.backbone.patch_embed.proj.weight"]
    out["module.backbone.patch_embed.proj.weight"] = torch.zeros(width, *w.shape[1:])
    return out


def timm_weights(tmp_path, name="vit_tiny_patch16_224", **kw) -> Path:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=0, img_size=32, **kw)
    path = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("reg_tokens", [0, 4])
def test_timm_tokens_are_forward_features_without_prefix(tmp_path, reg_tokens):
    path = timm_weights(tmp_path, reg_tokens=reg_tokens)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32,
                            reg_tokens=reg_tokens).eval()
    ref.load_state_dict(torch.load(path, weights_only=True))
    enc = TimmFrameEncoder("vit_tiny_patch16_224", 32, path, {"reg_tokens": reg_tokens})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = ref.forward_features(x)[:, ref.num_prefix_tokens:]
        got = enc.tokens(x)
    assert ref.num_prefix_tokens == 1 + reg_tokens and got.shape == (2, 4, 192)
    assert torch.equal(got, want)


def test_timm_encode_images_resizes_and_normalizes(tmp_path):
    enc = TimmFrameEncoder("vit_tiny_patch16_224", 32, timm_weights(tmp_path))
    frames = torch.randint(0, 256, (3, 48, 48, 3), dtype=torch.uint8)
    x = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float() / 255, size=(32, 32), mode="bilinear",
                                        align_corners=False, antialias=True)
    want = enc.tokens((x - enc.mean) / enc.std)
    assert enc.patch_grid(48, 48) == (2, 2) and torch.allclose(enc.encode_images(frames), want)
    weights = str(tmp_path / "vit_tiny_patch16_224.pth")
    config, state = read_encoder(parse_spec("timm:vit_tiny_patch16_224", weights=weights,
                                            img_size=32))
    rebuilt = build_frame_encoder(config, state, "test")
    assert torch.equal(rebuilt.encode_images(frames), enc.encode_images(frames))


def test_bad_encoder_specs():
    with pytest.raises(ValueError, match="expected worldmodel"):
        parse_spec("dino:v2")
    with pytest.raises(ValueError, match="encoder_weights"):
        parse_spec("timm:vit_tiny_patch16_224")
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        parse_spec("vjepa2:/nowhere.pt")
    assert parse_spec("", checkpoint=str(FIXTURE)).kind == "worldmodel"
    assert EncoderSpec("timm", "x", weights="w.pth").file == "w.pth"


SMOKE_PLAN = ["plan", "preset=smoke", "bootstrap=false", "gifs=0"]


@pytest.mark.parametrize("kind", ["timm", "vjepa2"])
def test_train_and_plan_end_to_end(tmp_path, kind):
    """wm train-ac with a foreign encoder, then wm plan, at the smoke preset; the checkpoint names its encoder."""
    if kind == "timm":
        enc = ["encoder=timm:vit_tiny_patch16_224", f"encoder_weights={timm_weights(tmp_path)}", "encoder_img_size=32"]
    else:
        enc = [f"encoder=vjepa2:{vjepa2_file(tmp_path)}", "encoder_img_size=32", "encoder_heads=1"]
    s = run_json("train-ac", ["preset=smoke", f"out_dir={tmp_path / 'ac'}", *enc])
    assert s["encoder"].startswith(f"{kind}:") and s["tokens_per_frame"] == (1 if kind == "timm" else 4)
    p = run_json("plan", SMOKE_PLAN[1:] + [f"checkpoint={s['checkpoint']}", f"out_dir={tmp_path / 'plan'}"])
    assert p["episodes"] == 2 and 0.0 <= p["success_rate"] <= 1.0
    d = run_json("drift", ["preset=smoke", "bootstrap=false", f"checkpoint={s['checkpoint']}",
                              f"out_dir={tmp_path / 'drift'}"])
    assert len(d["probe_error"]) == len(d["horizons"]) > 0 and d["ratio_to_copy_last"] > 0


def test_plan_refuses_a_changed_encoder(tmp_path, capsys):
    weights = timm_weights(tmp_path)
    s = run_json("train-ac", ["preset=smoke", f"out_dir={tmp_path / 'ac'}", "encoder=timm:vit_tiny_patch16_224",
                                 f"encoder_weights={weights}", "encoder_img_size=32", "embed_encoder=false"])
    other = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32)
    torch.save(other.state_dict(), weights)  # same file, other weights
    code = main(SMOKE_PLAN + [f"checkpoint={s['checkpoint']}", f"out_dir={tmp_path / 'plan'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "changed" in err and "timm:vit_tiny_patch16_224" in err
