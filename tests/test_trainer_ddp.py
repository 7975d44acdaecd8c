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


def _finetune_worker(rank: int, world: int, port: int, out_dir: str, result_dir: str) -> None:
    from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
    from worldmodel.models.finetune import EncoderPredictor
    from worldmodel.models.video_vit import VideoViT, VideoViTConfig
    from worldmodel.train.ac_finetune import FinetuneConfig, finetune_losses

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    enc = VideoViT(VideoViTConfig(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2))
    pred = ACPredictor(ACPredictorConfig(embed_dim=24, pred_dim=16, depth=1, num_heads=2, grid_h=2, grid_w=2,
                                         action_dim=2, state_dim=0, pool=2))
    cfg = TrainConfig(steps=3, batch_size=4, ckpt_every=0, progress=False, device="cpu",
                      optim=OptimConfig(lr=1e-2, warmup_steps=0))
    trainer = Trainer(cfg, out_dir, model=EncoderPredictor(enc, pred, pool=2, blocks=1), config={}, kind="toy",
                      lr_scales={"encoder.": 0.5})
    for step in trainer.steps():
        g = trainer.generator_for(step)  # frames differ per rank; SIGReg's directions do not
        batch = {"z": torch.randint(0, 256, (4, 3, 32, 32, 3), dtype=torch.uint8, generator=g),
                 "actions": torch.randn(4, 2, 2, generator=g), "states": torch.zeros(4, 3, 0)}
        parts = finetune_losses(trainer.model, batch, 1, None, "l2", FinetuneConfig(),
                                torch.Generator().manual_seed(step))
        trainer.backward_step(parts["tf"] + parts["rollout"] + 0.1 * parts["sigreg"])
    torch.save(trainer.raw_model.state_dict(), os.path.join(result_dir, f"ft_rank{rank}.pt"))
    trainer.close()


def test_ddp_encoder_finetuning_keeps_ranks_in_sync(tmp_path):
    """Encoder + predictor under DDP (frozen blocks, a scaled encoder lr, SIGReg over both ranks' frames)."""
    mp.spawn(_finetune_worker, args=(2, _free_port(), str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"ft_rank{r}.pt") for r in range(2))
    start = _tiny_start()
    assert not torch.equal(a["encoder.blocks.1.attn.qkv.weight"], start["blocks.1.attn.qkv.weight"])  # trained
    torch.testing.assert_close(a["encoder.blocks.0.attn.qkv.weight"], start["blocks.0.attn.qkv.weight"])  # frozen
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def _tiny_start() -> dict:
    from worldmodel.models.video_vit import VideoViT, VideoViTConfig

    torch.manual_seed(0)
    return VideoViT(VideoViTConfig(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2)).state_dict()
