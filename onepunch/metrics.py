"""Image quality metrics that need no downloaded weights: PSNR and SSIM on [0, 1] tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio, dB, of images in [0, 1] (mean over the batch of per-image PSNR)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004; Gaussian window, K1=0.01, K2=0.03) of (N, C, H, W) images in [0, 1]."""
    a, b = a.float(), b.float()
    c = a.shape[1]
    x = torch.arange(window, dtype=torch.float32) - window // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).to(a.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(t):
        return F.conv2d(t, kernel, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())
