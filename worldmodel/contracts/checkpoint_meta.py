"""What a checkpoint says about itself, typed: its kind, the command config that wrote it, and (for world models)
what that run resolved — the dataset and its manifest, the episode split, the predictor's config, the encoder.

On disk a checkpoint stays the plain dict of :mod:`worldmodel.utils.checkpoint` (``{"kind", "config", "model",
"extra", ...}``, ``config["resolved"]`` holding the record), so old files keep loading; every reader goes through
:meth:`CheckpointMeta.of` instead of indexing that dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from worldmodel.contracts.manifest import Manifest
from worldmodel.contracts.records import from_dict, to_dict


@dataclass(frozen=True)
class EncoderRecord:
    """The frozen (or fine-tuned) encoder a train-ac checkpoint encodes frames with."""

    config: dict  # the encoder's model config (VideoViTConfig fields, or a timm/vjepa2 description)
    spec: dict | None = None  # EncoderSpec fields: where the weights came from
    digest: str | None = None  # content digest of (config, weights): refuses a changed encoder file
    describe: str = ""  # one line for people
    embedded: bool = False  # the checkpoint carries the weights itself (extra["encoder"])
    finetuned: bool = False  # trained with the predictor: its weights are the model's encoder.* entries


@dataclass(frozen=True)
class PredictorRecord:
    """``config["resolved"]`` of a train-ac or train-pixel checkpoint."""

    dataset: str  # the episode folder it was trained on
    model: dict  # ACPredictorConfig fields
    manifest: Manifest  # that dataset's manifest at training time
    train_episodes: list[int] = field(default_factory=list)
    val_episodes: list[int] = field(default_factory=list)  # held out: planning goals are drawn from these
    state_dims: list[int] | None = None  # env state dims the state token carries
    encoder_checkpoint: str = ""  # train-ac: the pretrained encoder's file
    encoder: EncoderRecord | None = None  # train-ac
    keypoints: dict | None = None  # train-ac with scene keypoints: SceneKeypoints config
    latent_checkpoint: str = ""  # train-pixel: the latent model whose budget it matched
    patch_size: int | None = None  # train-pixel: pixel patch side
    img_size: int | None = None  # train-pixel: frames resized to this side
    frame_size: int | None = None  # train-pixel: the dataset's frame side
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointMeta:
    """A checkpoint's self-description."""

    kind: str  # pretrain | train_ac | train_pixel
    config: dict  # the command config that wrote it (as saved; without ``resolved``)
    resolved: PredictorRecord | None = None  # world models only

    @classmethod
    def of(cls, ckpt: dict, where: str = "checkpoint") -> "CheckpointMeta":
        """The metadata of a loaded checkpoint dict (ValueError naming ``where`` and the field when malformed)."""
        config = dict(ckpt.get("config") or {})
        resolved = config.pop("resolved", None)
        record = from_dict(PredictorRecord, resolved, f"{where}: config.resolved") if resolved else None
        return cls(kind=str(ckpt.get("kind") or ""), config=config, resolved=record)

    def to_config(self) -> dict:
        """The ``config`` entry to save (the command config with ``resolved`` inside)."""
        return {**self.config, **({"resolved": to_dict(self.resolved)} if self.resolved else {})}

    def expect(self, kind: str, where: str) -> "CheckpointMeta":
        """Self, or ValueError when the checkpoint is another kind."""
        if self.kind != kind:
            raise ValueError(f"checkpoint {where}: kind is {self.kind!r}, expected {kind!r}")
        return self

    def record(self, where: str) -> PredictorRecord:
        """The world-model record, or ValueError when this checkpoint has none."""
        if self.resolved is None:
            raise ValueError(f"checkpoint {where}: no config.resolved (not a train-ac / train-pixel checkpoint)")
        return self.resolved

    @property
    def frame_skip(self) -> int:
        """Env steps per model step (1 when the config does not say)."""
        return int(self.config.get("frame_skip") or 1)

    @property
    def dataset(self) -> str:
        """The training dataset ('' when none is recorded)."""
        return str((self.resolved.dataset if self.resolved else "") or self.config.get("dataset") or "")

    @property
    def val_episodes(self) -> list[int]:
        """Held-out episode ids ([] when none are recorded)."""
        return [int(i) for i in self.resolved.val_episodes] if self.resolved else []

    @property
    def split(self) -> tuple[float, int]:
        """(val_fraction, split_seed) of a train-ac / train-pixel run: drift and compare redo its split."""
        return float(self.config.get("val_fraction") or 0.0), int(self.config.get("split_seed") or 0)

    @property
    def model_config(self) -> dict | None:
        """A pretrain checkpoint's encoder config (``config.model``), None when absent."""
        return self.config.get("model") or None

    @property
    def finetuned(self) -> bool:
        """Whether a train-ac checkpoint's encoder was trained with its predictor."""
        return bool(self.resolved and self.resolved.encoder and self.resolved.encoder.finetuned)
