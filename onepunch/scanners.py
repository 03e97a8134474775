"""Color -> scan converters used by build-pairs (and later `to-scan`): the trained generator, or XDoG.

Both take a list of uint8 (3, H, W) color images of any sizes and return uint8 (H, W) scans (white paper, dark lines).
"""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np
import torch

from onepunch import augment, train
from onepunch.models import cyclegan

MAX_PIXELS = 1 << 24
"""Image pixels in one forward of the generator (16 M: 256 images at 256 px, 64 at 512)."""


class GeneratorScanner:
    """scan.pt's generator, batched: images of the same size share a batch, at full resolution."""

    def __init__(self, ckpt_path: str, env: train.Env, batch_size: int, levels: tuple[int, int] = (255, 0)):
        from onepunch.checkpoint import load_generator

        self.g, self.meta = load_generator(ckpt_path)
        # Contiguous, not channels_last: with InstanceNorm the generator ran 3,759 img/s contiguous and 3,059
        # channels_last (bf16, batch 256 at 256 px, H200; BENCHMARKS.md).
        self.g = self.g.to(env.device)
        self.env, self.batch_size = env, batch_size
        self.paper, self.ink = levels  # (255, 0): the generator's values as they are

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
                y = augment.to_uint8(y[:, 0, :h, :w]).cpu().numpy()
                y[y >= self.paper] = 255
                y[y <= self.ink] = 0
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
