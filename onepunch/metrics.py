"""Image quality metrics that need no downloaded weights: PSNR, SSIM, Lab errors, CIEDE2000, colorfulness, line F1."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def unit(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB or (H, W) grey -> float (1, C, H, W) in [0, 1], what these metrics take (a copy: PIL's
    arrays are read-only)."""
    a = np.asarray(image)
    return torch.tensor(a[..., None] if a.ndim == 2 else a).permute(2, 0, 1)[None].float() / 255


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


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005) between (N, 3, ...) Lab tensors -> (N, ...)."""
    L1, a1, b1 = lab1.double().unbind(1)
    L2, a2, b2 = lab2.double().unbind(1)
    c_bar = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p)) % 360
    h2p = torch.rad2deg(torch.atan2(b2, a2p)) % 360
    chroma0 = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(chroma0, torch.zeros_like(dh), dh)
    d_l, d_c = L2 - L1, c2p - c1p
    d_h = 2 * torch.sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh) / 2)
    l_bar, cp_bar = (L1 + L2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = torch.where((h1p - h2p).abs() <= 180, hsum / 2, torch.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    h_bar = torch.where(chroma0, hsum, h_bar)
    rad = torch.deg2rad
    t = (1 - 0.17 * torch.cos(rad(h_bar - 30)) + 0.24 * torch.cos(rad(2 * h_bar))
         + 0.32 * torch.cos(rad(3 * h_bar + 6)) - 0.20 * torch.cos(rad(4 * h_bar - 63)))
    d_theta = 30 * torch.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / torch.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -torch.sin(rad(2 * d_theta)) * r_c
    x, y, z = d_l / s_l, d_c / s_c, d_h / s_h
    return torch.sqrt((x**2 + y**2 + z**2 + r_t * y * z).clamp_min(0))


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colorfulness of (N, 3, H, W) RGB in [0, 1], on their 0-255 scale: about 0 for grey,
    15 'slightly', 33 'moderately', 59 'quite', 82+ 'highly' colorful. -> (N,)."""
    r, g, b = (255 * rgb.double()).unbind(1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    std = torch.sqrt(rg.var(1, correction=0) + yb.var(1, correction=0))
    mean = torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return std + 0.3 * mean


def line_f1(lines: np.ndarray, out: np.ndarray, tolerance: int = 1) -> dict:
    """Line preservation: Canny edges of the input scan vs edges of the output's luma (uint8 HxW each), matched within
    `tolerance` px. Recall: input lines the output kept; precision: output edges that are input lines."""
    import cv2

    e_in, e_out = (cv2.Canny(cv2.GaussianBlur(x, (3, 3), 0), 50, 150) > 0 for x in (lines, out))
    kernel = np.ones((2 * tolerance + 1,) * 2, np.uint8)
    near_in = cv2.dilate(e_in.astype(np.uint8), kernel) > 0
    near_out = cv2.dilate(e_out.astype(np.uint8), kernel) > 0
    precision = float((e_out & near_in).sum() / max(1, e_out.sum())) if e_out.any() else 0.0
    recall = float((e_in & near_out).sum() / max(1, e_in.sum())) if e_in.any() else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"edge_precision": precision, "edge_recall": recall, "edge_f1": f1}
