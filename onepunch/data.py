"""Training data from shard manifests: indexed random access with per-step seeding.

Batch t of rank r is a pure function of (seed, r, t): its samples are drawn with replacement ("resampled") from the
rank's own shards, read by tar offset, and only the expected member is decoded (never a pickle). So training resumes
at any step exactly, the result does not depend on the number of loader workers, and a rank can never run dry or
hang: with fewer shards than ranks every rank samples all shards with its own seed. Shards come from the manifest,
never a glob.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from onepunch import augment, imageio
from onepunch.dist import Rank
from onepunch.errors import UserError


def mix_seed(*parts) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions, unlike hash())."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big") >> 1


def shard_list(manifest: dict, domain: str, split: str) -> list[tuple[str, int]]:
    """(path, count) of every non-empty shard of one domain and split, from a shards manifest."""
    root = Path(manifest["root"])
    entry = manifest["domains"].get(domain, {}).get(split)
    if entry is None:
        raise UserError(f"the shards manifest has no {domain}/{split}")
    out = [(str(root / s["path"]), s["count"]) for s in entry["shards"] if s["count"] > 0]
    if not out:
        raise UserError(f"no {domain}/{split} samples in the shards manifest: check the domain's tag query")
    return out


def rank_shards(shards: list[tuple[str, int]], rank: Rank) -> list[tuple[str, int]]:
    """Each rank owns every world-th shard; with fewer shards than ranks, all ranks sample all (own seeds)."""
    if len(shards) < rank.world:
        return shards
    return shards[rank.rank:: rank.world]


class TarIndex:
    """Offsets of every member of one tar, grouped by sample key, in file order (indexed lazily, once)."""

    def __init__(self, path: str):
        self.path = path
        self.samples: list[tuple[str, dict[str, tuple[int, int]]]] = []
        with tarfile.open(path) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, _, ext = m.name.rpartition("/")[2].partition(".")
                if not self.samples or self.samples[-1][0] != key:
                    self.samples.append((key, {}))
                self.samples[-1][1][ext] = (m.offset_data, m.size)
        self._fd = None

    def read(self, i: int, ext: str) -> tuple[str, bytes]:
        key, members = self.samples[i]
        if ext not in members:
            raise KeyError(f"{self.path}: sample {key} has no .{ext} (has {sorted(members)})")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        offset, size = members[ext]
        return key, os.pread(self._fd, size, offset)


def decode(data: bytes, mode: str) -> torch.Tensor:
    """Image bytes -> uint8 (C, H, W) tensor in mode L (C=1) or RGB (C=3)."""
    img = Image.open(io.BytesIO(data))
    img = img.convert(mode) if img.mode != mode else img
    arr = np.asarray(img)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy())


@dataclass(frozen=True)
class Spec:
    """What both streams share: the rank's shards, the batch, its seed, and the random views."""
    shards: tuple[tuple[str, int], ...]
    size: int
    batch_size: int
    seed: int
    rank: int
    augment: bool = True
    min_crop: float = 0.6
    rotate: float = 10.0
    perspective_p: float = 0.3


@dataclass(frozen=True, kw_only=True)
class StreamSpec(Spec):
    ext: str
    """Image member to read (jpg or png); nothing else is decoded."""
    mode: str


class BatchStream(IterableDataset):
    """Endless (B, C, size, size) float batches in [-1, 1]; loader worker w makes batches w, w+W, w+2W, ..."""

    def __init__(self, spec: StreamSpec, start_step: int = 0):
        self.spec, self.start_step = spec, start_step
        self.cum = list(itertools.accumulate(c for _, c in spec.shards))
        self._index: dict[int, TarIndex] = {}

    def _locate(self, flat: int) -> tuple[TarIndex, int]:
        """Sample number `flat` over all shards -> (its shard's index, position in the shard)."""
        s = bisect.bisect_right(self.cum, flat)
        if s not in self._index:
            self._index[s] = TarIndex(self.spec.shards[s][0])
        return self._index[s], flat - (self.cum[s - 1] if s else 0)

    def _sample(self, flat: int) -> torch.Tensor:
        idx, i = self._locate(flat)
        return decode(idx.read(i, self.spec.ext)[1], self.spec.mode)

    def batch(self, step: int) -> torch.Tensor:
        sp = self.spec
        g = torch.Generator().manual_seed(mix_seed(sp.seed, sp.rank, step))
        picks = torch.randint(0, self.cum[-1], (sp.batch_size,), generator=g).tolist()
        views = []
        for flat in picks:
            img = self._sample(flat)
            if sp.augment:
                img = augment.train_view(img, sp.size, g, min_crop=sp.min_crop, rotate=sp.rotate,
                                         perspective_p=sp.perspective_p)
            else:
                img = augment.center_square(img, sp.size)
            views.append(augment.to_unit(img))
        return torch.stack(views)

    def __iter__(self):
        info = get_worker_info()
        w, n = (info.id, info.num_workers) if info else (0, 1)
        for step in itertools.count(self.start_step + w, n):
            yield self.batch(step)


@dataclass(frozen=True, kw_only=True)
class PairSpec(Spec):
    scan_ext: str
    """Member names in the pair shards, e.g. scan.png and color.jpg (from the build-pairs manifest)."""
    color_ext: str
    degrade_p: float = 0.25
    """Probability of each degradation of the input scan (0 disables them)."""
    lines_p: float = 0.0
    """Probability that the input scan is cut down to its lines (augment.lines_only)."""
    hint_p: float = 0.0
    """Probability that an image gets color hints from its truth (hints.control); with palette_p > 0 the batches
    carry (hints, palette) too."""
    max_hints: int = 32
    palette_p: float = 0.0
    """Probability that an image gets its own palette."""


class PairStream(BatchStream):
    """Endless aligned (scan (B,1,S,S), color (B,3,S,S)) batches in [-1, 1], as BatchStream: batch t depends only on
    (seed, rank, t). Geometry is shared by the pair; degradations touch the scan only. With hints or palettes on,
    a batch is (scan, color, hints (B,4,S,S), palette (B,65)), made here in the loader processes (the hints'
    region fill is CPU work that would otherwise hold up the training step)."""

    def _pair(self, flat: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx, i = self._locate(flat)
        return decode(idx.read(i, self.spec.scan_ext)[1], "L"), decode(idx.read(i, self.spec.color_ext)[1], "RGB")

    def batch(self, step: int) -> tuple[torch.Tensor, ...]:
        sp = self.spec
        g = torch.Generator().manual_seed(mix_seed(sp.seed, sp.rank, step))
        g_degrade = torch.Generator().manual_seed(mix_seed(sp.seed, sp.rank, step, "degrade"))  # own stream: the
        # degradation settings never change which samples and crops a step gets
        picks = torch.randint(0, self.cum[-1], (sp.batch_size,), generator=g).tolist()
        scans, colors = [], []
        for flat in picks:
            scan, color = self._pair(flat)
            if sp.augment:
                scan, color = augment.joint_view(scan, color, sp.size, g, min_crop=sp.min_crop, rotate=sp.rotate,
                                                 perspective_p=sp.perspective_p)
                if sp.degrade_p:
                    scan = augment.degrade(scan, g_degrade, sp.degrade_p)
                if sp.lines_p and torch.rand((), generator=g_degrade) < sp.lines_p:
                    scan = augment.lines_only(scan, g_degrade)
            else:
                scan, color = augment.center_square(scan, sp.size), augment.center_square(color, sp.size)
            scans.append(augment.to_unit(scan))
            colors.append(augment.to_unit(color))
        scans, colors = torch.stack(scans), torch.stack(colors)
        if not (sp.hint_p or sp.palette_p):
            return scans, colors
        from onepunch import hints  # here: the readers of other streams never need it

        return scans, colors, *hints.control(scans, colors, sp.hint_p, sp.max_hints, sp.palette_p,
                                             mix_seed(sp.seed, sp.rank, step, "control"))


def loader(spec: Spec, start_step: int, workers: int, pin: bool = False) -> DataLoader:
    """A DataLoader over a BatchStream: batches arrive in step order whatever the worker count.

    Workers are forked (PyTorch's default here), which inherits the imported modules: starting them costs
    milliseconds instead of a fresh torch import. Call iter() on it before starting threads of your own."""
    stream = PairStream(spec, start_step) if isinstance(spec, PairSpec) else BatchStream(spec, start_step)
    return DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=pin,
                      persistent_workers=False, prefetch_factor=4 if workers else None)


# ------------------------------------------------------------------------------ build-pairs: every sample, in order
BLOCK = 32
"""Samples per item of ColorBlocks (build-pairs' reader). Per sample, the hand-over from a loader process (a
shared-memory tensor, its file descriptor sent over a socket) cost the main process ~0.5 ms, a cap near 2,000 img/s
whatever the GPU does; a block travels as one tensor."""


class ColorBlocks(IterableDataset):
    """Every sample of the given shards, in order, in blocks of BLOCK consecutive samples: ([(task position, key, color
    bytes, json bytes)], uint8 images flattened into one tensor, their (3, H, W) shapes). Loader worker w decodes
    blocks w, w+W, ... (the DataLoader's round robin gives them back in order)."""

    def __init__(self, shards: list[tuple[int, str]], ext: str):
        self.shards, self.ext = shards, ext

    def __iter__(self):
        info = get_worker_info()
        w, n = (info.id, info.num_workers) if info else (0, 1)
        g, block, images = 0, [], []
        for pos, path in self.shards:
            idx = TarIndex(path)
            for i in range(len(idx.samples)):
                if (g // BLOCK) % n == w:
                    key, color = idx.read(i, self.ext)
                    block.append((pos, key, color, idx.read(i, "json")[1]))
                    images.append(decode(color, "RGB"))
                    if len(block) == BLOCK:
                        yield block, torch.cat([x.reshape(-1) for x in images]), [x.shape for x in images]
                        block, images = [], []
                g += 1
        if block:
            yield block, torch.cat([x.reshape(-1) for x in images]), [x.shape for x in images]


def unblock(stream):
    """Blocks from ColorBlocks -> (task position, key, color bytes, json bytes, uint8 (3, H, W)) per sample."""
    for block, flat, shapes in stream:
        views = torch.split(flat, [s[0] * s[1] * s[2] for s in shapes])
        for sample, view, shape in zip(block, views, shapes, strict=True):
            yield *sample, view.view(shape)


def mean_color(shards: list[tuple[str, int]], color_ext: str, n: int = 64) -> torch.Tensor:
    """Mean RGB in [0, 1] of the first n colors of a shard list (the 'mean training color' baseline)."""
    colors = [c for _, c in first_samples(shards, n, (color_ext, "RGB"))]
    return sum((c.float().mean((1, 2)) / 255 for c in colors), torch.zeros(3)) / max(1, len(colors))


def load_truth(path: Path, size: tuple[int, int]) -> torch.Tensor | None:
    """True line art at the size (w, h) of the shard's colored image: (1, 1, H, W) in [0, 1]; None when there is
    none. (Resizing straight to the size: the shards stage's DCT-scaled decode can round a side 1 px differently from
    resizing the original.)"""
    if not path.is_file():
        return None
    img = Image.open(path).convert("L")
    if img.size != size:
        img = imageio.resize_to(img, size)
    return torch.from_numpy(np.asarray(img).copy()).float().div(255)[None, None]


def first_samples(shards: list[tuple[str, int]], n: int, *members: tuple[str, str]) -> list[tuple]:
    """The first n samples of a shard list, in order (a fixed validation set), as (key, image, ...): one uint8
    (C, H, W) tensor per (member ext, mode) asked for, e.g. ("scan.png", "L"), ("color.jpg", "RGB")."""
    out = []
    for path, _ in shards:
        idx = TarIndex(path)
        for i in range(len(idx.samples)):
            if len(out) == n:
                return out
            out.append((idx.samples[i][0], *(decode(idx.read(i, ext)[1], mode) for ext, mode in members)))
    return out
