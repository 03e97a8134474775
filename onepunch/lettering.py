"""Lettering: the text of a page and the speech bubbles around it, found so that colorize leaves them exactly as
the page has them (black text on white paper). Tinted bubbles and colored text are the most common complaint about
manga colorizers: the net sees a bubble as one more region to fill.

Text is found without a learned detector, from what lettering looks like: rows of glyph-sized ink components of
similar height on paper, with no other ink among them (line art's strokes are longer than glyphs, or touch each
other, or lie among other ink). The bubble is the region of paper that holds a text block, when it is enclosed (not
the page's background). Found on a copy of the page at most MAX_SIDE px (a 250 MP page's labels would take GBs).
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_SIDE = 2048
INK = 128  # grey below this: ink
PAPER = 200  # grey at or above this: paper (a bubble's inside)
GLYPH = (0.004, 0.05)
"""A glyph's height (its component's taller side), as fractions of the page's longer side: 8 to 100 px at 2,048."""
MIN_GLYPHS = 4
"""A text block has at least this many glyph components."""
MAX_BUBBLE = 0.2
"""A bubble is at most this fraction of the page (bigger: the page's own background, which is left to the net)."""
BUBBLE_FIT = 25
"""A bubble is at most this many times the area of its text blocks' boxes (the glyphs and a glyph's margin)."""


class Copy:
    """A page's copy for analysis (at most MAX_SIDE px, `at_most`) and what lettering and screentone both read of
    it, each made once a page: the ink's components and the lettering. (Not functools.cached_property: before
    Python 3.12 it holds one lock for every instance, so pages analysed side by side would wait for each other.)"""

    def __init__(self, grey: np.ndarray):
        self.page_shape = grey.shape
        self.grey, self.scale = at_most(grey)
        self._ink: tuple | None = None
        self._text: np.ndarray | None = None

    @property
    def ink(self) -> tuple:
        """cv2.connectedComponentsWithStats of the ink (8-connected): (n, labels, stats, centroids)."""
        if self._ink is None:
            self._ink = cv2.connectedComponentsWithStats((self.grey < INK).astype(np.uint8), connectivity=8)
        return self._ink

    @property
    def text(self) -> np.ndarray:
        """bool: the lettering, at the copy's size."""
        if self._text is None:
            self._text = _find(self)
        return self._text

    def at_page_size(self, mask: np.ndarray) -> np.ndarray:
        return to_size(mask, self.page_shape)


def _glyphs(copy: Copy) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, stats, is_glyph, is_speck per label) of the ink's 8-connected components. Specks (smaller than a
    glyph: dots, punctuation, parts of kana, scanner noise) count neither for nor against text."""
    n, labels, stats, _ = copy.ink
    side = max(copy.grey.shape)
    w, h, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    tall = np.maximum(w, h)
    fill = area / np.maximum(w * h, 1)
    speck = tall < GLYPH[0] * side
    glyph = ~speck & (tall <= GLYPH[1] * side) & (fill >= 0.05) & (np.minimum(w, h) * 12 >= tall)
    glyph[0] = speck[0] = False  # the background
    return labels, stats, glyph, speck


def _strokes(labels: np.ndarray, members: np.ndarray) -> bool:
    """Whether components are mostly parallel strokes (hatching), not letters: most of them elongated (axes over
    3:1) along one direction. A few letters are strokes too (l, I, !), never most of a block, and not all alike.
    Each component's second moments come from one pass over the block (bincount), not one per component."""
    index = np.full(int(labels.max()) + 1, -1)
    index[members] = np.arange(len(members))
    ys, xs = np.nonzero(index[labels] >= 0)
    k = index[labels[ys, xs]]
    n = np.bincount(k, minlength=len(members)).astype(np.float64)
    sums = [np.bincount(k, weights=v, minlength=len(members)) for v in (xs, ys, xs * xs, ys * ys, xs * ys)]
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my, mxx, myy, mxy = (t / n for t in sums)
    cxx, cyy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    # Eigenvalues of each 2 x 2 covariance, and the direction of the larger one.
    half, root = (cxx + cyy) / 2, np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    major, minor = half + root, half - root
    elongated = (n >= 3) & (major > 9 * np.maximum(minor, 1e-6))
    if elongated.sum() < 0.6 * len(members):
        return False
    angle = np.arctan2(2 * cxy, cxx - cyy)[elongated]  # twice the direction: a stroke's is modulo 180
    return bool(np.hypot(np.mean(np.cos(angle)), np.mean(np.sin(angle))) > 0.9)


def at_most(grey: np.ndarray, side: int = MAX_SIDE) -> tuple[np.ndarray, float]:
    """(a copy of the page whose longer side is at most `side` (by area: small marks average, not vanish), the
    scale); the page itself and 1.0 when it is small enough."""
    h, w = grey.shape
    scale = min(1.0, side / max(h, w))
    if scale == 1:
        return grey, 1.0
    return cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA), scale


def to_size(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool mask of a copy brought to the page's (h, w) (nearest)."""
    if mask.shape == tuple(shape):
        return mask
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0


def find(grey: np.ndarray, copy: Copy | None = None) -> np.ndarray:
    """uint8 (H, W) page -> bool (H, W): its lettering (text blocks and the bubbles that hold them). `copy`: the
    page's Copy, if made already."""
    copy = copy or Copy(grey)
    return copy.at_page_size(copy.text)


def _find(copy: Copy) -> np.ndarray:
    g = copy.grey
    ink = g < INK
    labels, stats, glyph, speck = _glyphs(copy)
    out = np.zeros(g.shape, bool)
    if glyph.sum() < MIN_GLYPHS:
        return out
    size = int(np.median(np.maximum(stats[glyph, cv2.CC_STAT_WIDTH], stats[glyph, cv2.CC_STAT_HEIGHT])))
    glyph_px = glyph[labels]
    # Glyphs of a block are within about a glyph of each other: joined by a closing of that size.
    k = max(3, size | 1)
    blocks = cv2.dilate(glyph_px.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    nb, block_labels, block_stats, _ = cv2.connectedComponentsWithStats(blocks, connectivity=8)
    text_box = np.zeros(g.shape, bool)  # each accepted block's bounding box
    for b in range(1, nb):
        x, y, w, h = block_stats[b, :4]
        box = (slice(y, y + h), slice(x, x + w))
        here = block_labels[box] == b
        members = np.unique(labels[box][here & glyph_px[box]])
        if len(members) < MIN_GLYPHS:
            continue
        heights = stats[members, cv2.CC_STAT_HEIGHT]
        if heights.std() > 0.35 * heights.mean():  # lettering's glyphs are of a size
            continue
        # Letters fill a good part of their box, not all of it (a median of ~0.45 in print fonts). The likeliest
        # impostors: hatching's parallel strokes (thin diagonals, filling ~2 x width / length of theirs) and
        # screentone's dots (discs, ~0.8).
        fill = stats[members, cv2.CC_STAT_AREA] / (stats[members, cv2.CC_STAT_WIDTH] * heights)
        if not 0.25 <= np.median(fill) <= 0.65 or _strokes(labels[box], members):
            continue
        # No other ink among the glyphs (line art's strokes, hatching and tone cross their block): looked for within
        # half a glyph of them, so a bubble's outline next to the text does not count.
        near = cv2.dilate(glyph_px[box].astype(np.uint8), np.ones((k // 2 | 1, k // 2 | 1), np.uint8)) > 0
        other = ink[box] & near & here & ~glyph_px[box] & ~speck[labels[box]]
        if other.sum() > 0.05 * (glyph_px[box] & here).sum():
            continue
        out[box] |= here
        text_box[box] = True
    if not out.any():
        return out
    # Bubbles: enclosed paper (4-connected) that holds text, holds nothing else (what its outline encloses is paper
    # or text: a panel's paper holds a drawing too) and is not far larger than its text (BUBBLE_FIT).
    paper = (g >= PAPER).astype(np.uint8)
    n, paper_labels, paper_stats, _ = cv2.connectedComponentsWithStats(paper, connectivity=4)
    text_area = np.bincount(paper_labels[text_box], minlength=n)  # per paper region: text boxes' pixels in it
    holds = np.bincount(paper_labels[out & (paper > 0)], minlength=n) > 0
    px, py, pw, ph, area = (paper_stats[:, i] for i in range(5))
    enclosed = (px > 0) & (py > 0) & (px + pw < g.shape[1]) & (py + ph < g.shape[0])
    candidates = holds & enclosed & (area <= MAX_BUBBLE * g.size) & (area <= BUBBLE_FIT * text_area)
    candidates[0] = False
    # Short words (fewer glyphs than a block needs) and punctuation are letters too, inside a bubble.
    letters = cv2.dilate((glyph_px | speck[labels]).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    for p in np.nonzero(candidates)[0]:
        sub = (slice(py[p], py[p] + ph[p]), slice(px[p], px[p] + pw[p]))
        region = (paper_labels[sub] == p).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        inside = cv2.drawContours(np.zeros_like(region), contours, -1, 1, cv2.FILLED) > 0
        other = inside & (region == 0) & ~out[sub] & ~letters[sub]
        if other.sum() <= 0.01 * area[p]:
            out[sub] |= inside
    # The glyphs' antialiased edges and the gaps inside letters belong to the lettering too.
    return cv2.dilate(out.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
