"""Colors from the training set: each shape of a page takes the color its look-alikes had in training.

A colorizer trained for a few hundred steps paints shapes it is unsure of near-grey: the mean of the colors it has
seen there (fluent's and iconpark's flat colors come out at a tenth of the truth's colorfulness). But the training
pairs hold the answer for shapes like them. At the end of train-color, every enclosed shape (clicks.spots) of up to
`train_color.memory_images` training pairs is described as onepunch/follow.py describes a chapter's shapes (the
decoder's features over it, at 1/16, 1/8 and 1/4 of the working size) and kept with its true color (its median) in
color.pt: the memory. When a page is colorized, each of its shapes without a hint looks up its VOTES nearest
remembered shapes (cosine at least SIMILAR); when most of them agree on a color (within NEAR of their medoid in Lab),
the shape is filled with it at the working size, shaded by the net (regions.flats, as a click is filled at the
page's size), otherwise it keeps the net's color. The net does not run again: a tiny net given clicks it was not
asked for sprays their color onto the paper around them. Working-size fills cost next to nothing, and a person's
click still wins: its shape is filled at the page's size afterwards.

Measured on the four real sets (docs/realdata.md, "Colors from the training set"): better PSNR and CIEDE2000 on each,
1.5-4x the colorfulness on the pale ones. The person's clicks and a followed page's colors win over it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from onepunch import follow
from onepunch.errors import UserError

SIMILAR = follow.SIMILAR
"""A remembered shape votes only when its description's cosine with the page's shape is at least this."""
VOTES = 3
"""The nearest remembered shapes that vote on a shape's color."""
AGREE = 0.6
"""The share of the votes that must lie within NEAR of their medoid: 2 of 3 (a lone vote above SIMILAR counts)."""
NEAR = 10.0
"""Lab distance (CIE76) within which two remembered colors agree."""
MAX_SHAPES = 20000
"""Shapes kept at most (evenly spaced over the images): about 20k x the description's width x 2 bytes in color.pt."""


@dataclass
class Memory:
    """Training shapes' descriptions (follow.describe) and their true colors."""

    keys: np.ndarray
    """float32 (K, D), unit length."""
    colors: np.ndarray
    """uint8 (K, 3) RGB."""
    images: int = 0
    """Training pairs the shapes came from."""

    def __post_init__(self):
        self.lab = follow.lab(self.colors) if len(self.colors) else np.zeros((0, 3), np.float32)

    @staticmethod
    def of(refs: list[follow.Reference], images: int) -> Memory:
        """The shapes of several training pairs (follow.Reference each), at most MAX_SHAPES, evenly spaced."""
        joined = follow.Reference.join(refs)
        keep = np.arange(len(joined.keys))
        if len(keep) > MAX_SHAPES:
            keep = np.unique(np.linspace(0, len(keep) - 1, MAX_SHAPES).round().astype(int))
        return Memory(np.ascontiguousarray(joined.keys[keep], np.float32), joined.colors[keep], images)

    def state(self) -> dict:
        """What color.pt holds (tensors and ints only: torch.load(weights_only=True) reads it)."""
        return {"keys": torch.from_numpy(self.keys).half(), "colors": torch.from_numpy(self.colors),
                "images": self.images}

    @staticmethod
    def from_state(state) -> Memory:
        """color.pt's memory -> Memory; UserError when it is not one (a file made by hand, or damaged)."""
        try:
            keys, colors = state["keys"], state["colors"]
            ok = (keys.ndim == 2 and keys.is_floating_point() and colors.dtype == torch.uint8
                  and tuple(colors.shape) == (len(keys), 3))
            images = int(state["images"])
        except (TypeError, KeyError, AttributeError, ValueError):
            ok = False
        if not ok:
            raise UserError("this color.pt's memory is malformed (not keys (K, D) and uint8 colors (K, 3)): "
                            "colorize with --memory off, or train it again")
        return Memory(keys.float().numpy(), colors.numpy(), images)


def vote(cos: np.ndarray, mem: Memory) -> np.ndarray | None:
    """One shape's cosines with every remembered shape -> the color its nearest agree on (uint8 (3,)), or None."""
    near = np.argsort(-cos, kind="stable")[:VOTES]
    near = near[cos[near] >= SIMILAR]
    if not len(near):
        return None
    d = np.linalg.norm(mem.lab[near][:, None] - mem.lab[near][None], axis=2)
    medoid = int(d.sum(1).argmin())
    if (d[medoid] <= NEAR).mean() < AGREE - 1e-9:
        return None
    return mem.colors[near[medoid]]


def points(work: np.ndarray, features: list[tuple[np.ndarray, int]], mem: Memory,
           taken: np.ndarray | None = None) -> list[dict]:
    """The clicks a page takes from the memory: its working copy and the net's decoder features of it -> point
    hints in working-size pixels. `taken`: bool (h, w), where the page already has hints (their shapes take none)."""
    spots = follow.free_spots(work, taken) if len(mem.keys) else []
    if not spots:
        return []
    described = follow.describe(features, spots, work.shape)
    if described.shape[1] != mem.keys.shape[1]:
        raise UserError(f"this color.pt's memory describes shapes by {mem.keys.shape[1]} numbers and its net by "
                        f"{described.shape[1]}: colorize with --memory off, or train it again")
    cos = described @ mem.keys.T
    out = []
    for s, row in zip(spots, cos, strict=True):
        color = vote(row, mem)
        if color is not None:
            out.append({"x": s["x"], "y": s["y"], "color": [int(v) for v in color], "radius": s["radius"]})
    return out


def spread(shards: list[tuple[str, int]], limit: int) -> list[tuple[str, int]]:
    """(shard path, samples to take from its start) for up to `limit` samples spread over the shards."""
    if limit <= 0 or not shards:
        return []
    per = math.ceil(limit / len(shards))
    out, left = [], limit
    for path, count in shards:
        n = min(per, count, left)
        if n > 0:
            out.append((path, n))
        left -= n
    return out


def build(ckpt, shards: list[tuple[str, int]], members: tuple[str, str], limit: int, device: str = "cpu",
          progress=None) -> Memory:
    """A color.pt and the training pairs' shards ((path, count); members: the scan's and the color's, e.g.
    scan.png and color.jpg) -> the memory of up to `limit` pairs' shapes, taken from the shards' starts, spread
    over them. The pages go through the net as colorize sends them (onepunch.inference.PageColorizer.remember)."""
    from PIL import Image

    from onepunch.data import TarIndex, decode
    from onepunch.inference import PageColorizer

    colorizer = PageColorizer(ckpt, device=device, memory="off")
    refs = []
    for path, n in spread(shards, limit):
        idx = TarIndex(path)
        for i in range(min(n, len(idx.samples))):
            scan = decode(idx.read(i, members[0])[1], "L")[0].numpy()
            color = Image.fromarray(decode(idx.read(i, members[1])[1], "RGB").permute(1, 2, 0).numpy())
            refs.append(colorizer.remember(scan, color))
            if progress is not None:
                progress()
    return Memory.of(refs, len(refs))


def attach(ckpt, mem: Memory) -> None:
    """Write the memory into a color.pt (atomically; torch.load(weights_only=True) still reads it)."""
    from onepunch.checkpoint import COLOR_KIND, load_checkpoint, save_atomic

    state = load_checkpoint(ckpt, COLOR_KIND)
    save_atomic({**state, "memory": mem.state()}, ckpt)
