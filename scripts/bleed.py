"""Color bleed across ink lines at full resolution: the page-level step alone, measured against the truth.

    .venv/bin/python scripts/bleed.py [--pages 12] [--sizes 1024,2048] [--working-size 512]
    .venv/bin/python scripts/bleed.py --pairs data/realdata/fluent/test1024 [--pages 200]

The colorizer's own errors are taken out: its output is replaced by an oracle, the true colors downscaled to the
working size, which is the best a net at that size could give. What is left is what the way back to full size does:
colors that cross ink lines (bilinear chroma blind to the lines) and darkened or lightened lines. Pages are the
embedded sample's drawings (color + its true line art) drawn at each size; the input page is the line art. With
`--pairs DIR` (a pairs folder: scan/ and color/, same names, e.g. the real sets' 1024 px test pairs from `make
realdata`) they are the first `--pages` pairs there, at their own size, the scan being the artist's line art.

Reported per chroma upsampling method (the "detail" transfer): mean CIEDE2000 against the truth within 3 px of ink
lines, the chroma part of the error there (distance in a*b*), CIEDE2000 in flat regions (farther than 3 px), and over
the page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import imageio, metrics  # noqa: E402
from onepunch.sample import draw_color  # noqa: E402
from onepunch.transfer import transfer_detail  # noqa: E402


def errors(out: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel CIEDE2000 and chroma error (distance in a*b*) of two uint8 (H, W, 3) RGB images."""
    lab = [metrics.rgb_to_lab(torch.from_numpy(x).permute(2, 0, 1)[None].double() / 255) for x in (out, truth)]
    ab = (lab[0][0, 1:] - lab[1][0, 1:]).norm(dim=0)
    return metrics.ciede2000(*lab)[0].numpy(), ab.numpy()


def drawn(pages: int, size: int):
    """(truth RGB, line art L) uint8 pages of the embedded sample's drawings, `size` px tall."""
    rng = np.random.default_rng(0)
    for _ in range(pages):
        yield draw_color(rng, size * 2 // 3, size)


def from_pairs(folder: Path, pages: int):
    """(truth RGB, scan L) of the first `pages` pairs of a pairs folder (sorted by name)."""
    for path in sorted((folder / "scan").glob("*.png"))[:pages]:
        yield (np.asarray(Image.open(folder / "color" / path.name).convert("RGB")),
               np.asarray(Image.open(path).convert("L")))


def measure(pairs, working: int, methods: list[str]) -> dict:
    sums, n = {m: np.zeros(4) for m in methods}, 0
    for truth, lines in pairs:
        h, w = lines.shape
        n += 1
        scale = working / max(w, h)
        small = (max(1, round(w * scale)), max(1, round(h * scale)))
        work = np.asarray(imageio.resize_to(Image.fromarray(lines), small))
        oracle = np.asarray(imageio.resize_to(Image.fromarray(truth), small))
        near = cv2.dilate((lines < 128).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # within 3 px of ink
        for m in methods:
            d, ab = errors(transfer_detail(lines, work, oracle, chroma=m), truth)
            sums[m] += (d[near].mean(), ab[near].mean(), d[~near].mean(), d.mean())
    return {k: v / n for k, v in sums.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--working-size", type=int, default=512)
    ap.add_argument("--methods", default="bilinear,inward")
    ap.add_argument("--pairs", type=Path, help="a pairs folder (scan/, color/) instead of the sample's drawings")
    args = ap.parse_args()
    methods = args.methods.split(",")
    if args.pairs and not (args.pairs / "scan").is_dir():
        sys.exit(f"--pairs: {args.pairs}/scan is not a folder (make realdata writes data/realdata/<set>/test1024)")
    print("| page height | chroma | CIEDE2000 within 3 px of lines | a*b* error there | CIEDE2000 flat | whole page |")
    print("| --- | --- | --- | --- | --- | --- |")
    sets = ([(f"{args.pairs.parent.name}/{args.pairs.name}", from_pairs(args.pairs, args.pages))] if args.pairs else
            [(size, drawn(args.pages, int(size))) for size in args.sizes.split(",")])
    for size, pairs in sets:
        for m, (near, ab, flat, whole) in measure(pairs, args.working_size, methods).items():
            print(f"| {size} | {m} | {near:.2f} | {ab:.2f} | {flat:.2f} | {whole:.2f} |", flush=True)


if __name__ == "__main__":
    main()
