"""Augmentations driven by an explicit torch.Generator, so a batch is a pure function of its seed (exact resume).

Crops are square and aspect-preserving (a square of 60-100% of the shorter side, then resized): nothing is squashed.
Rotation and perspective fill with white, the paper colour of both domains.
"""

from __future__ import annotations

import torch


def _tv():
    """torchvision's functional transforms, imported on first use: importing torchvision costs ~4 s on a small CPU
    (it pulls in torch._dynamo), which commands that never augment (status, errors) should not pay."""
    from torchvision.transforms.v2 import InterpolationMode, functional

    return functional, InterpolationMode


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def center_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """The central square of the shorter side, resized to size x size (uint8 C,H,W in and out)."""
    h, w = img.shape[-2:]
    s = min(h, w)
    img = img[..., (h - s) // 2: (h - s) // 2 + s, (w - s) // 2: (w - s) // 2 + s]
    return _tv()[0].resize(img, [size, size], antialias=True)


def train_view(img: torch.Tensor, size: int, g: torch.Generator, *, min_crop: float = 0.6, rotate: float = 10.0,
               perspective_p: float = 0.3, flip: bool = True) -> torch.Tensor:
    """A random square crop, resized to size, flipped, slightly rotated and warped (uint8 C,H,W in and out)."""
    F, InterpolationMode = _tv()
    h, w = img.shape[-2:]
    side = max(1, int(min(h, w) * _uniform(g, min_crop, 1.0)))
    y = int(torch.randint(0, h - side + 1, (), generator=g))
    x = int(torch.randint(0, w - side + 1, (), generator=g))
    img = F.resize(img[..., y: y + side, x: x + side], [size, size], antialias=True)
    if flip and torch.rand((), generator=g) < 0.5:
        img = F.horizontal_flip(img)
    if rotate:
        img = F.rotate(img, _uniform(g, -rotate, rotate), interpolation=InterpolationMode.BILINEAR, fill=255)
    if torch.rand((), generator=g) < perspective_p:
        d = 0.15 * size  # each corner moves inwards by up to 15% of the side, as torchvision's RandomPerspective
        start = [[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]]
        end = []
        for px, py in start:
            dx, dy = _uniform(g, 0, d), _uniform(g, 0, d)
            end.append([int(px + dx if px == 0 else px - dx), int(py + dy if py == 0 else py - dy)])
        img = F.perspective(img, start, end, interpolation=InterpolationMode.BILINEAR, fill=255)
    return img


def to_unit(img: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return img.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def joint_view(scan: torch.Tensor, color: torch.Tensor, size: int, g: torch.Generator, **kw) -> tuple:
    """The same random crop, flip, rotation and warp for a (1,H,W) scan and its (3,H,W) color: pairs stay aligned."""
    both = train_view(torch.cat([scan, color]), size, g, **kw)
    return both[:1], both[1:]


def degrade(scan: torch.Tensor, g: torch.Generator, p: float = 0.25) -> torch.Tensor:
    """Degradations of the input scan only (never the color target): line-width jitter, Gaussian blur, JPEG
    artefacts, erased patches (paper white). Each with probability p. uint8 (1,H,W) in and out."""
    import io

    import cv2
    import numpy as np
    from PIL import Image

    a = scan[0].numpy().copy()
    if torch.rand((), generator=g) < p:  # dark lines on white: erode thickens them, dilate thins them
        op = cv2.erode if torch.rand((), generator=g) < 0.5 else cv2.dilate
        a = op(a, np.ones((2, 2), np.uint8))
    if torch.rand((), generator=g) < p:
        a = cv2.GaussianBlur(a, (0, 0), _uniform(g, 0.3, 1.2))
    if torch.rand((), generator=g) < p:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=int(_uniform(g, 30, 90)))
        a = np.asarray(Image.open(buf)).copy()
    if torch.rand((), generator=g) < p:
        h, w = a.shape
        eh, ew = max(1, int(h * _uniform(g, 0.1, 0.3))), max(1, int(w * _uniform(g, 0.1, 0.3)))
        y, x = int(torch.randint(0, h - eh + 1, (), generator=g)), int(torch.randint(0, w - ew + 1, (), generator=g))
        a[y: y + eh, x: x + ew] = 255
    return torch.from_numpy(a)[None]


def lines_only(scan: torch.Tensor, g: torch.Generator, lo: float = 60, hi: float = 140) -> torch.Tensor:
    """Keep the lines, drop the tones: pixels lighter than a random threshold in [lo, hi] become paper white."""
    t = _uniform(g, lo, hi)
    return torch.where(scan.float() < t, scan, torch.full_like(scan, 255))
