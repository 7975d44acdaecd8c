"""Trainer core under DDP on CPU (gloo): ranks see different data yet stay in sync."""
import os
import socket

import torch
import torch.multiprocessing as mp
from torch import nn

from worldmodel.train.core import OptimConfig, TrainConfig, Trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str, result_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = TrainConfig(steps=5, batch_size=4, ckpt_every=0, progress=False, device="cpu",
                      optim=OptimConfig(lr=1e-2, warmup_steps=0))
    trainer = Trainer(cfg, out_dir, model=nn.Linear(3, 1), config={}, kind="toy")
    for step in trainer.steps():
        x = torch.randn(4, 3, generator=trainer.generator_for(step))  # differs per rank
        trainer.backward_step(((trainer.model(x) - x.sum(1, keepdim=True)) ** 2).mean())
    trainer.save_checkpoint()
    torch.save(trainer.raw_model.state_dict(), os.path.join(result_dir, f"rank{rank}.pt"))
    trainer.close()


def test_ddp_gloo_keeps_ranks_in_sync(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    torch.testing.assert_close(a["weight"], b["weight"])
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
