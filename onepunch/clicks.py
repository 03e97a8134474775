"""Hints as a person gives them, and whether the output obeys them: the measurement behind eval's clicked rows.

A person colors line art by clicking once in each shape with the color it should have. `clicks` makes those hints from
a true pair: one per enclosed region of the true line art (regions.py; at least MIN_AREA of the page) and, with
`fills`, one per solid black fill too (a shape inked black, which the color art may color), each at the shape's most
interior point, holding the truth's median color over the shape. `obedience` scores an output: the CIEDE2000 between
each hint's color and the output's median color over the hint's shape (lines left out).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from onepunch import metrics, regions

MIN_AREA = 0.002
"""Shapes smaller than this fraction of the page (0.2%: 131 px of a 256 px page) get no click: too small to aim at."""
RADIUS = 4
"""A click's radius in page pixels (the hints file's default), less where the shape is narrower."""
WITHIN = 5.0
"""A hint counts as obeyed when the output's median over its shape is within this CIEDE2000 of its color."""


def spots(scan: np.ndarray, fills: bool = False, gap: float | None = None) -> list[dict]:
    """Where a person clicks on line art (uint8 (H, W)): one spot per enclosed region of at least MIN_AREA of the
    page (and, with `fills`, per solid black fill), at the shape's most interior point, with its shape's label (in
    regions.shapes' numbering; `gap` as regions.find's), the flat indices of its pixels and whether it is enclosed
    as drawn (not only once gaps are shut): [{"x", "y", "radius", "region", "where", "drawn"}]."""
    found = regions.find(scan, gap=gap)
    labels, _ = regions.shapes(scan, found)
    big = np.bincount(labels.ravel(), minlength=labels.max() + 1) >= MIN_AREA * scan.size
    wanted = np.zeros_like(big)
    wanted[: found.count + 1] = found.enclosed()
    if fills:
        wanted[found.count + 1:] = True
    out = []
    flat_labels = labels.ravel()
    for r in np.nonzero(wanted & big)[0]:
        where = np.nonzero(flat_labels == r)[0]
        dist = cv2.distanceTransform((labels == r).astype(np.uint8), cv2.DIST_L2, 3).ravel()[where]
        best = int(np.argmax(dist))
        y, x = divmod(int(where[best]), scan.shape[1])
        out.append({"x": x + 0.5, "y": y + 0.5,
                    "radius": float(max(1, min(RADIUS, int(dist[best]) - 1))), "region": int(r), "where": where,
                    "drawn": found.split is None or r > found.count or not found.split[r]})
    return out


def median_color(color: np.ndarray, where: np.ndarray) -> list[int]:
    """The per-channel median of uint8 (H, W, 3) `color` over the flat pixel indices `where`, as 0-255 ints."""
    return [int(round(float(v))) for v in np.median(color.reshape(-1, 3)[where], 0)]


def clicks(scan: np.ndarray, color: np.ndarray, fills: bool = False) -> list[dict]:
    """One point hint per enclosed region of the true line art (uint8 (H, W)) and, with `fills`, per solid black
    fill, colored as the truth (uint8 (H, W, 3)) is there (per-channel median), with its shape's label (in
    regions.shapes' numbering): [{"x", "y", "color", "radius", "region"}]."""
    return [{"x": s["x"], "y": s["y"], "color": median_color(color, s["where"]), "radius": s["radius"],
             "region": s["region"]} for s in spots(scan, fills)]


def as_hints(points: list[dict]) -> list[dict]:
    """The hints file's form of `clicks` (without the shape labels)."""
    return [{k: v for k, v in p.items() if k != "region"} for p in points]


def obedience(out: np.ndarray, scan: np.ndarray, points: list[dict]) -> list[float]:
    """CIEDE2000 between each click's color and the output's (uint8 (H, W, 3)) median color over its shape of the
    line art `scan` (the one `clicks` was given)."""
    if not points:
        return []
    labels = regions.shapes(scan)[0].ravel()
    flat = out.reshape(-1, 3)
    got = np.stack([np.median(flat[labels == p["region"]], 0) for p in points])
    want = np.array([p["color"] for p in points], np.float64)

    def lab(a):
        return metrics.rgb_to_lab(torch.from_numpy(a.T.copy()).float()[None, :, :, None] / 255)
    return [float(v) for v in metrics.ciede2000(lab(got), lab(want)).flatten()]
