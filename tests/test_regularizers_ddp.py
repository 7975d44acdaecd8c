"""SIGReg and RDMReg under DDP (gloo, 2 ranks): each rank holds half the batch, and the statistic and the
gradient DDP averages equal those of one process holding the whole batch."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from worldmodel.losses import rdmreg, sigreg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _statistics(z: torch.Tensor) -> dict:
    out = {}
    for name, fn in (("sigreg", lambda x: sigreg(x, 32, generator=torch.Generator().manual_seed(3))),
                     ("rdmreg", lambda x: rdmreg(x, 32, generator=torch.Generator().manual_seed(3), seed=5))):
        x = z.clone().requires_grad_(True)
        value = fn(x)
        value.backward()
        out[name] = (value.detach(), x.grad)
    return out


def _worker(rank: int, port: int, result_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)) * 0.7 + 0.2
    local = _statistics(z[rank * 32:(rank + 1) * 32])
    torch.save(local, os.path.join(result_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_sigreg_and_rdmreg_are_global_statistics_under_ddp(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)) * 0.7 + 0.2
    whole = _statistics(z)
    for name, (value, grad) in whole.items():
        for r in range(2):
            torch.testing.assert_close(ranks[r][name][0], value, rtol=1e-5, atol=1e-6)
        # DDP averages the two ranks' gradients: each rank's local gradient is world x the global one
        ddp_grad = torch.cat([ranks[r][name][1] for r in range(2)]) / 2
        torch.testing.assert_close(ddp_grad, grad, rtol=1e-4, atol=1e-6)
