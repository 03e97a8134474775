"""Color -> scan converters used by build-pairs, eval and `to-scan`: the trained generator, or XDoG; and `to_scan`,
which runs one over users' pages.

Both converters take a list of uint8 (3, H, W) color images of any sizes and return uint8 (H, W) scans (white paper, dark lines).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from onepunch import augment, imageio, pages, train
from onepunch.dist import Rank
from onepunch.errors import UserError
from onepunch.manifest import sha256_file
from onepunch.models import cyclegan
from onepunch.ui import console

MAX_PIXELS = 1 << 24
"""Image pixels in one forward of the generator (16 M: 256 images at 256 px, 64 at 512)."""


def level(scans: np.ndarray, levels: tuple[int, int]) -> np.ndarray:
    """Scans levelled in place as a scanned page is: at or above levels[0] white paper, at or below levels[1] black
    ink, the rest as they are ((255, 0): unchanged)."""
    paper, ink = levels
    scans[scans >= paper] = 255
    scans[scans <= ink] = 0
    return scans


class GeneratorScanner:
    """scan.pt's generator, batched: images of the same size share a batch, at full resolution."""

    def __init__(self, ckpt_path: str, env: train.Env, batch_size: int, levels: tuple[int, int] = (255, 0)):
        from onepunch.checkpoint import load_generator

        self.g, self.meta = load_generator(ckpt_path)
        # Contiguous, not channels_last: with InstanceNorm the generator ran 3,759 img/s contiguous and 3,059
        # channels_last (bf16, batch 256 at 256 px, H200; BENCHMARKS.md).
        self.g = self.g.to(env.device)
        self.env, self.batch_size = env, batch_size
        self.levels = levels  # (255, 0): the generator's values as they are

    @torch.inference_mode()
    def __call__(self, images: list[torch.Tensor]) -> list[np.ndarray]:
        m = self.g.multiple
        # (H, W) -> indices: same-size images share a batch, so InstanceNorm sees no padding from a larger neighbour
        groups = defaultdict(list)
        for i, img in enumerate(images):
            groups[tuple(img.shape[-2:])].append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        for (h, w), idx in groups.items():
            # Pixels per forward stay under MAX_PIXELS: the widest activation (32 channels at full size, 6 more rows
            # and columns of reflect padding) must index in 32 bits, which 256 images at 512 px would not.
            per = max(1, min(self.batch_size, MAX_PIXELS // (h * w)))
            for start in range(0, len(idx), per):
                part = idx[start: start + per]
                # uint8 crosses to the device (a quarter of float32's bytes); scaling and padding happen there.
                x = torch.stack([images[i] for i in part]).to(self.env.device, non_blocking=True)
                x = cyclegan.pad_to_multiple(augment.to_unit(x), m)[0]
                with self.env.autocast():
                    y = self.g(x)
                y = level(augment.to_uint8(y[:, 0, :h, :w]).cpu().numpy(), self.levels)
                for j, i in enumerate(part):
                    out[i] = y[j]
        return out


class XDoGScanner:
    """eXtended Difference of Gaussians (Winnemoeller et al. 2012): a classic line extractor, no weights."""

    def __init__(self, sigma: float = 1.0, k: float = 1.6, tau: float = 0.95, eps: float = 0.0, phi: float = 50.0):
        self.sigma, self.k, self.tau, self.eps, self.phi = sigma, k, tau, eps, phi

    def one(self, img: torch.Tensor) -> np.ndarray:
        rgb = img.permute(1, 2, 0).numpy()
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        g1 = cv2.GaussianBlur(grey, (0, 0), self.sigma)
        g2 = cv2.GaussianBlur(grey, (0, 0), self.sigma * self.k)
        d = g1 - self.tau * g2
        e = np.where(d >= self.eps, 1.0, 1.0 + np.tanh(self.phi * (d - self.eps)))
        return np.clip(e * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def __call__(self, images: list[torch.Tensor]) -> list[np.ndarray]:
        return [self.one(img) for img in images]


def to_scan(inputs: list[Path], out: Path, ckpt: Path | None, method: str, fmt: str, device: str,
            batch_size: int, max_side: int, log=None, rank: Rank | None = None,
            overwrite: bool = False, levels: tuple[int, int] = (255, 0)) -> pages.Summary:
    """Color -> scan with scan.pt's generator (or XDoG) at full resolution, or with the longer side cut to max_side.
    Generator scans are levelled: at or above levels[0] white, at or below levels[1] black."""
    if max_side != 0 and not 16 <= max_side <= 16384:
        raise UserError(f"`max_side` must be 0 (full size) or 16..16384, got {max_side}")
    if not 1 <= batch_size <= 1024:
        raise UserError(f"`batch_size` must be 1..1024, got {batch_size}")
    if not 0 <= levels[1] < levels[0] <= 255:
        raise UserError(f"`ink_level` must be below `paper_level`, both 0..255; got {levels[1]} and {levels[0]}")
    log = log or console()
    jobs, record = pages.split(pages.discover(inputs, out, fmt), out, "to-scan", rank)
    if method == "ckpt":
        if ckpt is None:
            raise UserError("to-scan needs `ckpt` (a scan.pt), or `method` xdog")
        from onepunch.devices import pick_device
        env = train.Env(pick_device(device), rank or Rank())
        scanner = GeneratorScanner(str(ckpt), env, batch_size, levels=levels)
        settings = {"ckpt_sha256": sha256_file(ckpt), "levels": list(levels)}
    elif method == "xdog":
        scanner, settings = XDoGScanner(), {"xdog": True}
    else:
        raise UserError(f"`method` must be ckpt or xdog, not {method!r}")

    def process(imgs: list[Image.Image], names: list[str]) -> list[Image.Image]:
        rgb = [imageio.to_mode(im, "RGB") for im in imgs]
        rgb = [imageio.resize_max(im, max_side) if max_side and max(im.size) > max_side else im for im in rgb]
        tensors = [torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1) for im in rgb]
        return [Image.fromarray(s, "L") for s in scanner(tensors)]

    summary = pages.run(jobs, process, fmt=fmt, quality=95, batch_size=batch_size,
                        record=record,
                        settings={**settings, "max_side": max_side, "format": fmt}, log=log, what="to-scan",
                        overwrite=overwrite)
    pages.report(summary, out, log, "converted")
    return summary
