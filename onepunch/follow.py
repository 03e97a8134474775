"""A chapter in its characters' colors: the pages a person colored lead the others.

A person colors one page of a chapter (clicks in `onepunch serve`, or any paint program); the other pages follow it.
Each shape the line art encloses (one click's shape: clicks.spots) is described by what the colorizer's decoder sees
there: its features at H/16, H/8 and H/4 averaged over the shape, each level scaled to unit length (so the shape's
surroundings count, not only its own color). A colored page maps its shapes' descriptions to the person's colors;
on another page each shape whose description matches a reference shape's (cosine at least SIMILAR) takes that shape's
color as a click (a hint, filled flat, so it is obeyed); the person's own hints on that page win. So a face drawn as
the reference's face takes its skin, and shapes like none of the reference's stay the net's. A shape the features
match only loosely (cosine at least LOOSE) still follows where the net colored it as it colored the reference shape
(within KEYED): the net paints skin as skin on both pages whatever the pose, and the features say which skin-colored
shape it is. A shape whose outline leaves a gap onto the paper around the drawing (a face drawn open at the hair)
follows too, as the shape it is with the gaps shut (regions.GAP), matched only against reference shapes split off
the same way; shapes as drawn match only reference shapes as drawn.

Training-free, from any colorizer's own decoder. Nothing in a line drawing says which character it is, so a reference
of other characters can still move a page towards their colors where their shapes look alike. Measured on the same
people drawn in five skin tones (docs/realdata.md, "References").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from onepunch import clicks, metrics

SIMILAR = 0.9
"""A shape takes a reference shape's color when their descriptions' cosine is at least this. Chosen on chapters led by
one colored page on openmoji, fluent and emojione (docs/realdata.md, "References"): 0.9 beats 0.95 on all three."""
LOOSE = 0.7
"""A shape whose best match is under SIMILAR takes the color of its best match at a cosine of at least this among the
reference shapes the net colored as it colored the shape (within KEYED Lab units, each on its own page): a small
figure in another pose is described less alike, but the net still paints its face as it painted the reference's.
Measured on chapters of the three tone sets (docs/realdata.md, "References"; tried first, not tuned)."""
KEYED = 15.0
"""CIE76 distance between the net's own colors of two shapes (their medians) within which a loose match counts; 0:
no loose matches."""
SPLIT = True
"""Shapes that gaps in their outlines open onto the paper around the drawing follow too, each as the shape it is with
the gaps shut (regions.GAP), matched against the reference's shapes of that kind only. Chapters led by one colored
page, skin and hair CIEDE2000 against none: openmoji, whose people's faces and hair are drawn open, -27% -> -36%;
fluent and emojione the same (docs/realdata.md, "Shapes drawn open"). False: the shapes as drawn alone."""
LEVELS = 3
"""Decoder levels a description takes (blocks 0-2: H/16, H/8, H/4): the deep ones see a shape's surroundings."""


@dataclass
class Reference:
    """Colored pages' shapes: their descriptions (keys) and the person's colors of them."""

    keys: np.ndarray
    """float32 (K, D): each shape's description (unit length)."""
    colors: np.ndarray
    """uint8 (K, 3) RGB: the person's color of the same shape (its median on the colored page)."""
    net: np.ndarray | None = None
    """uint8 (K, 3) RGB: the net's own color of the shape (its median), for loose matches; None: none."""
    drawn: np.ndarray | None = None
    """bool (K,): the shape is enclosed as drawn (False: split off the paper around the drawing by shutting gaps,
    SPLIT); None: every one is."""

    @staticmethod
    def empty(dim: int = 0) -> Reference:
        return Reference(np.zeros((0, dim), np.float32), np.zeros((0, 3), np.uint8))

    @staticmethod
    def join(refs: list[Reference]) -> Reference:
        """Several colored pages as one (a shape takes its best match's color, whichever page it is on)."""
        if not refs:
            return Reference.empty()
        nets = None if any(r.net is None for r in refs) else np.concatenate([r.net for r in refs])
        drawn = None
        if any(r.drawn is not None for r in refs):
            drawn = np.concatenate([np.ones(len(r.keys), bool) if r.drawn is None else r.drawn for r in refs])
        return Reference(np.concatenate([r.keys for r in refs]), np.concatenate([r.colors for r in refs]), nets, drawn)

    def as_drawn(self) -> np.ndarray:
        """bool (K,): which shapes are enclosed as drawn."""
        return np.ones(len(self.keys), bool) if self.drawn is None else self.drawn


def _spread(n: int, size: int, stride: int) -> np.ndarray:
    """float32 (n, size): how bilinear upsampling by `stride` (half-pixel centres, as torch's align_corners=False)
    spreads each of `size` feature cells over n pixels."""
    src = np.clip((np.arange(n) + 0.5) / stride - 0.5, 0, size - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, size - 1)
    out = np.zeros((n, size), np.float32)
    np.add.at(out, (np.arange(n), lo), 1 - (src - lo))
    np.add.at(out, (np.arange(n), hi), src - lo)
    return out


def describe(features: list[tuple[np.ndarray, int]], spots: list[dict], hw: tuple[int, int]) -> np.ndarray:
    """Decoder features (each float32 (C, h', w') with its stride, h' * stride covering the (h, w) working copy and
    its padding) -> float32 (K, D): each spot's shape's mean of the features upsampled bilinearly to the page, per
    level, each level unit length, together unit length."""
    if not spots:
        return np.zeros((0, sum(f.shape[0] for f, _ in features)), np.float32)
    out = []
    for f, stride in features:
        c, fh, fw = f.shape
        ay, ax = _spread(hw[0], fh, stride), _spread(hw[1], fw, stride)
        flat = f.reshape(c, -1)
        rows = []
        for s in spots:
            ys, xs = np.divmod(s["where"], hw[1])
            y0, x0 = ys.min(), xs.min()
            mask = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), np.float32)
            mask[ys - y0, xs - x0] = 1
            # The sum over the shape of the upsampled features = the features weighted by the shape spread back.
            w = ay[y0: ys.max() + 1].T @ mask @ ax[x0: xs.max() + 1]
            rows.append(flat @ w.ravel() / len(ys))
        level = np.stack(rows)
        out.append(level / np.maximum(np.linalg.norm(level, axis=1, keepdims=True), 1e-6))
    return (np.concatenate(out, 1) / np.sqrt(len(features))).astype(np.float32)


def reference(work: np.ndarray, features: list[tuple[np.ndarray, int]], colored: np.ndarray,
              net: np.ndarray | None = None, split: bool = False) -> Reference:
    """A colored page as a reference: its line art at the working size (uint8 (h, w)), the net's decoder features of
    it (PageColorizer.look), the person's colors resized to the working size (uint8 (h, w, 3)) and optionally the
    net's own colors of it (uint8 (h, w, 3), for loose matches). Its shapes are the ones the lines enclose as drawn,
    and with `split` also those that gaps in their outlines open onto the paper around the drawing (`shapes`): the
    memory keeps training shapes as drawn (colored better so on every real set: docs/realdata.md)."""
    if colored.shape[:2] != work.shape:
        raise ValueError(f"reference: line art {work.shape}, colored {colored.shape[:2]}")
    spots, drawn = shapes(work, split=split)
    keys = describe(features, spots, work.shape)
    return Reference(keys, _medians(colored, spots), None if net is None else _medians(net, spots), drawn)


def shapes(work: np.ndarray, taken: np.ndarray | None = None, split: bool | None = None) -> tuple[list[dict], np.ndarray]:
    """A page's shapes that hold none of its hints (`taken`: bool (h, w), or None): the ones its lines enclose as
    drawn (clicks.spots) and, with `split` (SPLIT by default), those that only gaps in their outlines open onto the
    paper around the drawing (regions.GAP shut) -> the spots and bool (K,): which are as drawn."""
    spots = free_spots(work, taken)
    if not (SPLIT if split is None else split):
        spots = [s for s in spots if s["drawn"]]
    return spots, np.array([s["drawn"] for s in spots], bool)


def _medians(color: np.ndarray, spots: list[dict]) -> np.ndarray:
    """uint8 (K, 3): each spot's shape's median color (clicks.median_color)."""
    return np.uint8([clicks.median_color(color, s["where"]) for s in spots]).reshape(-1, 3)


def lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 (n, 3) RGB -> float32 (n, 3) CIE Lab (metrics.rgb_to_lab, D65)."""
    t = torch.from_numpy(rgb.astype(np.float32) / 255).T.reshape(1, 3, -1, 1)
    return metrics.rgb_to_lab(t)[0, :, :, 0].T.contiguous().numpy()


def free_spots(work: np.ndarray, taken: np.ndarray | None) -> list[dict]:
    """The shapes of a page (clicks.spots, gaps shut) that hold none of its hints (`taken`: bool (h, w), or None)."""
    spots = clicks.spots(work)
    return spots if taken is None else [s for s in spots if not taken.ravel()[s["where"]].any()]


def points(work: np.ndarray, features: list[tuple[np.ndarray, int]], ref: Reference, taken: np.ndarray | None = None,
           similar: float = SIMILAR, net: np.ndarray | None = None) -> list[dict]:
    """The clicks a page takes from a reference: line art at the working size and the net's decoder features of it
    -> point hints in working-size pixels ({"x", "y", "color", "radius"}). `taken`: bool (h, w), where the page
    already has the person's own hints (their shapes take nothing); `net`: the net's own colors of the line art
    (uint8 (h, w, 3)), for loose matches (LOOSE) with a reference that has them."""
    spots, drawn = shapes(work, taken) if len(ref.keys) else ([], None)
    if not spots:
        return []
    cos = describe(features, spots, work.shape) @ ref.keys.T  # (spots, K)
    # A shape matches the reference's shapes of its own kind alone (as drawn, or split off the paper by shutting
    # gaps): on fluent, whose strokes leave slivers of paper between them, the slivers took its figures' matches, and
    # its own slivers took colors from its figures (docs/realdata.md, "Shapes drawn open").
    cos[drawn[:, None] != ref.as_drawn()[None]] = -1
    best = cos.argmax(1)
    ok = cos[np.arange(len(spots)), best] >= similar
    if KEYED and net is not None and ref.net is not None:
        alike = np.linalg.norm(lab(_medians(net, spots))[:, None] - lab(ref.net)[None], axis=2) <= KEYED
        alike &= cos >= LOOSE
        loose = ~ok & alike.any(1)
        best = np.where(loose, np.where(alike, cos, -np.inf).argmax(1), best)
        ok |= loose
    return [{"x": s["x"], "y": s["y"], "color": [int(v) for v in ref.colors[k]], "radius": s["radius"]}
            for s, k, good in zip(spots, best, ok, strict=True) if good]
