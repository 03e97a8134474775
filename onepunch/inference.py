"""Colorizing pages, as a library: `from onepunch import PageColorizer` (the trained network itself is
`onepunch.models.colorizer.Colorizer`).

    c = PageColorizer("color.pt")                      # GPU if there is one, else CPU
    page = c.colorize(Image.open("page.png"))      # a PIL image of the input's size
    pages = c.colorize_many(images)                # batched; None where a page is already in color

A page of any size and mode is colorized at a working resolution (its longer side is `working_size`, rounded up to
what the net needs, never upscaled), and the result is brought back to the page's full resolution in CIE Lab, in one
of two ways (`transfer`):
- detail (default): L = L_net + (L_page - L_page_at_working_size), upsampled: the net decides the luminance of
  everything it sees at its resolution (a white fill of line art, a solid black that the colorist colors), the page
  contributes every detail finer than the working resolution, so lines and lettering are as sharp as the input.
- luminance: L = L_page exactly, only the chroma comes from the net: for toned manga pages whose greys are already
  the final values.
Either way the chroma (a, b) is scaled by min(1, L_out / L_net), so thin black lines, which the low-resolution output
blurs into grey, stay black instead of taking the color of their surroundings.

With `tile`, the working image is cut into tile x tile squares overlapping by `overlap` pixels and blended with
linear ramps, for pages colorized at a working resolution larger than memory or the training scale allows. A first
pass over the tiles gathers the page's InstanceNorm and attention statistics, and the tiles are colorized with those
(Colorizer.statistics), so they agree with each other and with the page (README: the measured seam error).
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from onepunch import hints as hints_lib
from onepunch import imageio, lettering, metrics, regions, screentone
from onepunch.config import BACKENDS, CHROMA, COLORFUL, DESCREEN, HINT_FILL, LETTERING, REGIONS
from onepunch.devices import pick_device
from onepunch.errors import UserError

DEFAULT_WORKING_SIZE = 512
MAX_WORKING_SIZE = 16384

# L* (0-100) of an 8-bit grey level: the page's luminance in Lab, by lookup instead of a full conversion.
_L_OF_GREY = cv2.cvtColor(np.repeat(np.arange(256, dtype=np.float32)[None, :, None] / 255, 3, 2),
                          cv2.COLOR_RGB2Lab)[0, :, 0]


def normalise(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> L (grey modes) or RGB: 16-bit scaled, transparency composited on white (imageio.to_mode)."""
    return img if img.mode in ("L", "RGB") else imageio.to_mode(img, "auto")


def colorfulness(img: Image.Image) -> float:
    """Hasler-Suesstrunk colorfulness of a page (metrics.colorfulness; 0 for grey; on a <= 256 px copy: the
    statistic is global)."""
    if img.mode != "RGB":
        return 0.0
    small = np.asarray(img if max(img.size) <= 256 else imageio.resize_max(img, 256))
    return float(metrics.colorfulness(torch.from_numpy(small.copy()).permute(2, 0, 1)[None] / 255.0)[0])


def luma(img: Image.Image) -> np.ndarray:
    """uint8 (H, W) luminance (ITU-R 601, as Pillow's convert("L"), the scans the net was trained on)."""
    return np.asarray(img if img.mode == "L" else img.convert("L"))


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


def _check_chroma(chroma: str) -> None:
    if chroma not in CHROMA:
        raise UserError(f"chroma must be {' or '.join(CHROMA)}, not {chroma!r}")


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
    _check_chroma(chroma)
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
    _check_chroma(chroma)

    def strip(y0: int, y1: int) -> np.ndarray:
        lab = _lab_rows(color, grey, y0, y1, chroma)
        page_l = _L_OF_GREY[grey[y0:y1]]
        lab[..., 1:] *= np.minimum(1.0, page_l / np.maximum(lab[..., 0], 1.0))[..., None]
        lab[..., 0] = page_l
        return _to_rgb(lab)

    return _by_strips(grey, strip, _strip_pixels(chroma))


def _ramp(n: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """1-D blending weights of a tile: linear ramps over the overlap on sides that have a neighbour."""
    w = np.ones(n, np.float32)
    r = np.linspace(1 / (overlap + 1), 1 - 1 / (overlap + 1), overlap, dtype=np.float32) if overlap else None
    if r is not None and not first:
        w[:overlap] = r
    if r is not None and not last:
        w[n - overlap:] = r[::-1]
    return w


def _starts(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, n - tile, step)) + [n - tile]
    return sorted(set(starts))


def _core(s: int, starts: list[int], tile: int, n: int) -> tuple[float, float]:
    """The part of the tile at `s` (among `starts`, along a side of n) that is its own, as fractions of the tile:
    from the middle of its overlap with the one before to the middle of its overlap with the next."""
    i = starts.index(s)
    lo = 0 if i == 0 else (s + starts[i - 1] + tile) / 2
    hi = n if i == len(starts) - 1 else (starts[i + 1] + s + tile) / 2
    return (lo - s) / tile, (hi - s) / tile


def _pad_hints(hint_map: np.ndarray | None, h: int, w: int) -> np.ndarray:
    """A (h', w', 4) hint map (None: no hints) padded with "no hint" to (h, w, 4)."""
    out = np.zeros((h, w, 4), np.float32)
    if hint_map is not None:
        out[: hint_map.shape[0], : hint_map.shape[1]] = hint_map
    return out


def backend_of(ckpt: str | Path, backend: str) -> str:
    """torch or onnx for this model file; UserError where the two disagree."""
    if backend not in BACKENDS:
        raise UserError(f"backend must be {', '.join(BACKENDS)}, not {backend!r}")
    onnx_file = Path(ckpt).suffix.lower() == ".onnx"
    if backend == "auto":
        return "onnx" if onnx_file else "torch"
    if (backend == "onnx") != onnx_file:
        raise UserError(f"--backend {backend} runs a {'.onnx file' if backend == 'onnx' else 'color.pt'}, not "
                        f"{Path(ckpt).name}" + (" (make one with `onepunch export color.pt --onnx color.onnx`)"
                                               if backend == "onnx" else ""))
    return backend


class PageColorizer:
    """A trained colorizer (color.pt) ready for pages. Thread-compatible, not thread-safe."""

    def __init__(self, ckpt: str | Path, device: str = "auto", working_size: int = 0, tile: int = 0,
                 overlap: int = 64, batch_size: int = 4, threshold: float = COLORFUL, transfer: str = "detail",
                 chroma: str = "inward", passes: int = 2, backend: str = "auto", lettering: str = "keep",
                 descreen: str = "on", regions: str = "pool", hint_fill: str = "flat"):
        """`passes` (tiles only): passes over the tiles that gather the page's InstanceNorm and attention
        statistics before the one that colorizes (0: each tile its own statistics, as before 2026-12).
        `backend`: torch (a color.pt), onnx (a .onnx from `onepunch export`, run by onnxruntime) or auto (by the
        file's suffix). `lettering`: keep (text and the speech bubbles that hold it stay as the page has them,
        onepunch/lettering.py) or off. `descreen`: on (the net sees screentone as the grey it prints; the dots stay
        in the output's lightness, onepunch/screentone.py) or off. `regions`: pool (one color per region the lines
        enclose, and paper the net left colorless kept paper, onepunch/regions.py) or off (the net's colors as they
        are). `hint_fill`: flat (a hinted region takes the hint's color, shaded by the net, whatever the net learned)
        or net (the net alone decides how far it follows hints)."""
        if regions not in REGIONS:
            raise UserError(f"regions must be {' or '.join(REGIONS)}, not {regions!r}")
        if hint_fill not in HINT_FILL:
            raise UserError(f"hint_fill must be {' or '.join(HINT_FILL)}, not {hint_fill!r}")
        self.regions, self.hint_fill = regions, hint_fill
        if lettering not in LETTERING:
            raise UserError(f"lettering must be {' or '.join(LETTERING)}, not {lettering!r}")
        self.lettering = lettering
        if descreen not in DESCREEN:
            raise UserError(f"descreen must be {' or '.join(DESCREEN)}, not {descreen!r}")
        self.descreen = descreen
        self.device = pick_device(device)
        self.backend = backend_of(ckpt, backend)
        if self.backend == "onnx":
            from onepunch.export import OnnxColorizer

            self.net = OnnxColorizer(ckpt, self.device)
            self.meta = self.net.meta
            if tile:
                raise UserError("tiles need the torch backend (they share a whole-page pass's statistics, which "
                                "the exported graph does not take): use the color.pt, or no --tile")
        else:
            from onepunch.checkpoint import load_colorizer

            self.net, self.meta = load_colorizer(ckpt)
            self.net = self.net.to(self.device)
        if not 0 <= working_size <= MAX_WORKING_SIZE:
            raise UserError(f"working size must be 0 (the checkpoint's own) .. {MAX_WORKING_SIZE}, not {working_size}")
        self.multiple = int(self.meta.get("io", {}).get("multiple", 32))
        size = working_size or int(self.meta.get("io", {}).get("working_size", DEFAULT_WORKING_SIZE))
        self.working_size = self._round(size)
        if tile and (tile < self.multiple or tile % self.multiple):
            raise UserError(f"tile must be a positive multiple of {self.multiple}, not {tile}")
        if tile and not 0 <= overlap < tile // 2:
            raise UserError(f"overlap must be between 0 and tile / 2 ({tile // 2}), not {overlap}")
        if transfer not in ("detail", "luminance"):
            raise UserError(f"transfer must be detail or luminance, not {transfer!r}")
        _check_chroma(chroma)
        trained = self.meta.get("train_config", {})
        # What the net can take besides the scan: nothing for a color.pt made before hints, or trained without them.
        self.takes_hints = "control." not in self.meta.get("absent", []) and trained.get("hint_p", 1) > 0
        self.takes_palette = "control." not in self.meta.get("absent", []) and trained.get("palette_p", 1) > 0
        self.tile, self.overlap, self.batch_size, self.threshold = tile, overlap, max(1, batch_size), threshold
        self.transfer, self.chroma = transfer, chroma
        if not 0 <= passes <= 8:
            raise UserError(f"tile passes must be 0..8, not {passes}")
        self.passes = passes

    @property
    def accepts_hints(self) -> bool:
        """Hints do something: the net takes them, or hinted regions are filled with their colors (hint_fill flat)."""
        return self.takes_hints or self.hint_fill == "flat"

    def _round(self, n: int) -> int:
        return max(self.multiple, -(-n // self.multiple) * self.multiple)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()

    def is_colored(self, img: Image.Image) -> bool:
        return colorfulness(img) > self.threshold

    # ------------------------------------------------------------------------------------------------ net calls
    @torch.inference_mode()
    def _run(self, batch: np.ndarray, hint_maps: np.ndarray | None = None, palette=None) -> np.ndarray:
        """uint8 (B, h, w) scans, h and w multiples of 32 (and optionally float32 (B, h, w, 4) hints, a (65,)
        palette) -> uint8 (B, h, w, 3) colors."""
        x = torch.from_numpy(batch).to(self.device)[:, None].float().div_(127.5).sub_(1)
        h = None if hint_maps is None else torch.from_numpy(hint_maps).to(self.device).permute(0, 3, 1, 2)
        p = None if palette is None else palette.to(self.device).float().view(1, -1).expand(len(batch), -1)
        with self._autocast():
            y = self.net(x, h, p).float()
        return ((y.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def _work(self, grey: np.ndarray) -> np.ndarray:
        """The page's luminance at the working resolution (longer side <= working_size, never upscaled)."""
        h, w = grey.shape
        scale = min(1.0, self.working_size / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            grey = np.asarray(imageio.resize_to(Image.fromarray(grey), size))
        return grey

    def _pad(self, grey: np.ndarray, h: int, w: int) -> np.ndarray:
        """White paper to (h, w) on the right and bottom."""
        return cv2.copyMakeBorder(grey, 0, h - grey.shape[0], 0, w - grey.shape[1], cv2.BORDER_CONSTANT, value=255)

    @torch.inference_mode()
    def _colorize_tiled(self, work: np.ndarray, hint_map: np.ndarray | None = None, palette=None) -> np.ndarray:
        """Tiles, blended. InstanceNorm and attention would each see only its tile; instead, `passes` passes over
        the tiles gather their statistics over the page (each tile counting its own part once) and the last pass
        runs every tile with them: the first gathering pass sees each tile's own statistics, each further one
        those gathered before, closer to the page's."""
        stats = None
        with self._autocast():
            for _ in range(self.passes):
                with self.net.statistics(stats, gather=True) as gathered:
                    self._tiles(work, hint_map, palette, gather=True)
                    stats = gathered()
            with self.net.statistics(stats):
                return self._tiles(work, hint_map, palette)

    def _tiles(self, work: np.ndarray, hint_map: np.ndarray | None, palette, gather: bool = False) -> np.ndarray:
        h, w = work.shape
        t, o = self.tile, self.overlap
        ph, pw = max(h, t), max(w, t)  # small sides are padded up to one tile
        padded = self._pad(work, self._round(ph), self._round(pw))
        ph, pw = padded.shape
        hinted = None if hint_map is None else _pad_hints(hint_map, ph, pw)
        boxes = [(y, x) for y in _starts(ph, t, o) for x in _starts(pw, t, o)]
        acc = np.zeros((ph, pw, 3), np.float32)
        weight = np.zeros((ph, pw, 1), np.float32)
        ys, xs = sorted({y for y, _ in boxes}), sorted({x for _, x in boxes})
        cores = {(y, x): _core(y, ys, t, ph) + _core(x, xs, t, pw) for y, x in boxes}
        for i in range(0, len(boxes), self.batch_size):
            part = boxes[i: i + self.batch_size]
            if gather:
                self.net.own_parts([cores[b] for b in part])
            out = self._run(np.stack([padded[y: y + t, x: x + t] for y, x in part]),
                            None if hinted is None else np.stack([hinted[y: y + t, x: x + t] for y, x in part]),
                            palette)
            for (y, x), tile_rgb in zip(part, out, strict=True):
                wy = _ramp(t, o, y == ys[0], y == ys[-1])
                wx = _ramp(t, o, x == xs[0], x == xs[-1])
                wt = (wy[:, None] * wx[None, :])[..., None]
                acc[y: y + t, x: x + t] += tile_rgb * wt
                weight[y: y + t, x: x + t] += wt
        return np.clip(acc / weight + 0.5, 0, 255).astype(np.uint8)[:h, :w]

    def color_at_working_size(self, works: list[np.ndarray], hint_maps: list | None = None,
                              palette=None) -> list[np.ndarray]:
        """uint8 (h, w) working-size luminances (and their (h, w, 4) hint maps or None, a palette for all) ->
        uint8 (h, w, 3) net outputs (batched by shape)."""
        out: list[np.ndarray | None] = [None] * len(works)
        hint_maps = hint_maps or [None] * len(works)
        if self.tile:
            return [self._colorize_tiled(wk, hm, palette) for wk, hm in zip(works, hint_maps, strict=True)]
        groups = defaultdict(list)
        for i, wk in enumerate(works):
            groups[(self._round(wk.shape[0]), self._round(wk.shape[1]))].append(i)
        # A page's colors must not depend on the pages batched with it (ranks, reruns and chapters batch pages
        # differently; kernels picked for another batch size sum in another order, a level apart in 8 bits). So
        # the CPU runs one page at a time (batching gains little there) and CUDA always runs full batches.
        step = self.batch_size if self.device.type == "cuda" else 1
        for (h, w), idx in groups.items():
            for s in range(0, len(idx), step):
                part = idx[s: s + step]
                fill = part + [part[0]] * (step - len(part))  # repeats, whose outputs are dropped
                hinted = (None if all(hint_maps[i] is None for i in part) else
                          np.stack([_pad_hints(hint_maps[i], h, w) for i in fill]))
                res = self._run(np.stack([self._pad(works[i], h, w) for i in fill]), hinted, palette)
                for j, i in enumerate(part):
                    out[i] = res[j, : works[i].shape[0], : works[i].shape[1]]
        return out  # type: ignore[return-value]

    # ----------------------------------------------------------------------------------------------------- pages
    def colorize_many(self, images: list[Image.Image], force: bool = False, hints: list | None = None,
                      palette=None) -> list[Image.Image | None]:
        """Colorize pages of any PIL mode and size. Returns RGB images of the inputs' sizes; None for a page already
        in color, unless `force`. `hints`: one per image, each None, a list of hint objects in page pixels
        ({"x", "y", "color", "radius"} points, {"line", "color", "width"} strokes), a PIL hint image (colored
        strokes on transparency) or a float32 (H, W, 4) hint map (onepunch/hints.py); `palette`: the chapter's
        colors, `hints.of_image(reference)`, for every page."""
        if hints is not None and len(hints) != len(images):
            raise UserError(f"hints: one entry per image ({len(images)}), not {len(hints)}")
        if hints is not None and any(h is not None for h in hints) and not self.accepts_hints:
            raise UserError("this color.pt takes no hints (made before them, or trained with hint_p = 0): "
                            "use hint_fill flat, or retrain it with this version")
        if palette is not None and not self.takes_palette:
            raise UserError("this color.pt takes no palette (made before them, or trained with palette_p = 0): "
                            "retrain it with this version")
        images = [normalise(img) for img in images]
        todo = [i for i, img in enumerate(images) if force or not self.is_colored(img)]
        greys = [luma(images[i]) for i in todo]
        texts = [lettering.find(g) if self.lettering == "keep" or self.descreen == "on" else None for g in greys]
        # The net sees tone as its grey; the transfer adds the page's dots back (detail = page - working copy).
        works = [self._work(screentone.descreen(g, t) if self.descreen == "on" else g)
                 for g, t in zip(greys, texts, strict=True)]
        hint_maps = [hints_lib.at_working_size(hints[i], g.shape, wk.shape) if hints else None
                     for i, g, wk in zip(todo, greys, works, strict=True)]
        hint_maps = [None if m is None else hints_lib.fill(wk, m) for m, wk in zip(hint_maps, works, strict=True)]
        # A net that takes no hints gets none; with hint_fill flat the hinted regions are colored below all the same.
        colors = self.color_at_working_size(works, hint_maps if self.takes_hints else None, palette)
        out: list[Image.Image | None] = [None] * len(images)
        for i, grey, work, color, text, hint_map in zip(todo, greys, works, colors, texts, hint_maps, strict=True):
            if self.regions == "pool":
                color = regions.pool(color, work)
            rgb = (transfer_detail(grey, work, color, self.chroma) if self.transfer == "detail"
                   else transfer_color(grey, color, self.chroma))
            if hint_map is not None and self.hint_fill == "flat":
                # At the page's own size: its lines enclose exactly the shapes the user clicked in (at the working
                # size thin lines turn grey and shapes run together).
                shapes = regions.shapes(grey)
                full = hints_lib.fill(grey, hints_lib.at_working_size(hints[i], grey.shape, grey.shape), shapes)
                rgb = regions.flats(rgb, full, shapes[0])
            if self.lettering == "keep":
                rgb[text] = grey[text][:, None]  # the page's own black on white, untouched
            out[i] = Image.fromarray(rgb, "RGB")
        return out

    def colorize(self, image: Image.Image, force: bool = True, hints=None, palette=None) -> Image.Image:
        """One page (hints and palette as in colorize_many). By default it is colorized even if it is already in
        color (from its luminance)."""
        out = self.colorize_many([image], force=force, hints=None if hints is None else [hints], palette=palette)[0]
        return image.convert("RGB") if out is None else out
