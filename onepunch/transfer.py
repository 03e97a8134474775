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
_L_OF_GREY = cv2.cvtColor(np.repeat(np.arange(256, dtype=np.float32)[None, :, None] / 255, 3, 2),
                          cv2.COLOR_RGB2Lab)[0, :, 0]



STRIP_PIXELS = 1 << 18  # full-size pixels per step of the transfer: its temporaries stay ~70 bytes x 256 K
TRANSFER_THREADS = min(8, os.cpu_count() or 1)  # strips in flight at once


def _rows(a: np.ndarray, h: int, w: int, y0: int, y1: int) -> np.ndarray:
    """Rows y0..y1 of `a` resized to (h, w), bilinear with pixel centres aligned as cv2.resize aligns them, without
    making the whole (h, w) image."""
    sy, sx = a.shape[0] / h, a.shape[1] / w
    m = np.float32([[sx, 0, 0.5 * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]])
    return cv2.warpAffine(a, m, (w, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _by_strips(grey: np.ndarray, strip, pixels: int = STRIP_PIXELS) -> np.ndarray:
    """uint8 (H, W, 3) made a strip of rows at a time by strip(y0, y1): memory for a page of any size is its
    output plus one strip's temporaries."""
    h, w = grey.shape
    out = np.empty((h, w, 3), np.uint8)
    # Strips are independent and OpenCV and numpy release the GIL, so threads divide a 6 MP page's ~0.2 s. With T
    # threads a strip is 1/T as tall: the temporaries in flight stay one STRIP_PIXELS' worth.
    threads = max(1, min(TRANSFER_THREADS, h * w // pixels))
    rows = max(1, pixels // (w * threads))

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


def _strip_pixels(chroma: str) -> int:
    """inward keeps distance maps and labels (~2x bilinear's bytes per pixel): half the strip, the same memory."""
    return STRIP_PIXELS // 2 if chroma == "inward" else STRIP_PIXELS


def check_chroma(chroma: str) -> None:
    if chroma not in CHROMA:
        raise UserError(f"colorize.chroma must be {' or '.join(CHROMA)}, not {chroma!r}")


def _lab_rows(color: np.ndarray, grey: np.ndarray, y0: int, y1: int, chroma: str) -> np.ndarray:
    """Rows y0..y1 of the net's color (uint8 h x w x 3) at the page's size, in Lab (float32).

    bilinear: plain upsampling, blind to the page: a color crosses an ink line by about the upscale factor (6 px on
    a 3000 px page from 512). inward: near ink, a pixel takes the chroma of the nearest pixel that is well inside a
    region (farther than that reach from ink, or deep inside a solid black), which is on its own side of the line;
    lightness is untouched. (A guided or joint-bilateral filter cannot do this: both sides of a line have the same
    page lightness, so it smooths them together.)"""
    h, w = grey.shape
    if chroma == "bilinear":
        return cv2.cvtColor(_rows(color, h, w, y0, y1).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    reach = int(np.ceil(REACH * max(h / color.shape[0], w / color.shape[1]))) + 1
    c0, c1 = max(0, y0 - 2 * reach), min(h, y1 + 2 * reach)  # context rows: the nearest inner pixel may lie outside
    lab = cv2.cvtColor(_rows(color, h, w, c0, c1).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    ink = (grey[c0:c1] < INK).astype(np.uint8)
    if ink.any() and not ink.all():
        inner = (cv2.distanceTransform(1 - ink, cv2.DIST_L2, 3) > reach) | (cv2.distanceTransform(ink, cv2.DIST_L2, 3)
                                                                            > reach)
        if inner.any():
            # Labels number the inner pixels in raster order from 1; every pixel gets its nearest inner pixel's.
            dist, label = cv2.distanceTransformWithLabels((~inner).astype(np.uint8), cv2.DIST_L2, 3,
                                                          labelType=cv2.DIST_LABEL_PIXEL)
            ys, xs = np.nonzero(inner)
            rows = slice(y0 - c0, y1 - c0)
            # Only pixels near a region's inside change: beside a line the inside of its own side is within reach
            # + 3 px. Screentone and hatching have no inside (their gaps are narrower than the reach), so deeper in
            # them the color stays the net's instead of coming from the paper around them.
            outer = ~inner[rows] & (dist[rows] <= reach + 3)
            src = label[rows][outer] - 1
            lab[rows][outer, 1:] = lab[ys[src], xs[src], 1:]
    return lab[y0 - c0: y1 - c0]


def _to_rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)


def transfer_detail(grey: np.ndarray, work: np.ndarray, color: np.ndarray, chroma: str = "inward") -> np.ndarray:
    """The net's color (uint8 h x w x 3, from the working-size luminance `work`, h x w) at the size of the page
    `grey` (uint8 H x W), with the page's own fine detail: L = L_net + (L_page - L_work), both upsampled, so flat
    regions keep the luminance the net chose and lines and text keep the page's sharpness. Chroma is scaled down where
    the result is darker than the net's (lines the net blurred); `chroma` says how it is upsampled (_lab_rows)."""
    check_chroma(chroma)
    h, w = grey.shape
    work_l = _L_OF_GREY[work]

    def strip(y0: int, y1: int) -> np.ndarray:
        lab = _lab_rows(color, grey, y0, y1, chroma)
        detail = _L_OF_GREY[grey[y0:y1]] - _rows(work_l, h, w, y0, y1)
        # The net decides the luminance of everything it sees at its resolution, solid blacks included: inkers fill
        # shapes with black that the colorist colors (measured on real pairs: clamping the result to be no lighter
        # than the page kept those fills black and cost 3 dB, README "Real data"). The page adds what is finer.
        light = np.clip(lab[..., 0] + detail, 0, 100)
        lab[..., 1:] *= np.minimum(1.0, light / np.maximum(lab[..., 0], 1.0))[..., None]
        lab[..., 0] = light
        return _to_rgb(lab)

    return _by_strips(grey, strip, _strip_pixels(chroma))


def transfer_color(grey: np.ndarray, color: np.ndarray, chroma: str = "inward") -> np.ndarray:
    """The chroma of `color` (uint8 h x w x 3, any size) on the luminance of `grey` (uint8 H x W) -> uint8 H x W x 3;
    `chroma` says how it is upsampled (_lab_rows)."""
    check_chroma(chroma)

    def strip(y0: int, y1: int) -> np.ndarray:
        lab = _lab_rows(color, grey, y0, y1, chroma)
        page_l = _L_OF_GREY[grey[y0:y1]]
        lab[..., 1:] *= np.minimum(1.0, page_l / np.maximum(lab[..., 0], 1.0))[..., None]
        lab[..., 0] = page_l
        return _to_rgb(lab)

    return _by_strips(grey, strip, _strip_pixels(chroma))


