"""Rank information for multi-process runs. Models and stages never import torch.distributed directly.

Under torchrun the RANK/WORLD_SIZE variables are set; `--rank/--world-size` options give the same split by hand
(for array jobs on a cluster without torchrun). Data stages split work by shard index, which needs no communication.
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
