"""Color hints and palettes: what a user tells the colorizer besides the scan.

Hints are a (B, 4, H, W) map at the net's input size: the hinted RGB in [-1, 1] where a hint is (0 elsewhere) and
the mask (1 on hinted pixels), as in user-guided colorization (Zhang et al. 2017). Users give them as a JSON file of
points and strokes in page pixels (`load_file`, `render`) or as a PNG of colored strokes on transparency
(`from_image`); training samples them from the true colors (`sample`).

A palette is a (B, PALETTE_DIM) vector: the 4 x 4 x 4-bin RGB histogram of a colored image, square-rooted and
L2-normalised (so a small red ribbon counts beside a large white paper), then a 1 meaning "a palette is given".
A chapter's reference page (or character sheet) gives it at colorize time (`of_image`); training gives each image
its own (`palette`), so the net learns to take its colors from it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from onepunch import regions
from onepunch.errors import UserError
from onepunch.models.colorizer import HINT_CHANNELS, PALETTE_DIM

LEVELS = 4
assert PALETTE_DIM == LEVELS**3 + 1 and HINT_CHANNELS == 4
HALF_SIDES = (0, 1, 2)
"""Training hints are squares of side 1, 3 or 5 px (half-side 0, 1, 2) holding the true mean color of the square."""


# ---------------------------------------------------------------------------------------------------- palettes
def palette(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [-1, 1] -> (B, PALETTE_DIM) palette vectors."""
    b = rgb.shape[0]
    q = ((rgb.float() + 1) * (LEVELS / 2)).long().clamp_(0, LEVELS - 1)
    idx = ((q[:, 0] * LEVELS + q[:, 1]) * LEVELS + q[:, 2]).flatten(1)
    hist = torch.zeros(b, LEVELS**3, device=rgb.device).scatter_add_(1, idx, torch.ones(idx.shape, device=rgb.device))
    hist = hist.sqrt()
    hist = hist / hist.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.cat([hist, torch.ones(b, 1, device=rgb.device)], 1)


def of_image(img: Image.Image) -> torch.Tensor:
    """A reference image (any mode, any size) -> its (PALETTE_DIM,) palette, measured on a <= 256 px copy."""
    rgb = img.convert("RGB")
    if max(rgb.size) > 256:
        rgb.thumbnail((256, 256), Image.Resampling.BOX)
    t = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    return palette(t)[0]


# ------------------------------------------------------------------------------------------- training hints
def sample(color: torch.Tensor, counts: torch.Tensor, gen: torch.Generator, draws: int = 0) -> torch.Tensor:
    """Hints drawn from the truth: color (B, 3, H, W) in [-1, 1], counts (B,) hints per image -> (B, 4, H, W).
    Places are drawn where the truth is not paper white (where a user would hint; anywhere if it is all white),
    each a square of a random side in HALF_SIDES holding the truth's mean color over that square (cut at the image's
    edges; where squares overlap, their mean). `draws` places are drawn (default: the largest count) and each image
    uses its first counts[i]: with the same generator state and draws, a larger count adds hints to a smaller one's.
    Work is per hint (box sums from an integral image), not per pixel: a loader process makes them for a batch of 64
    at 256 px in milliseconds."""
    b, _, h, w = color.shape
    dev, n = color.device, max(draws, int(counts.max()) if len(counts) else 0)
    out = torch.zeros(b, 4, h, w, device=dev, dtype=color.dtype)
    if n == 0:
        return out
    weight = (color.amin(1).flatten(1) < 0.8).float() + 1e-6  # < ~90% grey in all channels: not paper
    where = torch.multinomial(weight, n, replacement=True, generator=gen)  # (B, n) flat positions
    half = torch.tensor(HALF_SIDES, device=dev)[torch.randint(0, len(HALF_SIDES), (b, n), device=dev, generator=gen)]
    live = torch.arange(n, device=dev)[None] < counts.to(dev)[:, None]  # (B, n): the first counts[i] are used
    bi, k = live.nonzero(as_tuple=True)
    y, x, r = where[bi, k] // w, where[bi, k] % w, half[bi, k]
    top = max(HALF_SIDES)
    offsets = [(dy, dx) for dy in range(-top, top + 1) for dx in range(-top, top + 1)]
    inside = []  # per offset: (mask of the points whose square holds it and is in the image, flat pixel)
    for dy, dx in offsets:
        yy, xx = y + dy, x + dx
        ok = (abs(dy) <= r) & (abs(dx) <= r) & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        inside.append((ok, (yy * w + xx).clamp(0, h * w - 1)))
    flat_color = color.flatten(2)  # (B, 3, H*W)
    total = sum(flat_color[bi, :, f] * ok[:, None] for ok, f in inside)  # (P, 3): the square's sum, cut at edges
    mean = total / sum(ok for ok, _ in inside)[:, None].to(color.dtype)
    num, den = out[:, :3].flatten(2), out[:, 3].flatten(1)  # views: accumulate in place
    for ok, f in inside:
        num[bi[ok], :, f[ok]] += mean[ok]  # distinct (image, pixel) per offset: no two writes collide
        den[bi[ok], f[ok]] += 1
    hit = torch.cat([bi[:, None] * (h * w) + f[:, None] for _, f in inside], 1)[torch.stack([ok for ok, _ in inside], 1)]
    hit = hit.unique()
    hb, hf = hit // (h * w), hit % (h * w)
    num[hb, :, hf] /= den[hb, hf][:, None]  # overlapping squares: their mean
    den[hb, hf] = 1
    return out


def counts(b: int, p: float, max_hints: int, gen: torch.Generator) -> torch.Tensor:
    """Hints per image: none with probability 1 - p, else 1 + a geometric number (p = 1/8, Zhang et al. 2017),
    at most max_hints. On the generator's device."""
    dev = gen.device
    u = torch.rand(b, device=dev, generator=gen)
    g = torch.rand(b, device=dev, generator=gen).clamp_min(1e-9)
    n = 1 + torch.floor(torch.log(g) / math.log(1 - 1 / 8)).long()
    return torch.where(u < p, n.clamp(max=max_hints), torch.zeros_like(n))


def control(scan: torch.Tensor, color: torch.Tensor, hint_p: float, max_hints: int, palette_p: float,
            seed: int) -> tuple:
    """(hints, palette) for one training batch of CPU tensors in [-1, 1] (the region fill runs on the CPU), a
    pure function of (scan, color, seed): resume-exact."""
    gen = torch.Generator().manual_seed(seed)
    hints = fill_batch(scan, sample(color, counts(color.shape[0], hint_p, max_hints, gen), gen))
    given = (torch.rand(color.shape[0], 1, generator=gen) < palette_p).to(color.dtype)
    return hints, palette(color) * given


# ------------------------------------------------------------------------------------------------ region fill
def fill(scan: np.ndarray, hint_map: np.ndarray, labels: tuple | None = None) -> np.ndarray:
    """A hint colors the shape it is in: uint8 (h, w) scan and float32 (h, w, 4) hints -> hints with each hinted
    shape filled (onepunch/regions.py `shapes`: 4-connected paper pixels, a region that touches the page's edge only if
    it is small, since a large one is the paper around the drawing; and solid black fills; in a shape with hints of
    several colors each pixel takes its nearest hint's). What users mean by a click inside a shape, and what the net
    then only has to shade, so it learns to follow hints in a CPU budget instead of learning to spread them.
    `labels`: regions.shapes(scan), when the caller has them."""
    mask = hint_map[..., 3] > 0
    if not mask.any():
        return hint_map
    labels, fillable = regions.shapes(scan) if labels is None else labels
    out = hint_map.copy()
    for r in np.unique(labels[mask]):
        if r == 0 or not fillable[r]:
            continue
        ys, xs = np.nonzero(labels == r)
        y, x, h, w = ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        region = labels[y: y + h, x: x + w] == r
        seeds = mask[y: y + h, x: x + w] & region
        colors = hint_map[y: y + h, x: x + w][seeds][:, :3]
        box = out[y: y + h, x: x + w]
        todo = region & ~seeds
        if np.ptp(colors, axis=0).max() < 1e-6:
            box[todo, :3] = colors[0]
        else:  # several colors: the nearest seed's (labels number the seeds in raster order from 1)
            _, near = cv2.distanceTransformWithLabels((~seeds).astype(np.uint8), cv2.DIST_L2, 3,
                                                      labelType=cv2.DIST_LABEL_PIXEL)
            sy, sx = np.nonzero(seeds)
            src = near[todo] - 1
            box[todo, :3] = hint_map[y: y + h, x: x + w][sy[src], sx[src], :3]
        box[todo, 3] = 1
    return out


def fill_batch(scan: torch.Tensor, hint_maps: torch.Tensor) -> torch.Tensor:
    """fill over a CPU batch: scans (B, 1, H, W) and hints (B, 4, H, W), both in [-1, 1] as the net takes them."""
    grey = ((scan[:, 0].float() + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    maps = hint_maps.permute(0, 2, 3, 1).numpy()
    return torch.from_numpy(np.stack([fill(g, m) for g, m in zip(grey, maps, strict=True)])).permute(0, 3, 1, 2) \
        .to(hint_maps.dtype)


# ---------------------------------------------------------------------------------------------- user hints
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def _color(value, where: str) -> tuple[int, int, int]:
    if isinstance(value, str) and (m := _HEX.match(value)):
        return tuple(int(m.group(1)[i: i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    if isinstance(value, list | tuple) and len(value) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in value):
        return tuple(value)  # type: ignore[return-value]
    raise UserError(f"{where}: color must be '#rrggbb' or [r, g, b] in 0-255, not {value!r}")


MAX_COORD = 1_000_000.0
"""Hint coordinates, radii and widths are page pixels within +-MAX_COORD (a 250 MP page is at most that long)."""
MAX_HINTS = 100_000
MAX_FILE = 64 << 20
"""A hints file (or a web request's hints) larger than this is refused before it is parsed."""


def _number(value, where: str, what: str, low: float = -MAX_COORD) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{where}: {what} must be a number, not {str(value)[:40]!r}")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or not low <= v <= MAX_COORD:
        raise UserError(f"{where}: {what} must be a number in {low:g}..{MAX_COORD:g} page pixels, not "
                        f"{str(value)[:40]}")
    return v


def parse(text: str, where: str):
    """JSON text of hints -> Python objects; UserError (one line) for anything that is not reasonable JSON."""
    if len(text) > MAX_FILE:
        raise UserError(f"{where}: larger than {MAX_FILE >> 20} MB")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as e:  # ValueError: an integer of too many digits
        what = "nested too deeply" if isinstance(e, RecursionError) else str(e).splitlines()[0][:120]
        raise UserError(f"{where}: not a JSON hints file ({what})") from None


def check(hints, where: str) -> list[dict]:
    """A list of hint objects, validated: {"x", "y", "color", "radius"?} points and {"line": [[x, y], ...],
    "color", "width"?} strokes, in page pixels. UserError naming the first bad one."""
    if not isinstance(hints, list):
        raise UserError(f"{where}: hints must be a list, not {type(hints).__name__}")
    if len(hints) > MAX_HINTS:
        raise UserError(f"{where}: {len(hints)} hints (at most {MAX_HINTS})")
    out = []
    for i, h in enumerate(hints):
        at = f"{where}[{i}]"
        if not isinstance(h, dict):
            raise UserError(f"{at}: a hint is an object, not {h!r}")
        color = _color(h.get("color"), at)
        if "line" in h:
            pts = h["line"]
            if not isinstance(pts, list) or not pts or not all(isinstance(p, list) and len(p) == 2 for p in pts):
                raise UserError(f"{at}: line must be a list of [x, y] points")
            if len(pts) > MAX_HINTS:
                raise UserError(f"{at}: {len(pts)} points in a line (at most {MAX_HINTS})")
            pts = [[_number(p[0], at, "x"), _number(p[1], at, "y")] for p in pts]
            out.append({"line": pts, "color": color, "width": _number(h.get("width", 6), at, "width", 0.0)})
        elif "x" in h and "y" in h:
            out.append({"x": _number(h["x"], at, "x"), "y": _number(h["y"], at, "y"), "color": color,
                        "radius": _number(h.get("radius", 4), at, "radius", 0.0)})
        else:
            raise UserError(f"{at}: a hint needs x and y (a point) or line (a stroke)")
    return out


def load_file(path: str | Path) -> dict[str, list[dict]]:
    """A hints file -> {page file name or "*": hints}. The file is either a list of hints (for every page) or
    {"all": [...], "pages": {"001.png": [...], ...}}: a page's own hints are added to the chapter's."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE:
            raise UserError(f"{path}: larger than {MAX_FILE >> 20} MB: not a hints file")
        raw = parse(path.read_text(encoding="utf-8-sig"), str(path))  # -sig: a byte-order mark is fine
    except FileNotFoundError:
        raise UserError(f"hints file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a JSON hints file ({str(e).splitlines()[0]})") from None
    if isinstance(raw, list):
        return {"*": check(raw, str(path))}
    if not isinstance(raw, dict) or not set(raw) <= {"all", "pages"}:
        raise UserError(f"{path}: a hints file is a list of hints or an object with 'all' and/or 'pages'")
    pages = raw.get("pages", {})
    if not isinstance(pages, dict):
        raise UserError(f"{path}: 'pages' maps page file names to lists of hints")
    out = {"*": check(raw.get("all", []), f"{path}: all")}
    out.update({str(k): check(v, f"{path}: pages[{k!r}]") for k, v in pages.items()})
    return out


def for_page(table: dict[str, list[dict]], name: str) -> list[dict]:
    """The hints of one page (by file name, or its path relative to the input) from a load_file table."""
    return table.get("*", []) + table.get(name, table.get(Path(name).name, []))


def unmatched(table: dict[str, list[dict]], names: set[str]) -> list[str]:
    """The page names of a load_file table that name none of these pages (a typo: `r6.png` for `r06.png`)."""
    known = names | {Path(n).name for n in names}
    return sorted(k for k in table if k != "*" and k not in known)


def render(hints: list[dict], page_hw: tuple[int, int], work_hw: tuple[int, int]) -> np.ndarray | None:
    """Checked hints in page pixels -> float32 (h, w, 4) at the working size (RGB in [-1, 1] masked, mask); None if
    there are none. Every hint covers at least one working pixel."""
    if not hints:
        return None
    (ph, pw), (h, w) = page_hw, work_hw
    sx, sy = w / pw, h / ph
    rgb = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for hint in hints:
        if "line" in hint:
            pts = np.array([[round(x * sx - 0.5 + 0.5 * sx), round(y * sy - 0.5 + 0.5 * sy)] for x, y in hint["line"]],
                           np.int32)
            t = min(32767, max(1, round(hint["width"] * min(sx, sy))))  # OpenCV's largest line width
            for canvas, value in ((rgb, hint["color"]), (mask, 1)):
                cv2.polylines(canvas, [pts], False, value, t, cv2.LINE_8)
                if len(pts) == 1:
                    cv2.circle(canvas, tuple(int(v) for v in pts[0]), t // 2, value, -1)
        else:
            c = (round(hint["x"] * sx - 0.5 + 0.5 * sx), round(hint["y"] * sy - 0.5 + 0.5 * sy))
            r = round(hint["radius"] * min(sx, sy))
            cv2.circle(rgb, c, r, hint["color"], -1)
            cv2.circle(mask, c, r, 1, -1)
    return _pack(rgb, mask)


def from_image(img: Image.Image, work_hw: tuple[int, int]) -> np.ndarray | None:
    """A hint image (colored strokes on transparency, any size; stretched to the page) -> (h, w, 4) at the working
    size; None if it has no opaque pixel. Pixels at least half opaque after resizing are hints."""
    rgba = np.asarray(img.convert("RGBA")).astype(np.float32) / 255
    alpha = rgba[..., 3:]  # a hint map is premultiplied by its mask, so transparent pixels add no color
    return from_map(np.concatenate([(rgba[..., :3] * 2 - 1) * alpha, alpha], 2), work_hw)


def from_map(a: np.ndarray, work_hw: tuple[int, int]) -> np.ndarray | None:
    """A float32 (H, W, 4) hint map at any size (e.g. sampled from a page's truth) -> (h, w, 4) at the working
    size, by area (cells at least half hinted are hints); None if nothing is hinted."""
    h, w = work_hw
    a = np.asarray(a, np.float32)
    if a.ndim != 3 or a.shape[2] != HINT_CHANNELS:
        raise UserError(f"a hint map is (H, W, {HINT_CHANNELS}), not {a.shape}")
    small = cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA) if a.shape[:2] != (h, w) else a
    m = (small[..., 3:] >= 0.5).astype(np.float32)
    if not m.any():
        return None
    return np.concatenate([small[..., :3] / np.maximum(small[..., 3:], 1e-6) * m, m], 2)


def at_working_size(hints, page_hw: tuple[int, int], work_hw: tuple[int, int]) -> np.ndarray | None:
    """Any form of one page's hints (None; a list of hint objects in page pixels; a PIL hint image; a hint map) ->
    float32 (h, w, 4) at the working size, or None."""
    if hints is None:
        return None
    if isinstance(hints, tuple):  # several forms for one page: later ones drawn over earlier ones
        out = None
        for part in hints:
            out = merge(out, at_working_size(part, page_hw, work_hw))
        return out
    if isinstance(hints, Image.Image):
        return from_image(hints, work_hw)
    if isinstance(hints, np.ndarray):
        return from_map(hints, work_hw)
    return render(check(hints, "hints"), page_hw, work_hw)


def _pack(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.float32)[..., None]
    return np.concatenate([(rgb.astype(np.float32) / 127.5 - 1) * m, m], 2)


def merge(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """Two hint maps of one page: b's hints over a's."""
    if a is None or b is None:
        return a if b is None else b
    m = b[..., 3:]
    return a * (1 - m) + b
