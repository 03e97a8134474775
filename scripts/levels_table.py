"""Levels on the scan generator's output, measured on every held-out pair of the real sets (make realdata; the
generators of make realdata-table): PSNR / SSIM against the true ink drawings for clipping levels (the default: at or
above the paper level white, at or below the ink level black, the rest as made) and stretching ones (the image
editors' levels: the values between the two points stretched to 0-255), next to greyscale. docs/stages.md, "Levels".

    .venv/bin/python scripts/levels_table.py fluent emojione openmoji iconpark
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import metrics, train  # noqa: E402
from onepunch.inference import luma  # noqa: E402
from onepunch.scanners import GeneratorScanner, level  # noqa: E402

CLIPS = [(255, 0), (180, 75), (200, 75), (220, 75), (180, 40), (180, 20)]
STRETCHES = [(180, 75), (200, 60), (220, 40), (230, 60), (240, 20), (250, 75)]


def stretch(scans: np.ndarray, paper: int, ink: int) -> np.ndarray:
    return np.clip((scans.astype(np.float32) - ink) * 255 / (paper - ink) + 0.5, 0, 255).astype(np.uint8)


def score(scans: np.ndarray, truth: np.ndarray) -> str:
    """Mean PSNR / SSIM over the pairs (all of a size, so SSIM over the batch is the mean of theirs)."""
    a, b = (torch.cat([metrics.unit(x) for x in images]) for images in (scans, truth))
    return f"{metrics.psnr(a, b):.2f} / {metrics.ssim(a, b):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sets", nargs="+")
    args = ap.parse_args()
    rows: dict[str, list[str]] = {}
    for name in args.sets:
        test = Path(f"data/realdata/{name}/test")
        scanner = GeneratorScanner(f"runs/realdata-{name}/train-scan/scan.pt", train.Env(torch.device("cpu"), None),
                                   64)
        names = sorted(p.name for p in (test / "scan").glob("*.png"))
        colors = [np.asarray(Image.open(test / "color" / n).convert("RGB")) for n in names]
        truth = np.stack([np.asarray(Image.open(test / "scan" / n).convert("L")) for n in names])
        grey = [luma(Image.fromarray(c)) for c in colors]
        # Unlevelled (255, 0): every curve below starts from the generator's own values. Batched by size.
        raw = np.stack(scanner([torch.from_numpy(np.ascontiguousarray(c.transpose(2, 0, 1))) for c in colors]))
        rows.setdefault("greyscale", []).append(score(np.stack(grey), truth))
        for paper, ink in CLIPS:
            rows.setdefault(f"clip {paper} / {ink}", []).append(score(level(raw.copy(), (paper, ink)), truth))
        for paper, ink in STRETCHES:
            rows.setdefault(f"stretch {paper} / {ink}", []).append(score(stretch(raw, paper, ink), truth))
    print("| levels | " + " | ".join(args.sets) + " |\n| --- |" + " --- |" * len(args.sets))
    for label, cells in rows.items():
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
