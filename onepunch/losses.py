"""Losses shared by the GAN stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_g(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Generator's adversarial loss: lsgan (least squares) or hinge (SAGAN)."""
    return F.mse_loss(logits, torch.ones_like(logits)) if kind == "lsgan" else -logits.mean()


def gan_d(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Discriminator's loss on real and fake logits."""
    if kind == "lsgan":
        return 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the luminance of (B, 3, H, W) images."""
    grey = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device).view(1, 1, 3, 3)
    gx, gy = F.conv2d(grey, kx, padding=1), F.conv2d(grey, kx.transpose(2, 3), padding=1)
    return (gx.pow(2) + gy.pow(2) + 1e-6).sqrt()
