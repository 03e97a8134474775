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


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], (N, 3, H, W) -> CIE Lab (D65): L in [0, 100], a and b roughly in [-128, 127]."""
    rgb = rgb.float().clamp(0, 1)
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                      [0.2126729, 0.7151522, 0.0721750],
                      [0.0193339, 0.1191920, 0.9503041]], device=rgb.device)
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    xyz = xyz / torch.tensor([0.95047, 1.0, 1.08883], device=rgb.device).view(1, 3, 1, 1)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def lab_unit(rgb: torch.Tensor) -> torch.Tensor:
    """Lab scaled to about [0, 1] per channel (L / 100, (a, b + 128) / 255), for PSNR/SSIM in Lab."""
    lab = rgb_to_lab(rgb)
    return torch.stack([lab[:, 0] / 100, (lab[:, 1] + 128) / 255, (lab[:, 2] + 128) / 255], 1)


def color_report(out: torch.Tensor, target: torch.Tensor, prefix: str) -> dict:
    """L1, PSNR, SSIM in RGB and in Lab, plus mean CIE76 delta E, of [0, 1] RGB images."""
    lo, lt = lab_unit(out), lab_unit(target)
    de = (rgb_to_lab(out) - rgb_to_lab(target)).pow(2).sum(1).sqrt().mean()
    return {f"{prefix}l1": float((out - target).abs().mean()), f"{prefix}psnr": psnr(out, target),
            f"{prefix}ssim": ssim(out, target), f"{prefix}lab_l1": float((lo - lt).abs().mean()),
            f"{prefix}lab_psnr": psnr(lo, lt), f"{prefix}lab_ssim": ssim(lo, lt), f"{prefix}delta_e": float(de)}
