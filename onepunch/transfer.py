"""The full-size Lab transfer: the net's colors, made at a working resolution, brought back onto the page at its own
resolution, in strips (bounded memory at any page size) on a few threads.

Two ways (`transfer`):
- detail (default): L = L_net + (L_page - L_page_at_working_size), upsampled: the net decides the luminance of
  everything it sees at its resolution (a white fill of line art, a solid black that the colorist colors), the page
  contributes every detail finer than the working resolution, so lines and lettering are as sharp as the input.
- luminance: L = L_page exactly, only the chroma comes from the net: for toned manga pages whose greys are already
  the final values.
Either way the chroma (a, b) is scaled by min(1, L_out / L_net), so thin black lines, which the low-resolution output
blurs into grey, stay black instead of taking the color of their surroundings.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from onepunch.config import CHROMA
from onepunch.errors import UserError

# L* (0-100) of an 8-bit grey level: the page's luminance in Lab, by lookup instead of a full conversion.
_GREYS = np.repeat(np.arange(256, dtype=np.float32)[None, :, None] / 255, 3, 2)  # the 256 greys, as RGB
_L_OF_GREY = np.ascontiguousarray(cv2.cvtColor(_GREYS, cv2.COLOR_RGB2Lab)[0, :, 0])  # cv2.LUT wants it contiguous


STRIP_PIXELS = 1 << 18
"""Full-size pixels of a strip (rows of the page made in one step): its temporaries are ~80 bytes a pixel, 20 MB.
inward also reads context rows above and below a strip (19 each at a 6x upscale), so a taller strip costs less a
row (131 rows at 2,000 px wide)."""
TRANSFER_THREADS = min(8, os.cpu_count() or 1)  # strips in flight at once (pages made side by side share them)


def _rows(a: np.ndarray, h: int, w: int, y0: int, y1: int) -> np.ndarray:
    """Rows y0..y1 of `a` resized to (h, w), bilinear with pixel centres aligned as cv2.resize aligns them, without
    making the whole (h, w) image. Each output pixel's source position comes from its own row and column (remap),
    so a strip's rows are the whole image's to the bit, however the page is cut (a warp of the strip alone starts
    from a rounded offset: a level apart in a few rows)."""
    sy, sx = a.shape[0] / h, a.shape[1] / w
    xs = ((np.arange(w) + 0.5) * sx - 0.5).astype(np.float32)
    ys = ((np.arange(y0, y1) + 0.5) * sy - 0.5).astype(np.float32)
    n = y1 - y0
    return cv2.remap(a, np.broadcast_to(xs, (n, w)).copy(), np.broadcast_to(ys[:, None], (n, w)).copy(),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _by_strips(grey: np.ndarray, strip, share: int = 1) -> np.ndarray:
    """uint8 (H, W, 3) made a strip of rows at a time by strip(y0, y1): memory for a page of any size is its
    output plus the temporaries of the strips in flight (one a thread). The strips' height depends on the page's
    width alone, not on the machine's cores."""
    h, w = grey.shape
    out = np.empty((h, w, 3), np.uint8)
    # Strips are independent and OpenCV and numpy release the GIL, so threads divide a 6 MP page's ~0.15 s.
    rows = max(1, STRIP_PIXELS // w)
    threads = max(1, min(TRANSFER_THREADS // share, -(-h // rows)))

    def fill(y0: int) -> None:
        y1 = min(h, y0 + rows)
        out[y0:y1] = strip(y0, y1)

    if threads == 1:
        for y0 in range(0, h, rows):
            fill(y0)
        return out
    # A pool per call leaves no thread behind (a later fork, such as a DataLoader's, must not inherit running threads).
    with ThreadPoolExecutor(threads, thread_name_prefix="transfer") as pool:
        list(pool.map(fill, range(0, h, rows)))
    return out


INK = 96
"""Page grey level below which a pixel is ink (lines, lettering, solid blacks)."""
REACH = 1.0
"""inward: pixels within REACH x (the upscale factor) + 1 of ink take their chroma from farther inside (1.0, 1.5 and
2.5 measured on scripts/bleed.py: 1.0 best at 1024 and 3072 px)."""


def check_chroma(chroma: str) -> None:
    if chroma not in CHROMA:
        raise UserError(f"colorize.chroma must be {' or '.join(CHROMA)}, not {chroma!r}")


def _unit(rgb: np.ndarray) -> np.ndarray:
    return np.divide(rgb, np.float32(255), dtype=np.float32)


def _lab_rows(color: np.ndarray, grey: np.ndarray, y0: int, y1: int, chroma: str) -> list[np.ndarray]:
    """Rows y0..y1 of the net's color (uint8 h x w x 3) at the page's size, in Lab: [L, a, b], float32 planes.

    bilinear: plain upsampling, blind to the page: a color crosses an ink line by about the upscale factor (6 px on
    a 3000 px page from 512). inward: near ink, a pixel takes the chroma of the nearest pixel that is well inside a
    region (farther than that reach from ink, or deep inside a solid black), which is on its own side of the line;
    lightness is untouched. (A guided or joint-bilateral filter cannot do this: both sides of a line have the same
    page lightness, so it smooths them together.)"""
    h, w = grey.shape
    if chroma == "bilinear":
        return list(cv2.split(cv2.cvtColor(_unit(_rows(color, h, w, y0, y1)), cv2.COLOR_RGB2Lab)))
    reach = int(np.ceil(REACH * max(h / color.shape[0], w / color.shape[1]))) + 1
    # Context rows: the nearest inner pixel of a strip's pixel may lie outside it (up to reach + 3 away), and whether
    # that one is inner depends on ink up to reach beyond it (the chamfer's axis step is 0.955 px).
    context = int(np.ceil((2 * reach + 3) / 0.95)) + 1
    c0, c1 = max(0, y0 - context), min(h, y1 + context)
    up = _rows(color, h, w, c0, c1)
    rows = slice(y0 - c0, y1 - c0)
    lab = list(cv2.split(cv2.cvtColor(_unit(up[rows]), cv2.COLOR_RGB2Lab)))  # Lab is per pixel: the strip's alone
    ink = (grey[c0:c1] < INK).astype(np.uint8)
    if ink.any() and not ink.all():
        inner = (cv2.distanceTransform(1 - ink, cv2.DIST_L2, 3) > reach) | (cv2.distanceTransform(ink, cv2.DIST_L2, 3)
                                                                            > reach)
        if inner.any():
            # Labels number the inner pixels in raster order from 1; every pixel gets its nearest inner pixel's.
            dist, label = cv2.distanceTransformWithLabels((~inner).astype(np.uint8), cv2.DIST_L2, 3,
                                                          labelType=cv2.DIST_LABEL_PIXEL)
            where = np.flatnonzero(inner)  # label - 1 -> flat index (one array: half nonzero's cost)
            # Only pixels near a region's inside change: beside a line the inside of its own side is within reach
            # + 3 px. Screentone and hatching have no inside (their gaps are narrower than the reach), so deeper in
            # them the color stays the net's instead of coming from the paper around them.
            outer = ~inner[rows] & (dist[rows] <= reach + 3)
            src = label[rows][outer] - 1
            if len(src):
                taken = cv2.cvtColor(_unit(up.reshape(-1, 3)[where[src]][:, None]), cv2.COLOR_RGB2Lab)[:, 0]
                lab[1][outer], lab[2][outer] = taken[:, 1], taken[:, 2]
    return lab


def _to_rgb(lab: list[np.ndarray]) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.merge(lab), cv2.COLOR_Lab2RGB)
    rgb *= 255
    rgb += 0.5
    return np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)


def _shade(lab: list[np.ndarray], light: np.ndarray) -> np.ndarray:
    """Lab planes with L replaced by `light` and the chroma scaled by min(1, light / L) (lines the net blurred stay
    black), as uint8 RGB."""
    ratio = np.minimum(1.0, light / np.maximum(lab[0], 1.0))
    return _to_rgb([light, lab[1] * ratio, lab[2] * ratio])


def transfer_detail(grey: np.ndarray, work: np.ndarray, color: np.ndarray, chroma: str = "inward",
                    share: int = 1) -> np.ndarray:
    """The net's color (uint8 h x w x 3, from the working-size luminance `work`, h x w) at the size of the page
    `grey` (uint8 H x W), with the page's own fine detail: L = L_net + (L_page - L_work), both upsampled, so flat
    regions keep the luminance the net chose and lines and text keep the page's sharpness. Chroma is scaled down where
    the result is darker than the net's (lines the net blurred); `chroma` says how it is upsampled (_lab_rows).
    `share`: pages transferred at once, which share the TRANSFER_THREADS (the same bytes with any)."""
    check_chroma(chroma)
    h, w = grey.shape
    work_l = cv2.LUT(work, _L_OF_GREY)

    def strip(y0: int, y1: int) -> np.ndarray:
        lab = _lab_rows(color, grey, y0, y1, chroma)
        detail = cv2.LUT(grey[y0:y1], _L_OF_GREY) - _rows(work_l, h, w, y0, y1)
        # The net decides the luminance of everything it sees at its resolution, solid blacks included: inkers fill
        # shapes with black that the colorist colors (measured on real pairs: clamping the result to be no lighter
        # than the page kept those fills black and cost 3 dB, README "Real data"). The page adds what is finer.
        return _shade(lab, np.clip(lab[0] + detail, 0, 100))

    return _by_strips(grey, strip, share)


def transfer_color(grey: np.ndarray, color: np.ndarray, chroma: str = "inward", share: int = 1) -> np.ndarray:
    """The chroma of `color` (uint8 h x w x 3, any size) on the luminance of `grey` (uint8 H x W) -> uint8 H x W x 3;
    `chroma` says how it is upsampled (_lab_rows); `share` as transfer_detail's."""
    check_chroma(chroma)

    def strip(y0: int, y1: int) -> np.ndarray:
        return _shade(_lab_rows(color, grey, y0, y1, chroma), cv2.LUT(grey[y0:y1], _L_OF_GREY))

    return _by_strips(grey, strip, share)
