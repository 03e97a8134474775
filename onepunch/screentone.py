"""Screentone: fields of small dots (or of small holes in black) that print a grey. Found and replaced by that grey
before the net sees the page (descreening), so the net colors the grey instead of each dot; the dots stay in the
output's lightness, because the full-size transfer adds back the page's detail finer than the working copy.

Found without frequency analysis, from what tone is: many specks (ink components, or paper holes in ink, smaller than
SPECK of the page) close together, at least DENSE of them within a window of WINDOW of the page. On a copy of the page
at most lettering.MAX_SIDE px, as lettering is.
"""

from __future__ import annotations

import cv2
import numpy as np

from onepunch import lettering

SPECK = 0.008
"""A tone dot's larger side is at most this fraction of the page's longer side (16 px at 2,048)."""
WINDOW = 0.025
"""The window in which dots are counted, as a fraction of the page's longer side (51 px at 2,048)."""
EDGES = 0.5
"""Or: at least this share of a window's pixels are edges (a pattern as fine as its pixels allow)."""
DENSE = 16
"""Dots in a window for tone: a grid of period up to WINDOW / 4 (13 px at 2,048); scanner noise and the dots of
lettering are far sparser."""


def _specks(binary: np.ndarray, largest: int, components: tuple | None = None) -> np.ndarray:
    """float32 image with 1 at the centroid of each component of `binary` (its connectedComponentsWithStats, if
    made already) no larger than `largest` px a side."""
    n, _, stats, centroids = components or cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    small = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) <= largest
    small[0] = False
    out = np.zeros(binary.shape, np.float32)
    c = np.round(centroids[small]).astype(int)
    out[np.clip(c[:, 1], 0, binary.shape[0] - 1), np.clip(c[:, 0], 0, binary.shape[1] - 1)] = 1
    return out


def _analyse(copy: lettering.Copy) -> tuple[np.ndarray, float]:
    """(bool tone mask, dot spacing in px) of a page's copy; its lettering is never tone: small print is as dense
    in specks (letters, their holes) as tone is."""
    g = copy.grey
    side = max(g.shape)
    largest = max(2, round(SPECK * side))
    win = max(9, round(WINDOW * side)) | 1
    # Dark dots on paper (the ink, labelled once for lettering and this), light dots in black.
    dots = _specks(g < lettering.INK, largest, copy.ink) + _specks(g >= lettering.INK, largest)
    count = cv2.boxFilter(dots, -1, (win, win), normalize=False, borderType=cv2.BORDER_CONSTANT)
    # Mid-grey tones (dots about as wide as their gaps) touch at corners: neither ink nor paper is made of dots.
    # There, nearly every pixel is an edge (a line's edges are a few percent of a window; hatching's are many too,
    # and hatching is a drawn tone).
    edge = (cv2.morphologyEx(g, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 96).astype(np.float32)
    busy = cv2.boxFilter(edge, -1, (win, win), borderType=cv2.BORDER_CONSTANT) >= EDGES
    text = copy.text
    tone = ((count >= DENSE) | busy) & ~text
    if not tone.any():
        return tone, 0.0
    spacing = float(win / np.sqrt(max(DENSE, np.median(count[tone]))))
    # A window counts enough dots only where it is mostly inside the field: grown back by half a window to the
    # field's edge, and kept to within a dot spacing of dots (not past the field's outline).
    field = cv2.dilate(tone.astype(np.uint8), np.ones((win, win), np.uint8)) > 0
    k = max(3, round(spacing) | 1)
    near_dots = cv2.dilate(((dots > 0) | (edge > 0)).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    return field & near_dots & ~text, spacing


def _tone(grey: np.ndarray, copy: lettering.Copy | None) -> tuple[np.ndarray, float]:
    """(bool tone mask, dot spacing) at the page's size, analysed on its Copy (made here if None)."""
    copy = copy or lettering.Copy(grey)
    tone, spacing = _analyse(copy)
    return copy.at_page_size(tone), spacing / copy.scale


def find(grey: np.ndarray, copy: lettering.Copy | None = None) -> np.ndarray:
    """uint8 (H, W) page -> bool (H, W): its screentone (`copy`: the page's lettering.Copy, if made already)."""
    return _tone(grey, copy)[0]


def descreen(grey: np.ndarray, copy: lettering.Copy | None = None) -> np.ndarray:
    """uint8 (H, W) page -> the page with its screentone replaced by the grey it prints (a Gaussian mean over about
    a dot spacing); the rest untouched. Returns `grey` itself when it has no tone. `copy`: as find's."""
    tone, spacing = _tone(grey, copy)
    if not tone.any():
        return grey
    smooth = cv2.GaussianBlur(grey, (0, 0), sigmaX=0.7 * spacing)
    return np.where(tone, smooth, grey)
