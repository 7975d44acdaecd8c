"""The latent world model used by drift and planning: frozen encoder + action-conditioned predictor.

Frame encoding convention (observations AND goals, everywhere): a uint8 RGB frame (H, W, 3) is encoded on its own
by the frozen encoder's ``encode_images`` (:mod:`worldmodel.models.encoders`; ours: ImageNet normalization, the
frame repeated to fill one tubelet, final LayerNorm without affine), then its patch tokens are average-pooled
``pool x pool`` and layer-normed again (:func:`~worldmodel.models.ac_predictor.pool_latents`). The latent
cache used for training applies the very same function, so training, drift and planning see identical latents.

Time step: one predictor step spans ``frame_skip`` env steps; its action is the time-ordered stack of those
env actions, ``action_dim_step = frame_skip * env_action_dim``. ``action_low``/``action_high`` are the env's
per-step bounds (A,) from the dataset manifest recorded in the checkpoint.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from worldmodel.contracts.checkpoint_meta import CheckpointMeta, EncoderRecord
from worldmodel.contracts.manifest import Manifest
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig, pool_latents
from worldmodel.models.encoders import EncoderSpec, build_frame_encoder, read_encoder
from worldmodel.models.keypoints import SceneKeypoints, load_keypoints
from worldmodel.models.protocol import Rollout
from worldmodel.utils.checkpoint import content_digest, load_checkpoint, load_weights


def pool_tokens(encoder, tokens: torch.Tensor, height: int, width: int, pool: int) -> torch.Tensor:
    """Encoder tokens (B, h*w, D) of height x width frames -> the model's latents (B, N, D) (the convention above)."""
    gh, gw = encoder.patch_grid(height, width)
    return pool_latents(tokens.float(), gh, gw, pool)


@torch.no_grad()
def encode_observations(encoder, frames: torch.Tensor, pool: int) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) -> pooled, layer-normed latents (B, N, D) (the convention above); ``encoder``
    follows the frame-encoder interface of :mod:`worldmodel.models.encoders`."""
    return pool_tokens(encoder, encoder.encode_images(frames), frames.shape[1], frames.shape[2], pool)


ENCODER_PREFIX, PREDICTOR_PREFIX = "encoder.", "predictor."


def split_state(state: dict) -> tuple[dict, dict]:
    """A fine-tuned train-ac checkpoint's ``model`` state -> (encoder state, predictor state)."""
    enc = {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    pred = {k[len(PREDICTOR_PREFIX):]: v for k, v in state.items() if k.startswith(PREDICTOR_PREFIX)}
    return enc, pred


def load_frozen_encoder(ckpt: dict, checkpoint: str | Path, device: torch.device):
    """The encoder a train-ac checkpoint was trained on: its own copy (``extra["encoder"]``) when it carries one,
    else the file its encoder spec names, refused when those weights' digest differs from the one recorded."""
    record = CheckpointMeta.of(ckpt, str(checkpoint)).record(str(checkpoint))
    info = record.encoder or EncoderRecord(config={})
    if info.finetuned:  # trained with the predictor: its weights are the model's encoder.* entries
        return build_frame_encoder(info.config, split_state(ckpt["model"])[0], checkpoint, device)
    if "encoder" in (ckpt.get("extra") or {}):
        return build_frame_encoder(info.config, ckpt["extra"]["encoder"], checkpoint, device)
    spec = EncoderSpec(**(info.spec or {"kind": "worldmodel", "target": record.encoder_checkpoint}))
    if not Path(spec.file).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint}: its encoder weights {spec.file} are missing "
                                f"(train with embed_encoder=true to carry the encoder inside the checkpoint)")
    config, state = read_encoder(spec)
    digest = content_digest([config, state])
    if info.digest and digest != info.digest:
        raise ValueError(f"checkpoint {checkpoint}: the encoder {spec.label} it was trained on changed "
                         f"(weights digest {digest[:12]}, recorded {info.digest[:12]}); retrain or restore it")
    return build_frame_encoder(config, state, spec.label, device)


def encoder_identity(ckpt: dict, checkpoint: str | Path) -> tuple[str, str | None]:
    """(file, digest) naming the encoder a train-ac checkpoint encodes frames with, the key of its latent cache:
    the pretrained encoder's file and recorded weights digest, or, for an encoder fine-tuned with the predictor,
    the checkpoint itself and the digest of the fine-tuned weights it holds."""
    record = CheckpointMeta.of(ckpt, str(checkpoint)).record(str(checkpoint))
    if record.encoder and record.encoder.finetuned:
        return str(checkpoint), content_digest([record.encoder.config, split_state(ckpt["model"])[0]])
    return record.encoder_checkpoint, record.encoder.digest if record.encoder else None


class PredictorWorldModel(nn.Module):
    """The part every predictor-based world model shares: the AC predictor, its time step and action bounds,
    the training dataset's manifest, and the cached ``rollout`` (world-model protocol,
    :mod:`worldmodel.models.protocol`). Subclasses say what a latent is (``encode``)."""

    def __init__(self, predictor: ACPredictor, frame_skip: int, action_low, action_high,
                 manifest: Manifest | None = None,
                 state_dims: list[int] | None = None, scene_dim: int = 0):
        super().__init__()
        self.predictor = predictor
        self.frame_skip = int(frame_skip)
        self.manifest = manifest  # the training dataset's (None for a model built without one)
        self.scene_dim = int(scene_dim)  # state-token values read from the frame itself (scene keypoints)
        # env state dims the state token carries (proprioception unless trained as an oracle)
        n_env = predictor.cfg.state_dim - self.scene_dim
        self.state_dims = list(range(n_env)) if state_dims is None else [int(d) for d in state_dims]
        if len(self.state_dims) != n_env:
            raise ValueError(f"state_dims {self.state_dims} and {self.scene_dim} scene values do not match the "
                             f"predictor's state_dim {predictor.cfg.state_dim}")
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32).flatten())
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32).flatten())
        self.env_id = manifest.env_id if manifest else None

    @property
    def device(self) -> torch.device:
        return self.predictor.action_low.device

    @property
    def action_dim(self) -> int:
        """Env action size A."""
        return self.action_low.numel()

    @property
    def action_dim_step(self) -> int:
        """Predictor action size per step = frame_skip * A."""
        return self.predictor.cfg.action_dim

    @property
    def state_dim(self) -> int:
        return self.predictor.cfg.state_dim

    @property
    def uses_state(self) -> bool:
        return self.state_dim > 0

    @property
    def tokens_per_frame(self) -> int:
        return self.predictor.num_patches

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> latents (B, N, D), on the model's device."""
        raise NotImplementedError

    def state_input(self, frames: torch.Tensor, states: torch.Tensor | None,
                    z_fine: torch.Tensor | None = None) -> torch.Tensor | None:
        """The state token's input for observed frames (B, H, W, 3) and their ``state_dims`` (B, len(state_dims)):
        those states (plus, for a model with scene keypoints, the keypoints read from the frames, or from their
        unpooled latents ``z_fine`` when already encoded); None when the model has no state token."""
        if not self.uses_state:
            return None
        return torch.as_tensor(states, dtype=torch.float32, device=self.device)

    def encode_observation(self, frames: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
        """Latents of observed frames (B, H, W, 3) -> (B, N, D); learned models read the frames only."""
        return self.encode(frames)

    def rollout(self, z0: torch.Tensor, state0: torch.Tensor | None, actions: torch.Tensor,
                use_cache: bool = True) -> Rollout:
        """Predict latents (and states) of the next H frames.

        Args:
            z0: (B, N, D) latent of the current frame.
            state0: (B, S) the state token's input (``state_input``), None when the model has no state token.
            actions: (B, H, action_dim_step) actions, each the stack of ``frame_skip`` env actions.
        Returns:
            Rollout(latents (B, H, N, D), states (B, H, len(state_dims)) or None: the predicted env state dims,
            without the model's own scene values).
        Gradients flow to ``actions`` if they require grad (weights are frozen after ``load``).
        """
        if z0.dim() != 3:
            raise ValueError(f"rollout takes one context frame z0 (B, N, D), got shape {tuple(z0.shape)}")
        s = None
        if self.uses_state:
            if state0 is None:
                raise ValueError("this world model uses a state token: pass state0 (B, S)")
            s = state0.to(self.device, torch.float32)[:, None]  # (B, 1, S)
        actions = actions.to(self.device, torch.float32)
        z_pred, s_pred = self.predictor.rollout(z0[:, None].to(self.device), actions, s, use_cache=use_cache)
        return Rollout(z_pred, None if s_pred is None else s_pred[..., :len(self.state_dims)])


class LatentWorldModel(PredictorWorldModel):
    """World-model protocol on a frozen encoder's latents: ``encode`` frames with the encoder (the convention
    above), ``rollout`` them with the AC predictor.

    Planning calls ``rollout`` with batch = episodes x samples; every op is batched (the only loop is over
    the horizon, using the predictor's key/value cache).
    """

    def __init__(self, encoder: nn.Module, predictor: ACPredictor, pool: int, frame_skip: int,
                 action_low, action_high, manifest: dict | None = None, state_dims: list[int] | None = None,
                 keypoints: SceneKeypoints | None = None):
        super().__init__(predictor, frame_skip, action_low, action_high, manifest, state_dims,
                         2 * keypoints.num if keypoints is not None else 0)
        self.encoder, self.pool, self.keypoints = encoder, int(pool), keypoints

    def state_input(self, frames: torch.Tensor, states: torch.Tensor | None,
                    z_fine: torch.Tensor | None = None) -> torch.Tensor | None:
        """Observed state dims (B, len(state_dims)), plus the scene keypoints (B, 2K) of frames (B, H, W, 3)
        (read from ``z_fine`` (B, N0, D), the frames' unpooled latents, when given: no second encoding)."""
        s = super().state_input(frames, states)
        if self.keypoints is None or s is None:
            return s
        z_fine = self.encode_fine(frames) if z_fine is None else z_fine.to(self.device)
        return torch.cat((s, self.keypoints(z_fine)), 1)  # (B, len(state_dims) + 2K)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> latents (B, N, D), on the model's device."""
        return encode_observations(self.encoder, torch.as_tensor(frames), self.pool)

    def encode_fine(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> unpooled encoder latents (B, h*w, D) (planning's goal-state probe)."""
        return encode_observations(self.encoder, torch.as_tensor(frames), 1)

    def pool_fine(self, z_fine: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Unpooled latents (B, h*w, D) of height x width frames -> the model's latents (B, N, D) (= ``encode``)."""
        return pool_tokens(self.encoder, z_fine, height, width, self.pool)

    @classmethod
    def load(cls, checkpoint: str | Path, device: str | torch.device = "cpu") -> "LatentWorldModel":
        """Rebuild encoder + predictor from a ``wm train-ac`` checkpoint (eval mode, frozen)."""
        ckpt = load_checkpoint(checkpoint, map_location="cpu")
        meta = CheckpointMeta.of(ckpt, str(checkpoint)).expect("train_ac", str(checkpoint))
        record = meta.record(str(checkpoint))
        device = torch.device(device)
        encoder = load_frozen_encoder(ckpt, checkpoint, device)
        predictor = ACPredictor(ACPredictorConfig(**record.model))
        load_weights(predictor, split_state(ckpt["model"])[1] if meta.finetuned else ckpt["model"], checkpoint,
                     "predictor")
        predictor.to(device).eval().requires_grad_(False)
        manifest = record.manifest
        kp = load_keypoints({"config": record.keypoints, "state": ckpt["extra"]["keypoints"]}) \
            if record.keypoints else None
        wm = cls(encoder, predictor, pool=predictor.cfg.pool, frame_skip=meta.frame_skip,
                 action_low=manifest.action_low, action_high=manifest.action_high, manifest=manifest,
                 state_dims=record.state_dims, keypoints=kp)
        return wm.to(device).eval()
