"""Everything distributed: rank information, the process group and every collective. No other module imports
torch.distributed.

Under torchrun the RANK/WORLD_SIZE variables are set; `--rank/--world-size` options give the same split by hand
(for array jobs on a cluster without torchrun). Data stages split work by shard index, which needs no communication.

Collectives run on the process group's device: NCCL takes CUDA tensors only, gloo CPU tensors only, so every tensor
sent goes through `_on_group_device` (a CPU tensor given to NCCL fails with "no backend for device type cpu").
BatchNorm buffers are not synchronised step by step (no SyncBatchNorm: the frozen pretrained encoder has none that
train, and the random-init one is small): `average_buffers` makes them equal on all ranks before every checkpoint and
at the end, as timm's distribute_bn does, so a saved model does not depend on which rank saved it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from onepunch.errors import UserError


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    launched: bool = False
    """True under torchrun: all ranks run at once, so rank 0 can wait for the others."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, index: int) -> bool:
        return index % self.world == self.rank


def rank_info(rank: int | None = None, world: int | None = None) -> Rank:
    if rank is not None or world is not None:
        rank, world = rank or 0, world or 1
        if not 0 <= rank < world:
            raise UserError(f"--rank must be in 0..{world - 1} for --world-size {world}, got {rank}")
        return Rank(rank, world, launched=False)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), launched=True)
    return Rank()


def exit_with(pid: int) -> None:
    """In a worker process: exit at once when process `pid` (the run that started the pool) exits, however it exits
    (kill -9 included), so no worker outlives a killed run. Waiting on the process itself, not on the parent: a
    forkserver's workers keep the forkserver alive, so neither would notice the run's death by itself."""
    import select
    import threading
    import time

    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)  # Linux >= 5.3: readable once the process has exited
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            select.select([fd], [], [])
        else:
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-run", daemon=True).start()


# ------------------------------------------------------------------------------------------------- collectives
_created = False  # whether init() made the group: shutdown() leaves a caller's own group alone


def init(cuda: bool, device=None) -> None:
    """Start the process group under torchrun (NCCL on CUDA, gloo on CPU); nothing otherwise, or if the caller
    (a program that runs stages inside its own distributed job) has started one."""
    import torch.distributed as dist

    global _created
    rank = rank_info()
    if rank.launched and rank.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
        _created = True


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _on_group_device(t):
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return t.to(torch.device("cuda", torch.cuda.current_device()))
    return t.cpu()


def barrier() -> None:
    import torch.distributed as dist

    if active():
        dist.barrier()


def shutdown() -> None:
    """End the group init() started (a barrier first, so no rank leaves while another still sends)."""
    import torch.distributed as dist

    global _created
    if _created and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        _created = False


def any_rank(flag: bool) -> bool:
    """True on every rank if it is true on any: a rank that saw SIGTERM must not leave the others in a collective."""
    import torch
    import torch.distributed as dist

    if not active():
        return flag
    t = _on_group_device(torch.tensor([1.0 if flag else 0.0]))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (small picklable things: image pools, digests)."""
    import torch.distributed as dist

    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_params(*modules) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    import torch.distributed as dist

    if not active():
        return
    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            sent = _on_group_device(t.data)
            dist.broadcast(sent, 0)
            t.data.copy_(sent)


def sync_grads(*modules) -> None:
    """Average gradients across ranks, one flat all-reduce per module."""
    import torch
    import torch.distributed as dist

    if not active():
        return
    for m in modules:
        grads = [p.grad for p in m.parameters() if p.grad is not None]
        if not grads:
            continue
        flat = _on_group_device(torch.cat([g.reshape(-1) for g in grads]))
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()


def average_buffers(*modules) -> None:
    """Floating-point buffers (BatchNorm running statistics) averaged across ranks; integer ones (counters) are
    equal on all ranks already and are left alone."""
    import torch.distributed as dist

    if not active():
        return
    for m in modules:
        for b in m.buffers():
            if b.is_floating_point():
                t = _on_group_device(b.data.clone())
                dist.all_reduce(t)
                b.data.copy_(t / dist.get_world_size())


def digest(*modules) -> str:
    """sha256 of every parameter and buffer, bit for bit."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for m in modules:
        for name, t in [*m.named_parameters(), *m.named_buffers()]:
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()


def same_on_all_ranks(*modules) -> bool:
    """True if every rank holds bit-identical parameters and buffers (the end-of-training check of the sync)."""
    if not active():
        return True
    return len(set(gather_objects(digest(*modules)))) == 1
