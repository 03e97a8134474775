"""The regions a page's ink lines enclose, and the colors put into them.

A region is a 4-connected set of paper pixels (grey at least PAPER) of a page. Regions are what the colorizer's own
colors are pooled over (`pool`: one color per enclosed region, the paper around the drawing kept paper, at the net's
working size) and, with the page's solid black fills (`fills`), the shapes a hint fills (hints.fill) and whose color
it sets (`flats`: a click in a shape colors the shape, whatever the net learned, at the page's own size). A region
that touches the page's edge is the paper around the drawing; a shape joined to it through a small gap in a line (a
face whose outline stops short at the ears) is split off it and counts as enclosed (`find`, GAP).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAPER = 200
"""Grey level from which a pixel is paper (at the working size). Well above mid-grey: a page brought down to the
working size turns its thin lines into greys of 130-200, and a gap in a line would join a region to the paper
around it."""
MAX_OPEN = 0.25
"""A region that touches the page's edge is filled by a hint only if it is at most this fraction of the page: a
larger one is the paper around the drawing, where a fill would spill over everything."""
GAP = 0.01
"""`find`: gaps in lines up to twice this fraction of the page's longer side (6 px on a 256 px page) are shut when
telling the paper around the drawing from the shapes in it. Measured on the four real sets (docs/realdata.md)."""
PAPER_CHROMA = 20.0
"""`pool`: paper around the drawing whose mean net color has less chroma (CIE a*b* distance from grey) than this is
kept as the page has it: the cast a regressing net leaves there is not a color anyone asked for; a sky the net is
sure of stays. (10 before the gaps were shut: the paper then held the shapes joined to it, which 20 bleached.)"""
FILL_DEPTH = 0.004
"""Ink farther than this fraction of the page's longer side (at least 3 px) from paper is a solid fill, not a line: a
shape inked black, which a click colors as it colors a shape of paper (`fills`)."""
INK_L = 30.0
"""`pool`: on ink, chroma fades to none as the net's lightness falls below this L* (black has no color)."""
INKED = 10.0
"""`pool`: where the net's median L* over the page's ink cores (grey under 30) is below this, the net keeps the
page's lines, and all ink takes the page's own lightness (measured on the four real sets: docs/realdata.md)."""
AGREE = 0.0
SHADE = 8.0
"""`pool` and `flats` keep the net's shading inside a region (its lightness minus the region's mean), at most this
far in L* (0-100), so a region keeps one color that the net may shade, not blotches."""


@dataclass(frozen=True)
class Regions:
    labels: np.ndarray
    """int32 (h, w): 0 on ink, 1..n on the regions."""
    area: np.ndarray
    """int64 (n + 1,): pixels per label (label 0: ink)."""
    edge: np.ndarray
    """bool (n + 1,): the region touches the page's edge (label 0: False)."""
    split: np.ndarray | None = None
    """bool (n + 1,): the region is enclosed only because gaps were shut (as drawn, it is part of the paper around
    the drawing); None: none is."""

    @property
    def count(self) -> int:
        return len(self.area) - 1

    def enclosed(self) -> np.ndarray:
        """bool (n + 1,): regions inside lines (not touching the edge)."""
        out = ~self.edge
        out[0] = False
        return out

    def fillable(self) -> np.ndarray:
        """bool (n + 1,): regions a hint fills: enclosed, or touching the edge but small (a fill cannot spill far)."""
        out = self.enclosed() | (self.area <= MAX_OPEN * self.labels.size)
        out[0] = False
        return out


def find(grey: np.ndarray, paper: int = PAPER, gap: float | None = None) -> Regions:
    """uint8 (h, w) page -> its regions; the shapes that gaps in their lines (up to 2 * gap * the longer side; GAP by
    default, 0: none shut) join to the paper around the drawing are regions of their own."""
    gap = GAP if gap is None else gap
    n, labels = cv2.connectedComponents((grey >= paper).astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    edge = _on_edge(labels, n)
    split = None
    if gap and edge.any():
        drawn = edge
        labels = _split_gaps(grey < paper, labels, edge, max(1, round(gap * max(grey.shape))))
        n = int(labels.max()) + 1
        edge = _on_edge(labels, n)
        split = ~edge
        split[: len(drawn)] &= drawn  # enclosed now, on the edge as drawn (or new)
        split[0] = False
    return Regions(labels, np.bincount(labels.ravel(), minlength=n).astype(np.int64), edge, split)


def _on_edge(labels: np.ndarray, n: int) -> np.ndarray:
    """bool (n,): which labels touch the page's edge (label 0, ink, never)."""
    edge = np.zeros(n, bool)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        edge[side] = True
    edge[0] = False
    return edge


def _split_gaps(ink: np.ndarray, labels: np.ndarray, edge: np.ndarray, r: int) -> np.ndarray:
    """The edge regions' paper that the page's edge no longer reaches once the ink is thickened by r px (gaps up to
    2r shut), given new labels (after the existing ones), one per connected part of at least (2r)^2 px (a smaller
    one is a sliver along a line: it stays with the paper)."""
    # Thickening and growing back by distance transforms: linear time, where a (2r + 1)^2 dilation at a page's size
    # costs a third of a second.
    far = cv2.distanceTransform((~ink).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) > r
    n_shut, shut = cv2.connectedComponents(far.astype(np.uint8), connectivity=4)
    # The outside with the gaps shut, grown back over the paper the thickened lines took from it.
    core = _on_edge(shut, n_shut)[shut]
    outside = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= r
    joined = edge[labels] & ~outside
    if not joined.any():
        return labels
    k, parts, stats, _ = cv2.connectedComponentsWithStats(joined.astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    big = stats[:, cv2.CC_STAT_AREA] >= 4 * r * r
    big[0] = False
    new = np.zeros(k, np.int32)
    new[big] = int(labels.max()) + 1 + np.arange(int(big.sum()), dtype=np.int32)
    return np.where(new[parts] > 0, new[parts], labels).astype(np.int32)


def fills(grey: np.ndarray, paper: int = PAPER) -> np.ndarray:
    """int32 (h, w) labels (0: none) of the page's solid black fills: each connected core of ink deeper than
    FILL_DEPTH from paper, grown back over the ink around it to the paper's edge (the whole black shape; thin lines
    are never a core)."""
    ink = (grey < paper).astype(np.uint8)
    depth = max(3.0, FILL_DEPTH * max(grey.shape))
    dist = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    core = (dist > depth).astype(np.uint8)
    if not core.any():
        return np.zeros(grey.shape, np.int32)
    # Each ink pixel within reach of a core takes the label of the nearest core (CCOMP: one label per core).
    near, labels = cv2.distanceTransformWithLabels(1 - core, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_CCOMP)
    return np.where((near <= depth + 1) & (ink > 0), labels, 0).astype(np.int32)


def shapes(grey: np.ndarray, found: Regions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What a click can color: int32 (h, w) labels of the paper regions (1..n, as `find`) and of the solid fills
    (n + 1 ..), and bool per label whether a click fills it (fillable paper regions, every fill)."""
    found = find(grey) if found is None else found
    fill = fills(grey)
    labels = np.where(fill > 0, fill + found.count, found.labels)
    fillable = np.concatenate([found.fillable(), np.ones(int(fill.max()), bool)])
    return labels, fillable


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) sRGB -> float32 CIE Lab (OpenCV's, as the page transfer uses)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)


def to_rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)


def _means(values: np.ndarray, labels: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    """(n, C) mean of values (h, w, C) over each label, counting only pixels where weight; labels without such
    pixels get their mean over all their pixels."""
    flat, v = labels.ravel(), values.reshape(-1, values.shape[-1]).astype(np.float64)
    w = weight.ravel().astype(np.float64)
    count = np.bincount(flat, w, n)
    sums = np.stack([np.bincount(flat, v[:, c] * w, n) for c in range(v.shape[1])], 1)
    all_count = np.bincount(flat, minlength=n).astype(np.float64)
    all_sums = np.stack([np.bincount(flat, v[:, c], n) for c in range(v.shape[1])], 1)
    use = count > 0
    out = all_sums / np.maximum(all_count, 1)[:, None]
    out[use] = sums[use] / count[use, None]
    return out


def interior(regions: Regions, margin: float = 1.5) -> np.ndarray:
    """bool (h, w): region pixels farther than `margin` px from ink (away from the blur a net leaves at lines)."""
    return cv2.distanceTransform((regions.labels > 0).astype(np.uint8), cv2.DIST_L2, 3) > margin


def pool(color: np.ndarray, grey: np.ndarray, regions: Regions | None = None, shade: float = SHADE) -> np.ndarray:
    """The net's colors (uint8 (h, w, 3), at the working size of the page `grey`) with one color per enclosed
    region: its mean chroma, and its mean lightness plus the net's own shading (at most `shade` L* away). Paper
    around the drawing that the net left nearly colorless (mean chroma under PAPER_CHROMA) is the page's own paper;
    colored paper (a sky) and ink keep the net's colors as they are."""
    regions = find(grey) if regions is None else regions
    lab = to_lab(color)
    n = regions.count + 1
    core = interior(regions)
    mean = _means(lab, regions.labels, core, n)  # (n, 3)
    if AGREE:
        # Shrink each region's chroma by how much its pixels agree on it: a net torn between yellow and blue over a
        # shape shows both; a confident one shows one color. Shrinkage m^2 / (m^2 + spread) (James-Stein's shape).
        spread = _means(((lab[..., 1:] - mean[regions.labels][..., 1:]) ** 2).sum(-1, keepdims=True),
                        regions.labels, core, n)[:, 0]
        m2 = (mean[:, 1:] ** 2).sum(1)
        mean[:, 1:] *= (m2 / np.maximum(m2 + AGREE * spread, 1e-9))[:, None]
    inside = regions.enclosed()
    paper = regions.edge & (np.hypot(mean[:, 1], mean[:, 2]) < PAPER_CHROMA)
    lab_region = mean[regions.labels].astype(np.float32)  # (h, w, 3)
    out = lab.copy()
    at = inside[regions.labels]
    out[at, 0] = lab_region[at, 0] + np.clip(lab[at, 0] - lab_region[at, 0], -shade, shade)
    out[at, 1:] = lab_region[at, 1:]
    page_l = to_lab(np.repeat(grey[..., None], 3, 2))[..., 0]  # the page's own lightness
    at = paper[regions.labels]
    out[at, 0] = page_l[at]
    out[at, 1:] = 0
    # Ink the net left dark is a line or a black fill: black, not the tint of the colors around it (a net that
    # predicts color at a coarser scale than lines spills it onto them). Ink it made light is a colored fill.
    ink = regions.labels == 0
    out[ink, 1:] *= np.clip(out[ink, :1] / INK_L, 0, 1)
    # A net that keeps the page's darkest lines dark keeps its lines: they take the page's own lightness, as sharp as
    # drawn, not the net's blur of them. A net that lightens them (color art without outlines, whose line art's black
    # strokes are the edges of colored shapes) keeps its own.
    darkest = grey < 30
    if darkest.any() and np.median(out[darkest, 0]) < INKED:
        out[ink, 0] = page_l[ink]
    return to_rgb(out)


def flats(color: np.ndarray, hint_map: np.ndarray, labels: np.ndarray, shade: float = SHADE) -> np.ndarray:
    """A hinted pixel of a shape takes its hint's color, shaded by the net: uint8 (h, w, 3) colors, a filled
    float32 (h, w, 4) hint map (hints.fill) and the shapes' labels (`shapes`: 0 on lines) -> colors in which every
    hinted shape's mean is its hint's color (what users of coloring tools expect of a click in a shape, whatever the
    net picked up). Lines keep the net's colors (the page's own lines are in them)."""
    mask = (hint_map[..., 3] > 0) & (labels > 0)
    if not mask.any():
        return color
    lab = to_lab(color)
    hint_rgb = np.clip((hint_map[..., :3] + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    hint_lab = to_lab(hint_rgb)
    # The net's median lightness over each shape's hinted pixels: its shading is what differs from it (the median,
    # so that the shape's median color is the hint's, as a person reads a shape's color).
    hinted = labels[mask]
    order = np.argsort(hinted, kind="stable")
    keys, starts = np.unique(hinted[order], return_index=True)
    mid = np.zeros(int(labels.max()) + 1, np.float32)
    mid[keys] = [np.median(part) for part in np.split(lab[..., 0][mask][order], starts[1:])]
    out = lab.copy()
    shading = np.clip(lab[..., 0] - mid[labels], -shade, shade)
    out[mask, 0] = np.clip(hint_lab[mask, 0] + shading[mask], 0, 100)
    out[mask, 1:] = hint_lab[mask, 1:]
    return to_rgb(out)
