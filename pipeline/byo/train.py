"""A team's own training script, unchanged in shape: argparse, DDP from torchrun's environment, a
DistributedSampler, a plain loop, evaluation and checkpoints on rank 0.

Three calls report to traindoc: ``traindoc.log`` (steps and evaluations), ``traindoc.should_stop``
(the docs budget) and ``traindoc.checkpoint_dir`` (where checkpoints go, so the run report lists them).
Run it yourself with ``python train.py`` or ``torchrun --nproc-per-node 2 train.py``; traindoc runs it
the same way (``traindoc run pipeline.py``).
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from spirals import SpiralNet, train_set, val_set
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

import traindoc

KEEP = 2  # checkpoints kept on disk


def evaluate(model: torch.nn.Module) -> tuple[float, float]:
    x, y = val_set().tensors
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=2e-2)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = SpiralNet()
    net = DistributedDataParallel(model) if world > 1 else model
    data = train_set()
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr)

    step, stop = 0, False
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            traindoc.log(step=step, loss=loss.item(), epoch=epoch, lr=args.lr, samples=len(x) * world)
            stop = traindoc.should_stop()  # every rank asks at the same point; they agree
            if stop:
                break
        if rank == 0:
            val_loss, val_accuracy = evaluate(model)
            traindoc.log(step=step, epoch=epoch, val_loss=val_loss, val_accuracy=val_accuracy)
            folder = traindoc.checkpoint_dir()
            torch.save({"model": model.state_dict(), "step": step}, folder / f"step_{step:08d}.pt")
            for old in sorted(folder.glob("step_*.pt"))[:-KEEP]:
                old.unlink()
        if stop:
            break
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
