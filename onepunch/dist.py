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
