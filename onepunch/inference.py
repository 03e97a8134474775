"""Colorizing pages, as a library: `from onepunch import PageColorizer` (the trained network itself is
`onepunch.models.colorizer.Colorizer`).

    c = PageColorizer("color.pt")                      # GPU if there is one, else CPU
    page = c.colorize(Image.open("page.png"))      # a PIL image of the input's size
    pages = c.colorize_many(images)                # batched; None where a page is already in color

A page of any size and mode is colorized at a working resolution (its longer side is `working_size`, rounded up to
what the net needs, never upscaled), and the result is brought back to the page's full resolution in CIE Lab
(onepunch/transfer.py: `transfer` detail or luminance, `chroma` inward or bilinear).

With `tile`, the working image is cut into tile x tile squares overlapping by `overlap` pixels and blended with
linear ramps, for pages colorized at a working resolution larger than memory or the training scale allows. A first
pass over the tiles gathers the page's InstanceNorm and attention statistics, and the tiles are colorized with those
(Colorizer.statistics), so they agree with each other and with the page (README: the measured seam error).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from onepunch import follow as follow_lib
from onepunch import hints as hints_lib
from onepunch import imageio, lettering, metrics, regions, screentone, transfer
from onepunch import memory as memory_lib
from onepunch.config import BACKENDS, ColorizeConfig
from onepunch.devices import pick_device
from onepunch.errors import UserError

DEFAULT_WORKING_SIZE = 512
MAX_WORKING_SIZE = 16384

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


PAGE_THREADS = min(8, os.cpu_count() or 1)
"""Pages of a batch whose CPU steps (before and after the net) run at once."""


def _each(fn, *columns) -> list:
    """[fn(*row) for row in zip(*columns)], the rows on up to PAGE_THREADS threads, in order."""
    rows = list(zip(*columns, strict=True))
    if PAGE_THREADS <= 1 or len(rows) <= 1:
        return [fn(*row) for row in rows]
    # A pool per call leaves no thread behind (a later fork, such as a DataLoader's, must not inherit running threads).
    with ThreadPoolExecutor(min(PAGE_THREADS, len(rows)), thread_name_prefix="pages") as pool:
        return list(pool.map(lambda row: fn(*row), rows))


def backend_of(ckpt: str | Path, backend: str) -> str:
    """torch or onnx for this model file; UserError where the two disagree."""
    if backend not in BACKENDS:
        raise UserError(f"colorize.backend must be {', '.join(BACKENDS)}, not {backend!r}")
    onnx_file = Path(ckpt).suffix.lower() == ".onnx"
    if backend == "auto":
        return "onnx" if onnx_file else "torch"
    if (backend == "onnx") != onnx_file:
        raise UserError(f"colorize.backend {backend} runs a {'.onnx file' if backend == 'onnx' else 'color.pt'}, not "
                        f"{Path(ckpt).name}" + (" (make one with `onepunch export color.pt --onnx color.onnx`)"
                                               if backend == "onnx" else ""))
    return backend


class PageColorizer:
    """A trained colorizer (color.pt) ready for pages. Thread-compatible, not thread-safe."""

    def __init__(self, ckpt: str | Path, cc: ColorizeConfig | None = None, **changes):
        """`cc`: the colorize settings (config.ColorizeConfig: every option, its default and its check in one
        place); `changes`: some of them changed, e.g. PageColorizer("color.pt", working_size=1024, regions="off").
        The page-level settings (inputs, out, format, hints files) belong to the colorize command, not to this."""
        try:
            cc = dataclasses.replace(cc or ColorizeConfig(), **changes)
        except TypeError:
            unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(ColorizeConfig)})
            raise UserError(f"not a colorize setting: {', '.join(unknown)}") from None
        self.cfg = cc
        self.device = pick_device(cc.device)
        self.backend = backend_of(ckpt, cc.backend)
        self.memory: memory_lib.Memory | None = None  # colors from the training set: a color.pt's own, torch only
        if self.backend == "onnx":
            from onepunch.export import OnnxColorizer

            self.net = OnnxColorizer(ckpt, self.device)
            self.meta = self.net.meta
            if cc.tile:
                raise UserError("colorize.tile needs the torch backend (tiles share a whole-page pass's statistics, "
                                "which the exported graph does not take): use the color.pt, or no tiles")
        else:
            from onepunch.checkpoint import load_colorizer

            self.net, self.meta = load_colorizer(ckpt)
            self.net = self.net.to(self.device)
            state = self.meta.pop("memory", None)
            if state is not None and cc.memory == "on":
                self.memory = memory_lib.Memory.from_state(state)
            if self.device.type == "cpu":
                # oneDNN's convolutions run on NHWC natively; NCHW costs a reorder in and out of each (BENCHMARKS.md).
                self.net = self.net.to(memory_format=torch.channels_last)
        # What the checkpoint decides: the multiple its net needs and its own working size.
        self.multiple = int(self.meta.get("io", {}).get("multiple", 32))
        size = cc.working_size or int(self.meta.get("io", {}).get("working_size", DEFAULT_WORKING_SIZE))
        self.working_size = self._round(size)
        if cc.tile and cc.tile % self.multiple:
            raise UserError(f"colorize.tile must be a multiple of {self.multiple} for this net, not {cc.tile}")
        if cc.tile and cc.overlap >= cc.tile // 2:
            raise UserError(f"colorize.overlap must be below colorize.tile / 2 ({cc.tile // 2}), not {cc.overlap}")
        trained = self.meta.get("train_config", {})
        # What the net can take besides the scan: nothing for a color.pt made before hints, or trained without them.
        self.takes_hints = "control." not in self.meta.get("absent", []) and trained.get("hint_p", 1) > 0
        self.takes_palette = "control." not in self.meta.get("absent", []) and trained.get("palette_p", 1) > 0
        self.tile, self.overlap, self.batch_size, self.threshold = cc.tile, cc.overlap, cc.batch_size, cc.threshold
        self.transfer, self.chroma, self.passes = cc.transfer, cc.chroma, cc.tile_passes
        self.lettering, self.descreen, self.regions, self.hint_fill = cc.lettering, cc.descreen, cc.regions, cc.hint_fill

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
    def _run(self, batch: np.ndarray, hint_maps: np.ndarray | None = None, palette=None,
             features: list | None = None) -> np.ndarray:
        """uint8 (B, h, w) scans, h and w multiples of 32 (and optionally float32 (B, h, w, 4) hints, a (65,)
        palette) -> uint8 (B, h, w, 3) colors. `features`: a list that gets each item's decoder features (a list of
        float32 (C, h', w') with its stride per level, follow.LEVELS of them), from the same pass."""
        if features is not None:
            got: list = []
            hooks = [b.register_forward_hook(lambda m, i, o: got.append(o)) for b in self.net.blocks[: follow_lib.LEVELS]]
            try:
                out = self._run(batch, hint_maps, palette)
            finally:
                for hk in hooks:
                    hk.remove()
            h = batch.shape[1]
            features.extend([(f[j].float().contiguous().cpu().numpy(), h // f.shape[-2]) for f in got]
                            for j in range(len(batch)))
            return out
        x = torch.from_numpy(batch).to(self.device)[:, None].float().div_(127.5).sub_(1)
        h = None if hint_maps is None else torch.from_numpy(hint_maps).to(self.device).permute(0, 3, 1, 2)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
            h = None if h is None else h.contiguous(memory_format=torch.channels_last)
        p = None if palette is None else palette.to(self.device).float().view(1, -1).expand(len(batch), -1)
        with self._autocast():
            y = self.net(x, h, p).float()
        return ((y.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def working_copy(self, grey: np.ndarray) -> np.ndarray:
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
                              palette=None, features: list | None = None) -> list[np.ndarray]:
        """uint8 (h, w) working-size luminances (and their (h, w, 4) hint maps or None, a palette for all) ->
        uint8 (h, w, 3) net outputs (batched by shape). `features`: a list of len(works) that gets each page's
        decoder features from the same pass (as `features`; left None with tiles)."""
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
                got: list | None = None if features is None else []
                res = self._run(np.stack([self._pad(works[i], h, w) for i in fill]), hinted, palette, got)
                for j, i in enumerate(part):
                    out[i] = res[j, : works[i].shape[0], : works[i].shape[1]]
                    if got is not None:
                        features[i] = got[j]
        return out  # type: ignore[return-value]

    # ----------------------------------------------------------------------------------------------------- pages
    def colorize_many(self, images: list[Image.Image], force: bool = False, hints: list | None = None,
                      palette=None, follow: follow_lib.Reference | None = None) -> list[Image.Image | None]:
        """Colorize pages of any PIL mode and size. Returns RGB images of the inputs' sizes; None for a page already
        in color, unless `force`. `hints`: one per image, each None, a list of hint objects in page pixels
        ({"x", "y", "color", "radius"} points, {"line", "color", "width"} strokes), a PIL hint image (colored
        strokes on transparency) or a float32 (H, W, 4) hint map (onepunch/hints.py); `palette`: the chapter's
        colors, `hints.of_image(reference)`, for every page; `follow`: colored pages the pages follow
        (`self.reference`, onepunch/follow.py): their shapes' colors become clicks on the shapes the net's decoder
        sees alike."""
        if hints is not None and len(hints) != len(images):
            raise UserError(f"hints: one entry per image ({len(images)}), not {len(hints)}")
        if hints is not None and any(h is not None for h in hints) and not self.accepts_hints:
            raise UserError("this color.pt takes no hints (made before them, or trained with hint_p = 0): "
                            "use hint_fill flat, or retrain it with this version")
        if follow is not None:
            self._can_follow()
        if palette is not None and not self.takes_palette:
            raise UserError("this color.pt takes no palette (made before them, or trained with palette_p = 0): "
                            "retrain it with this version")
        images = [normalise(img) for img in images]
        todo = [i for i, img in enumerate(images) if force or not self.is_colored(img)]
        greys = [luma(images[i]) for i in todo]
        page_hints = [hints[i] if hints else None for i in todo]
        # The CPU steps of the batch's pages run side by side (OpenCV and numpy release the GIL): one page's
        # lettering and labelling are mostly one core's work. The net runs between the two phases, on its own.
        before = _each(self._before, greys, page_hints)
        works = [w for _, w, _ in before]
        hint_maps = [m for _, _, m in before]
        # A net that takes no hints gets none; with hint_fill flat the hinted regions are colored below all the same.
        feats: list | None = [None] * len(works) if self._recalls() else None
        colors = self.color_at_working_size(works, hint_maps if self.takes_hints else None, palette, feats)
        if follow is not None and len(follow.keys):
            self._follow(follow, greys, before, page_hints, colors, palette)
        if feats is not None:
            self._recall(feats, before, colors)
        together = min(PAGE_THREADS, len(todo))  # pages at once: they share the transfer's threads
        done = _each(functools.partial(self._after, share=together), greys, before, colors, page_hints)
        out: list[Image.Image | None] = [None] * len(images)
        for i, img in zip(todo, done, strict=True):
            out[i] = img
        return out

    def _follow(self, ref: follow_lib.Reference, greys: list, before: list, page_hints: list, colors: list,
                palette) -> None:
        """The clicks each page takes from the colored pages `ref`, added to its hints in place (its own win: drawn
        over, and their shapes take nothing); the net reruns on the pages that took any, as on hinted pages."""
        again = []
        for k, (grey, (text, work, hint_map)) in enumerate(zip(greys, before, strict=True)):
            taken = None if hint_map is None else hint_map[..., 3] > 0
            # Shapes are described from the line art as drawn: descreening blurs hatching and dense lines as if they
            # were tone, and the descriptions from the drawn lines follow references better (docs/realdata.md).
            drawn = self.working_copy(grey)
            net, feats = self.look(drawn)
            found = follow_lib.points(drawn, feats, ref, taken, net=net)
            if not found:
                continue
            sy, sx = grey.shape[0] / work.shape[0], grey.shape[1] / work.shape[1]
            found = [{**p, "x": p["x"] * sx, "y": p["y"] * sy, "radius": p["radius"] * min(sx, sy)} for p in found]
            page_hints[k] = found if page_hints[k] is None else (found, page_hints[k])
            hint_map = hints_lib.at_working_size(page_hints[k], grey.shape, work.shape)
            before[k] = (text, work, None if hint_map is None else hints_lib.fill(work, hint_map))
            again.append(k)
        if again and self.takes_hints:
            redone = self.color_at_working_size([before[k][1] for k in again], [before[k][2] for k in again], palette)
            for k, color in zip(again, redone, strict=True):
                colors[k] = color

    def _recalls(self) -> bool:
        """Whether pages take colors from the training set: a memory in the color.pt (and colorize.memory on),
        shapes filled flat, the whole page in one pass (tiles give no page-wide features)."""
        return self.memory is not None and self.hint_fill == "flat" and not self.tile

    def _recall(self, feats: list, before: list, colors: list) -> None:
        """Each page's shapes without a hint (the person's, or a followed page's) take the color their look-alikes
        had in training where those agree (onepunch/memory.py), in place: filled flat at the working size, shaded
        by the net, as a click is at the page's size. The net does not run again, and a person's click in a shape
        the working copy splits still wins (the flats at the page's size come after)."""
        for k, (_, work, hint_map) in enumerate(before):
            taken = None if hint_map is None else hint_map[..., 3] > 0
            found = memory_lib.points(work, feats[k], self.memory, taken)
            if found:
                labels = regions.shapes(work)
                filled = hints_lib.fill(work, hints_lib.render(found, work.shape, work.shape), labels)
                colors[k] = regions.flats(colors[k], filled, labels[0])

    def remember(self, scan: np.ndarray, color: Image.Image) -> follow_lib.Reference:
        """A training pair (uint8 (h, w) scan, its colors) -> its shapes' descriptions and true colors, as a page
        is seen when colorized (working copy, descreened; the net's features from its own pass): memory.Memory.of
        joins them."""
        _, work, _ = self._before(scan, None)
        feats: list = [None]
        self.color_at_working_size([work], None, None, feats)
        size = (work.shape[1], work.shape[0])
        small = color.convert("RGB") if color.size == size else imageio.resize_to(color.convert("RGB"), size)
        return follow_lib.reference(work, feats[0], np.asarray(small))

    @torch.inference_mode()
    def look(self, work: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, int]]]:
        """uint8 (h, w) working copy -> the net's own colors of it (uint8 (h, w, 3)) and its decoder features, float32
        (C, h', w') at H/16, H/8, H/4 (follow.LEVELS) of the page padded as the net sees it, each with its stride:
        what onepunch/follow.py describes and keys shapes with. One pass, whole page (tiles or not)."""
        self._can_follow()
        h, w = self._round(work.shape[0]), self._round(work.shape[1])
        got: list = []
        out = self._run(self._pad(work, h, w)[None], features=got)
        return out[0, : work.shape[0], : work.shape[1]], got[0]

    def _can_follow(self) -> None:
        if self.backend != "torch":
            raise UserError("following colored pages needs the torch backend (a color.pt): an .onnx net gives no "
                            "decoder features")
        if not self.accepts_hints:
            raise UserError("following colored pages needs hints: this color.pt takes none, use hint_fill flat")

    def check_reference(self, page: Image.Image, colored: Image.Image) -> None:
        """UserError unless this net can follow `colored` as a version of `page` (the same shape); no net pass."""
        self._can_follow()
        if abs(page.width / page.height - colored.width / colored.height) > 0.02 * page.width / page.height:
            raise UserError(f"a colored page of {colored.width}x{colored.height} is not a version of a "
                            f"{page.width}x{page.height} page (another shape)")

    def reference(self, page: Image.Image, colored: Image.Image) -> follow_lib.Reference:
        """A page and a person's colored version of it (any size of the same shape: a page colored in `serve`, or in
        any paint program) -> what other pages follow (colorize_many's `follow`; several: Reference.join)."""
        page, colored = normalise(page), normalise(colored).convert("RGB")
        self.check_reference(page, colored)
        drawn = self.working_copy(luma(page))  # as _follow describes a page's shapes
        size = (drawn.shape[1], drawn.shape[0])
        small = colored if colored.size == size else imageio.resize_to(colored, size)
        net, feats = self.look(drawn)
        return follow_lib.reference(drawn, feats, np.asarray(small), net, split=follow_lib.SPLIT)

    def _before(self, grey: np.ndarray, page_hints) -> tuple:
        """A page's steps before the net -> (its lettering or None, its working copy, its hint map at the working
        size or None)."""
        copy = lettering.Copy(grey) if self.lettering == "keep" or self.descreen == "on" else None
        text = None if copy is None else lettering.find(grey, copy)
        # The net sees tone as its grey; the transfer adds the page's dots back (detail = page - working copy).
        work = self.working_copy(screentone.descreen(grey, copy) if self.descreen == "on" else grey)
        hint_map = None if page_hints is None else hints_lib.at_working_size(page_hints, grey.shape, work.shape)
        return text, work, None if hint_map is None else hints_lib.fill(work, hint_map)

    def _after(self, grey: np.ndarray, before: tuple, color: np.ndarray, page_hints, share: int = 1) -> Image.Image:
        """A page's steps after the net: its colors brought to full size (`share`: pages at once, sharing the
        transfer's threads), hinted shapes filled, lettering kept."""
        text, work, hint_map = before
        if self.regions == "pool":
            color = regions.pool(color, work)
        rgb = (transfer.transfer_detail(grey, work, color, self.chroma, share) if self.transfer == "detail"
               else transfer.transfer_color(grey, color, self.chroma, share))
        if hint_map is not None and self.hint_fill == "flat":
            # At the page's own size: its lines enclose exactly the shapes the user clicked in (at the working
            # size thin lines turn grey and shapes run together).
            shapes = regions.shapes(grey)
            full = hints_lib.fill(grey, hints_lib.at_working_size(page_hints, grey.shape, grey.shape), shapes)
            rgb = regions.flats(rgb, full, shapes[0])
        if self.lettering == "keep":
            rgb[text] = grey[text][:, None]  # the page's own black on white, untouched
        return Image.fromarray(rgb, "RGB")

    def colorize(self, image: Image.Image, force: bool = True, hints=None, palette=None,
                 follow: follow_lib.Reference | None = None) -> Image.Image:
        """One page (hints, palette and follow as in colorize_many). By default it is colorized even if it is
        already in color (from its luminance)."""
        out = self.colorize_many([image], force=force, hints=None if hints is None else [hints], palette=palette,
                                 follow=follow)[0]
        return image.convert("RGB") if out is None else out
