"""Aligned (scan, color) pairs that a user already owns, in a folder: `scan/` and `color/` holding the same designs
under the same file names (the extension may differ), any depth below each. Read by build-pairs (`method = "folder"`
or `pairs_dir`, to train on them) and by eval (`real_pairs`, to measure on them). `make realdata` writes such folders.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onepunch import imageio
from onepunch.config import digest
from onepunch.errors import UserError
from onepunch.pages import IMAGE_EXTS, MAX_PIXELS


@dataclass(frozen=True)
class Pair:
    name: str  # the path below scan/ and color/, without extension
    scan: Path
    color: Path

    @property
    def key(self) -> str:
        """A webdataset-safe sample key (no dots or slashes), stable for a name."""
        return hashlib.sha1(self.name.encode()).hexdigest()[:16]


def _images(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root).with_suffix("")): p for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")}


def find(folder: str | Path) -> list[Pair]:
    """Every name present in both scan/ and color/, sorted; UserError when the folder is not a pairs folder or holds
    no pair."""
    folder = Path(folder)
    scans, colors = folder / "scan", folder / "color"
    if not scans.is_dir() or not colors.is_dir():
        raise UserError(f"{folder} is not a pairs folder: it needs scan/ and color/ subfolders with the same file names")
    a, b = _images(scans), _images(colors)
    names = sorted(set(a) & set(b))
    if not names:
        raise UserError(f"{folder}: no file name is in both scan/ ({len(a)} images) and color/ ({len(b)} images)")
    return [Pair(n, a[n], b[n]) for n in names]


def fingerprint(pairs: list[Pair]) -> str:
    """A cheap digest that changes when any file of the pairs changes (names, sizes, mtimes)."""
    return digest([[p.name, *(f"{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in (p.scan, p.color))]
                   for p in pairs])


def load(pair: Pair, max_side: int = 1 << 30) -> tuple[np.ndarray, np.ndarray]:
    """(scan uint8 H x W, color uint8 H x W x 3), decoded safely (imageio.decode) and resized alike; Reject when a
    file is bad or the two are not the same size."""
    scan, (sw, sh) = imageio.decode(pair.scan.read_bytes(), mode="L", max_side=max_side, max_pixels=MAX_PIXELS)
    color, (cw, ch) = imageio.decode(pair.color.read_bytes(), mode="RGB", max_side=max_side, max_pixels=MAX_PIXELS)
    if (sw, sh) != (cw, ch):
        raise imageio.Reject("size_mismatch", f"{pair.name}: scan {sw}x{sh}, color {cw}x{ch}")
    return np.asarray(scan), np.asarray(color)
