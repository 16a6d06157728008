"""DistributedDataParallel on the CPU: 2 processes with gloo train a few steps through fit();
replicas (and a pruner parameter kept outside the model) must stay identical."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset


class _Gate:
    """Minimal pruner: a gate outside the model (DDP does not manage it) with a penalty."""

    def __init__(self, model: nn.Module) -> None:
        self.gate = nn.Parameter(torch.ones(4))
        model[1].register_forward_hook(lambda m, i, o: o * self.gate.view(1, -1, 1, 1))

    def penalty(self) -> torch.Tensor:
        return 0.01 * self.gate.sum()

    def on_step_end(self, step: int) -> None: ...

    def on_epoch_end(self, epoch: int) -> None: ...

    def state_dict(self) -> dict:
        return {"gate": self.gate.detach().clone()}


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    from prunekit.config import StageConfig
    from prunekit.losses import TRADES
    from prunekit.train import build_loader, dist_env, fit, make_optimizer, make_scheduler

    env = dist_env()
    assert env.enabled and env.rank == rank
    torch.manual_seed(0)  # same initial weights on every rank
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 3))
    pruner = _Gate(model)
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.rand(32, 1, 6, 6, generator=g),
                         torch.randint(0, 3, (32,), generator=g))
    loader = build_loader(data, 8, seed=0, dist=env)  # 16 examples per rank: 2 steps
    st = StageConfig(epochs=1, lr=0.1)
    opt = make_optimizer([{"params": [pruner.gate]}, {"params": list(model.parameters())}], st)
    # different attack noise on each rank (seeded by rank), the same parameters after each step
    fit(model, TRADES(eps=0.1, step_size=0.05, steps=1), opt, make_scheduler(opt, st), loader,
        1, pruner=pruner, checkpoint=Path(out_dir) / "ckpt.pt",
        log_path=Path(out_dir) / "log.jsonl", seed=0, progress=False, dist=env)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["gate"] = pruner.gate.detach().clone()
    seen = torch.cat([y for _, y in loader])
    torch.save({"state": state, "labels": seen}, Path(out_dir) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_ddp_two_cpu_processes_keep_replicas_identical(tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world,
             join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["labels"].numel() == r1["labels"].numel() == 16  # each rank saw half the data
    for k, v in r0["state"].items():
        torch.testing.assert_close(v, r1["state"][k], atol=1e-6, rtol=0, msg=k)
    torch.manual_seed(0)
    init = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(64, 3))
    assert not torch.equal(init[0].weight, r0["state"]["0.weight"])  # it trained
    assert not torch.equal(r0["state"]["gate"], torch.ones(4))       # the outside gate too
    assert (tmp_path / "ckpt.pt").exists()  # rank 0 wrote the checkpoint and the log
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1
