"""Color as a distribution over quantized a*b*, after Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016).

A net that regresses color with L1 or L2 predicts the median or mean of the plausible colors, a desaturated sepia. The
`lab` head instead predicts, per pixel, the lightness L* (regressed) and a probability over BINS a*b* cells of GRID
units (those sRGB reaches); it is trained with cross-entropy against a soft encoding of the true a*b* (bilinear
over the cells around it), each pixel weighted by how rare its color is (`rebalance`), and read out as the annealed mean
(softmax(log p / T), T < 1: between the mean and the mode). Everything here is plain tensor math: the readout is
part of the net's forward, so colorize, tiles and ONNX see RGB as before.
"""

from __future__ import annotations

import torch

GRID = 10.0
"""a*b* cell size."""
RANGE = 110.0
"""Cells cover a*, b* in [-RANGE, RANGE]."""
TEMPERATURE = 0.38
"""Annealed-mean readout temperature (Zhang et al.'s choice)."""
REBALANCE = 0.5
"""Class rebalancing: weights 1 / ((1 - REBALANCE) p + REBALANCE / Q) for the smoothed color prior p."""
NEUTRAL_ODDS = 6.0
"""The untrained head's logit of the grey cell over the others: a new net starts with the scan's own greys."""


def lightness(scan: torch.Tensor) -> torch.Tensor:
    """L* / 100 of a grey scan in [-1, 1], (B, 1, H, W)."""
    y = ((scan.float() + 1) / 2).clamp(0, 1)
    lin = torch.where(y > 0.04045, ((y + 0.055) / 1.055) ** 2.4, y / 12.92)
    f = torch.where(lin > (6 / 29) ** 3, lin.clamp_min(1e-12) ** (1 / 3), lin / (3 * (6 / 29) ** 2) + 4 / 29)
    return (116 * f - 16) / 100


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65), (N, 3, H, W) -> sRGB in [0, 1] (clipped): the inverse of metrics.rgb_to_lab."""
    L, a, b = lab.unbind(1)
    fy = (L + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200
    d = 6 / 29

    def finv(f):
        return torch.where(f > d, f**3, 3 * d * d * (f - 4 / 29))

    xyz = torch.stack([finv(fx) * 0.95047, finv(fy), finv(fz) * 1.08883], 1)
    m = torch.tensor([[3.2404542, -1.5371385, -0.4985314],
                      [-0.9692660, 1.8760108, 0.0415560],
                      [0.0556434, -0.2040259, 1.0572252]], device=lab.device, dtype=lab.dtype)
    lin = torch.einsum("ij,njhw->nihw", m, xyz).clamp(0, 1)
    return torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(1e-12) ** (1 / 2.4) - 0.055, 12.92 * lin)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    from onepunch.metrics import rgb_to_lab as exact

    return exact(rgb)


def cells() -> torch.Tensor:
    """(Q, 2) a*b* centres of the cells some sRGB color falls in (sampled on a 64-level cube): the classes."""
    levels = torch.linspace(0, 1, 64)
    cube = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij"), 0).reshape(1, 3, -1, 1)
    ab = rgb_to_lab(cube)[0, 1:, :, 0].T  # (64^3, 2)
    n = int(2 * RANGE / GRID) + 1
    idx = ((ab.clamp(-RANGE, RANGE) + RANGE) / GRID).round().long()
    used = torch.zeros(n * n, dtype=torch.bool)
    used[idx[:, 0] * n + idx[:, 1]] = True
    k = used.nonzero()[:, 0]
    return torch.stack([k // n, k % n], 1).float() * GRID - RANGE


def _grid_index(centres: torch.Tensor) -> torch.Tensor:
    """(n * n,) class of each cell of the full a*b* grid, -1 where sRGB never falls."""
    n = int(2 * RANGE / GRID) + 1
    ij = ((centres + RANGE) / GRID).round().long()
    table = torch.full((n * n,), -1, dtype=torch.long, device=centres.device)
    table[ij[:, 0] * n + ij[:, 1]] = torch.arange(len(centres), device=centres.device)
    return table


def soft_targets(ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """True a*b* (B, 2, H, W) -> (B, Q, H, W) soft encoding over the cells: bilinear over the four cells around each
    color (those sRGB reaches, renormalised), a smooth encoding that costs O(pixels), unlike a nearest-k search."""
    b, _, h, w = ab.shape
    n = int(2 * RANGE / GRID) + 1
    table = _grid_index(centres.to(ab.device))
    x = ((ab.float().clamp(-RANGE, RANGE) + RANGE) / GRID)  # grid units
    lo = x.floor().clamp(0, n - 2)
    frac = x - lo
    lo = lo.long()
    out = torch.zeros(b, len(centres), h, w, device=ab.device)
    total = torch.zeros(b, 1, h, w, device=ab.device)
    for da in (0, 1):
        for db in (0, 1):
            wgt = (frac[:, :1] if da else 1 - frac[:, :1]) * (frac[:, 1:] if db else 1 - frac[:, 1:])
            cls = table[(lo[:, :1] + da) * n + lo[:, 1:] + db]  # (B, 1, H, W)
            ok = cls >= 0
            out.scatter_add_(1, cls.clamp_min(0), wgt * ok)
            total += wgt * ok
    lost = total[:, 0] < 1e-6  # all four cells out of gamut (rounding at the edge): the nearest class
    if lost.any():
        near = torch.cdist(ab.permute(0, 2, 3, 1)[lost].float(), centres.to(ab.device)).argmin(1)
        idx = lost.nonzero(as_tuple=True)
        out[idx[0], near, idx[1], idx[2]] = 1
        total[:, 0][lost] = 1
    return out / total


def prior(ab: torch.Tensor, centres: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Empirical distribution (Q,) of the cells over true a*b* (N, 2, H, W), smoothed by the soft encoding; each
    pixel counted by `weight` (N, 1, H, W) if given."""
    t = soft_targets(ab, centres)
    if weight is None:
        return t.mean((0, 2, 3))
    return (t * weight).sum((0, 2, 3)) / weight.sum().clamp_min(1e-6)


def rebalance(p: torch.Tensor, mix: float = REBALANCE) -> torch.Tensor:
    """Per-cell loss weights (Q,) from a color prior: rare colors count more (mix 1: all the same); expectation under
    p is 1."""
    w = 1 / ((1 - mix) * p + mix / len(p))
    return w / (p * w).sum()


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """(B, Q, H, W) logits -> (B, 2, H, W) a*b*: the mean of softmax(logits / T) (log p / T up to a constant)."""
    p = torch.softmax(logits.float() / temperature, 1)
    return torch.einsum("bqhw,qc->bchw", p, centres.to(p))


INK_FADE = 20.0
"""`ink_l`: colors fade in over this many L* above it."""


def ink_fade(l_star: torch.Tensor, ink_l: float) -> torch.Tensor:
    """How much color a pixel of lightness L* (0-100) carries when nothing darker than `ink_l` has any: 0 on ink,
    1 from ink_l + INK_FADE up. The same fade weighs the targets and the prior in training and the readout."""
    return ((l_star - ink_l) / INK_FADE).clamp(0, 1)


def chroma_targets(lab: torch.Tensor, size: tuple, ink_l: float = 0.0) -> tuple:
    """True Lab (B, 3, H, W) -> (the true a*b* averaged over each cell of the logits' `size` (B, 2, h, w), each
    cell's weight (B, h, w) or None). `ink_l` > 0: pixels darker than that L* (ink_fade) are left out of the
    averages, and a cell counts by its share of the rest: black has no color to learn, and a fill's cell that
    straddles its line would otherwise learn the fill's color paled by the ink's grey."""
    F = torch.nn.functional
    if ink_l <= 0:
        return F.adaptive_avg_pool2d(lab[:, 1:], size), None
    w = ink_fade(lab[:, :1], ink_l)
    cell = F.adaptive_avg_pool2d(w, size)
    return F.adaptive_avg_pool2d(lab[:, 1:] * w, size) / cell.clamp_min(1e-6), cell[:, 0]


def loss(raw: tuple, color: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor, ink_l: float = 0.0) -> tuple:
    """The lab head's losses against true RGB in [-1, 1]: (L1 of L* / 100 at full size, rebalanced cross-entropy
    over cells at the logits' size, against the true colors of each cell: chroma_targets)."""
    light, logits = raw
    lab = rgb_to_lab((color.float() + 1) / 2)
    l1 = (light.float() - lab[:, :1] / 100).abs().mean()
    small, cell = chroma_targets(lab, logits.shape[-2:], ink_l)
    target = soft_targets(small, centres)                           # (B, Q, h, w)
    pixel_w = weights.to(target)[target.argmax(1)]                  # (B, h, w): its most likely cell's weight
    ce = -(target * torch.log_softmax(logits.float(), 1)).sum(1) * pixel_w
    if cell is None:
        return l1, ce.mean()
    return l1, (ce * cell).sum() / cell.sum().clamp_min(1.0)
