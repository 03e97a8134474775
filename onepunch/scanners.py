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


class GeneratorScanner:
    """scan.pt's generator, batched: images of the same (padded) size share a batch, at full resolution."""

    def __init__(self, ckpt_path: str, env: train.Env, batch_size: int):
        from onepunch.checkpoint import load_generator

        self.g, self.meta = load_generator(ckpt_path)
        self.g = self.g.to(env.device)
        if env.cuda:
            self.g = self.g.to(memory_format=torch.channels_last)
        self.env, self.batch_size = env, batch_size

    @torch.inference_mode()
    def __call__(self, images: list[torch.Tensor]) -> list[np.ndarray]:
        m = self.g.multiple
        groups = defaultdict(list)  # padded (H, W) -> indices: InstanceNorm sees no cross-image padding
        for i, img in enumerate(images):
            h, w = img.shape[-2:]
            groups[(h + (-h) % m, w + (-w) % m)].append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        for idx in groups.values():
            for start in range(0, len(idx), self.batch_size):
                part = idx[start: start + self.batch_size]
                x = torch.cat([cyclegan.pad_to_multiple(augment.to_unit(images[i])[None], m)[0] for i in part])
                x = x.to(self.env.device, non_blocking=True)
                if self.env.cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                with self.env.autocast():
                    y = self.g(x)
                y = augment.to_uint8(y).cpu().numpy()
                for j, i in enumerate(part):
                    h, w = images[i].shape[-2:]
                    out[i] = y[j, 0, :h, :w]
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
