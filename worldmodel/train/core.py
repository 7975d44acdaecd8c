"""The trainer core every training loop shares.

It owns what is the same for every objective: devices and DDP (gloo on CPU, NCCL on GPU under torchrun),
AdamW with weight decay on matrices only, warmup + cosine or warmup-stable-decay schedules, gradient clipping,
bf16 autocast on CUDA, atomic checkpoints with exact resume (step, optimizer, schedule, extra modules such as
an EMA target, RNG), JSONL metrics (also to TensorBoard or W&B: ``train.logger``), tqdm progress, a hard stop on a
non-finite loss that leaves the last good checkpoint in place, and preemption: after a SIGTERM/SIGUSR1 (on any rank)
every rank stops after the step in flight, rank 0 checkpoints it, and :class:`~worldmodel.utils.preempt.Preempted` is
raised; a run that was preempted, or that torchrun restarted (``--max-restarts``), resumes from its checkpoint
whatever ``train.resume`` says. The loop itself stays in the objective's module::

    trainer = Trainer(cfg.train, out_dir, model=model, config=to_dict(cfg), kind="pretrain")
    for step in trainer.steps():
        with trainer.autocast():
            loss = objective(trainer.model, batch)
        trainer.backward_step(loss)
        trainer.log(step, {"loss/pred": loss.item()})
        trainer.maybe_checkpoint(step)
    trainer.save_checkpoint()
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from worldmodel.contracts.checkpoint_meta import CheckpointMeta
from worldmodel.train.loggers import Logger, make_logger
from worldmodel.utils import preempt
from worldmodel.utils.atomic import write_text
from worldmodel.utils.checkpoint import (
    changed_fields,
    check_matches,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from worldmodel.utils.device import resolve_device

CHECKPOINT_NAME = "checkpoint.pt"


class NonFiniteLossError(RuntimeError):
    """Raised when the loss becomes NaN or infinite; the last good checkpoint is left untouched."""


# settings a resumed run may change (how it runs, not what it trains); any other difference is refused
RESUMABLE = ("out_dir", "train.steps", "train.resume", "train.device", "train.threads", "train.num_workers",
             "train.progress", "train.log_every", "train.ckpt_every", "train.logger", "device", "threads",
             "progress")


class Schedule(StrEnum):
    """Learning-rate schedule."""
    cosine = "cosine"
    wsd = "wsd"
    constant = "constant"


@dataclass
class OptimConfig:
    lr: float = 1e-3  # peak learning rate after warmup
    min_lr: float = 1e-5  # learning rate at the end of the decay
    weight_decay: float = 0.05  # AdamW decay, applied to weight matrices only (dim >= 2)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    warmup_steps: int = 100  # linear warmup length in steps
    schedule: Schedule = Schedule.cosine  # cosine | wsd (warmup-stable-decay) | constant
    decay_fraction: float = 0.2  # wsd: final fraction of steps spent decaying to min_lr
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping


@dataclass
class TrainConfig:
    steps: int = 1000  # total optimizer steps
    batch_size: int = 8  # per-rank batch size
    log_every: int = 10  # steps between metric lines (metrics.jsonl, progress bar)
    ckpt_every: int = 200  # steps between atomic checkpoints (0: only the final one)
    seed: int = 0  # base seed; data sampling uses (seed, rank, step) for exact resume
    resume: bool = False  # continue from out_dir/checkpoint.pt when it exists (always after a preemption)
    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:1 ...
    amp: bool = True  # bf16 autocast when running on CUDA (ignored on CPU)
    logger: Logger = Logger.none  # metrics.jsonl's scalars also go to none | tensorboard (out_dir/tb) | wandb (offline)
    num_workers: int = 0  # data-loader worker processes
    threads: int = 0  # torch CPU threads per rank (0: leave torch's default)
    progress: bool = True  # show a tqdm progress bar on rank 0
    optim: OptimConfig = field(default_factory=OptimConfig)


def lr_at(step: int, total: int, cfg: OptimConfig) -> float:
    """Learning rate at ``step`` for the configured warmup + schedule."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    if cfg.schedule == "wsd":
        decay_start = int(total * (1 - cfg.decay_fraction))
        if step < decay_start:
            return cfg.lr
        progress = (step - decay_start) / max(1, total - decay_start)
        return cfg.lr + (cfg.min_lr - cfg.lr) * min(1.0, progress)
    raise ValueError(f"train.optim.schedule is {cfg.schedule!r}; expected one of {[s.value for s in Schedule]}")


def build_optimizer(model: nn.Module, cfg: OptimConfig, fused: bool = False,
                    lr_scales: dict[str, float] | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (``p.dim() >= 2``) only, not on norms, biases or tokens of dim < 2.
    ``lr_scales`` maps a parameter-name prefix (``"encoder."``) to a factor on the schedule's learning rate for
    those parameters (each group carries its ``lr_scale``; the trainer applies it at every step)."""
    scales = dict(lr_scales or {})
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = next((f for prefix, f in scales.items() if name.startswith(prefix)), 1.0)
            groups.setdefault((scale, p.dim() >= 2), []).append(p)
    param_groups = [{"params": ps, "weight_decay": cfg.weight_decay if decay else 0.0, "lr_scale": scale}
                    for (scale, decay), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))]
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused or None)


class Trainer:
    """Shared training machinery; see the module docstring for the loop it serves."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, model: nn.Module, config: dict, kind: str,
                 extra: dict[str, nn.Module] | None = None, find_unused_parameters: bool = False,
                 lr_scales: dict[str, float] | None = None):
        self.cfg, self.kind, self.config = cfg, kind, config
        for name, low in (("steps", 0), ("batch_size", 1)):  # steps=0 saves the initial weights (random init)
            if getattr(cfg, name) < low:
                raise ValueError(f"train.{name}={getattr(cfg, name)}; expected an integer >= {low}")
        self.out_dir = Path(out_dir)
        self.ckpt_path = self.out_dir / CHECKPOINT_NAME
        self.rank, self.world_size, local_rank = _init_distributed(cfg.device)
        self.is_main = self.rank == 0
        self.device = resolve_device(cfg.device, local_rank)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.raw_model = model.to(self.device)
        self.extra = {k: m.to(self.device) for k, m in (extra or {}).items()}
        self.model: nn.Module = self.raw_model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(
                self.raw_model, device_ids=ids, find_unused_parameters=find_unused_parameters)
        self.optimizer = build_optimizer(self.raw_model, cfg.optim, fused=self.device.type == "cuda",
                                         lr_scales=lr_scales)
        self.start_step = 0
        self.history: list[dict] = []  # logged metric rows (with those of the run resumed from)
        self._step = 0
        self._resume_rng: dict | None = None
        self._t0 = time.time()
        self._logger = None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.forced_resume = not cfg.resume and preempt.resuming(self.out_dir)  # preempted, or restarted by torchrun
        if (cfg.resume or self.forced_resume) and self.ckpt_path.is_file():
            self._restore(load_checkpoint(self.ckpt_path, map_location=self.device))
        elif self.is_main:
            (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)
        if self.is_main:
            self._logger = make_logger(cfg.logger, self.out_dir, config, kind)

    # ---- the loop -------------------------------------------------------------------------------------
    def steps(self):
        """Yield step indices ``start_step .. cfg.steps-1`` (a tqdm bar on rank 0), setting the lr of each."""
        bar = tqdm(range(self.start_step, self.cfg.steps), initial=self.start_step, total=self.cfg.steps,
                   desc=self.kind, disable=not (self.is_main and self.cfg.progress), dynamic_ncols=True)
        self._bar = bar
        if self._resume_rng is not None:  # the RNG as it was when the checkpoint was written
            set_rng_state(self._resume_rng, self.device)
            self._resume_rng = None
        for step in bar:
            if step == self.start_step and self.stop_requested():  # stopped during set-up: nothing new to save
                bar.close()
                raise preempt.Preempted(f"{self.kind}: stopped on {self._signal()} before step {step} "
                                        f"of {self.cfg.steps}")
            self._step = step
            lr = self.lr_at(step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            yield step
            if step + 1 < self.cfg.steps and self.stop_requested():  # the step in flight is done: keep it
                bar.close()
                path = self.save_checkpoint(step + 1)
                self._close_logger()  # flushed now: the process ends after this exception
                raise preempt.Preempted(f"{self.kind}: stopped on {self._signal()} after step {step + 1} of "
                                        f"{self.cfg.steps}; checkpoint {path}")
        bar.close()

    def stop_requested(self) -> bool:
        """Whether any rank received SIGTERM/SIGUSR1 (all ranks agree, so they stop at the same step)."""
        if self.world_size == 1:
            return preempt.requested() is not None
        flag = torch.tensor([float(preempt.requested() is not None)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _signal(self) -> str:
        return preempt.requested() or "a stop signal (another rank's)"

    def lr_at(self, step: int) -> float:
        return lr_at(step, self.cfg.steps, self.cfg.optim)

    def autocast(self):
        """bf16 autocast on CUDA when ``amp`` is on; a no-op context on CPU."""
        if self.cfg.amp and self.device.type == "cuda":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def backward_step(self, loss: torch.Tensor) -> float:
        """Backward, clip, optimizer step. Returns the gradient norm (before clipping).

        A NaN/inf loss on any rank stops every rank with :class:`NonFiniteLossError` before the weights change.
        """
        finite = torch.isfinite(loss.detach()).float()
        if self.world_size > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() < 1:
            kept = f"last good checkpoint kept at {self.ckpt_path}" if self.ckpt_path.is_file() else "no checkpoint yet"
            raise NonFiniteLossError(f"{self.kind}: loss is {loss.item()} at step {self._step}; stopping ({kept}); "
                                     f"a lower train.optim.lr or train.optim.grad_clip > 0 usually helps")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.raw_model.parameters() if p.grad is not None]
        if self.cfg.optim.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])) if params else torch.zeros(())
        self.optimizer.step()
        return float(norm)

    def log(self, step: int, metrics: dict[str, float], force: bool = False) -> None:
        """Record metrics every ``log_every`` steps (and at the last step) to metrics.jsonl and the bar."""
        last = step == self.cfg.steps - 1
        if not (force or last or step % max(1, self.cfg.log_every) == 0) or not self.is_main:
            return
        row = {"step": step, "lr": self.lr_at(step), "time": round(time.time() - self._t0, 3)}
        row.update({k: float(v) for k, v in metrics.items()})
        self.history.append(row)
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._logger is not None:
            self._logger.log({k: v for k, v in row.items() if k not in ("step", "time")}, step)
        if getattr(self, "_bar", None) is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in list(metrics.items())[:3]}, refresh=False)

    def generator_for(self, step: int) -> torch.Generator:
        """A generator seeded by (seed, rank, step): data drawn from it is identical after a resume."""
        return torch.Generator().manual_seed(hash((self.cfg.seed, self.rank, step)) % 2**62)

    # ---- checkpoints ----------------------------------------------------------------------------------
    def maybe_checkpoint(self, step: int) -> None:
        """Checkpoint after ``step`` completes, every ``ckpt_every`` steps."""
        done = step + 1
        if self.cfg.ckpt_every > 0 and done % self.cfg.ckpt_every == 0 and done < self.cfg.steps:
            self.save_checkpoint(done)

    def save_checkpoint(self, step: int | None = None) -> Path:
        """Write the checkpoint atomically (rank 0) and return its path; ``step`` = completed steps. A run
        resumed from its own final checkpoint leaves that file as it is (it already holds this state)."""
        step = self.cfg.steps if step is None else step
        if self.is_main and not (step == self.start_step > 0 and self.ckpt_path.is_file()):
            save_checkpoint(self.ckpt_path, {
                "kind": self.kind,
                "config": self.config,
                "model": self.raw_model.state_dict(),
                "extra": {k: m.state_dict() for k, m in self.extra.items()},
                "step": step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": {"name": str(self.cfg.optim.schedule), "step": step},  # a plain string: weights_only
                "rng": rng_state(self.device),
            })
        if self.world_size > 1:
            dist.barrier()
        return self.ckpt_path

    def _restore(self, ckpt: dict) -> None:
        saved = CheckpointMeta.of(ckpt, str(self.ckpt_path)).expect(self.kind, str(self.ckpt_path)).to_config()
        hint = ("the run was preempted and resumes: rerun it with its own settings, or delete "
                f"{self.out_dir / preempt.MARKER} to start over" if self.forced_resume else
                "resume continues the same run: use another out_dir, or train.resume=false")
        check_matches(saved, self.config, changed_fields(saved, self.config, RESUMABLE),
                      self.ckpt_path, hint=hint)
        self.raw_model.load_state_dict(ckpt["model"])
        for k, m in self.extra.items():
            m.load_state_dict(ckpt["extra"][k])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.start_step = int(ckpt["step"])
        self._resume_rng = ckpt["rng"]  # restored when the loop starts: data set-up in between draws no matter
        if self.is_main:
            self.history = _truncate_metrics(self.out_dir / "metrics.jsonl", self.start_step)
            print(f"[{self.kind}] resumed from {self.ckpt_path} at step {self.start_step}")

    def _close_logger(self) -> None:
        if self._logger is not None:
            self._logger.close()
            self._logger = None

    def close(self) -> None:
        """Flush writers and leave the process group (call once at the end of a run)."""
        self._close_logger()
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _init_distributed(device: str) -> tuple[int, int, int]:
    """Join the torchrun process group when WORLD_SIZE > 1: NCCL on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        use_cuda = resolve_device(device, local_rank).type == "cuda"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        backend = "nccl" if use_cuda else "gloo"
        if "TORCHELASTIC_RESTART_COUNT" in os.environ:
            dist.init_process_group(backend=backend, store=_attempt_store(rank, world), rank=rank, world_size=world)
        else:
            dist.init_process_group(backend=backend)
    return rank, world, local_rank


def _attempt_store(rank: int, world: int) -> dist.Store:
    """The rendezvous store of this torchrun attempt, under a prefix of its own: a group restarted by
    ``--max-restarts`` reuses the agent's store, and without a prefix the new ranks read the dead ranks'
    addresses and fail to connect (measured: gloo, torch 2.14)."""
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)  # else rank 0 hosts it
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=not agent_hosts and rank == 0, multi_tenant=True)
    return dist.PrefixStore(f"worldmodel/attempt_{os.environ['TORCHELASTIC_RESTART_COUNT']}", store)


def _truncate_metrics(path: Path, start_step: int) -> list[dict]:
    """Drop metric lines logged after the checkpoint we resume from (they will be logged again), and a line
    torn by a kill mid-append; rewritten atomically. Returns the rows kept (the resumed run's history)."""
    if not path.is_file():
        return []
    rows, kept = [], []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the torn last line of a killed run
            continue
        if isinstance(row, dict) and row.get("step", start_step) < start_step:
            rows.append(line)
            kept.append(row)
    write_text(path, "".join(r + "\n" for r in rows))
    return kept
