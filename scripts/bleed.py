"""Color bleed across ink lines at full resolution: the page-level step alone, measured against the truth.

    .venv/bin/python scripts/bleed.py [--pages 12] [--sizes 1024,2048] [--working-size 512]

The colorizer's own errors are taken out: its output is replaced by an oracle, the true colors downscaled to the
working size, which is the best a net at that size could give. What is left is what the way back to full size does:
colors that cross ink lines (bilinear chroma blind to the lines) and darkened or lightened lines. Pages are the
embedded sample's drawings (color + its true line art) drawn at each size; the input page is the line art.

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
from onepunch.inference import transfer_detail  # noqa: E402
from onepunch.sample import draw_color  # noqa: E402


def errors(out: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel CIEDE2000 and chroma error (distance in a*b*) of two uint8 (H, W, 3) RGB images."""
    lab = [metrics.rgb_to_lab(torch.from_numpy(x).permute(2, 0, 1)[None].double() / 255) for x in (out, truth)]
    ab = (lab[0][0, 1:] - lab[1][0, 1:]).norm(dim=0)
    return metrics.ciede2000(*lab)[0].numpy(), ab.numpy()


def measure(pages: int, size: int, working: int, methods: list[str]) -> dict:
    rng = np.random.default_rng(0)
    sums = {m: np.zeros(4) for m in methods}
    for _ in range(pages):
        w, h = size * 2 // 3, size
        truth, lines = draw_color(rng, w, h)
        scale = working / max(w, h)
        small = (max(1, round(w * scale)), max(1, round(h * scale)))
        work = np.asarray(imageio.resize_to(Image.fromarray(lines), small))
        oracle = np.asarray(imageio.resize_to(Image.fromarray(truth), small))
        near = cv2.dilate((lines < 128).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # within 3 px of ink
        for m in methods:
            d, ab = errors(transfer_detail(lines, work, oracle, chroma=m), truth)
            sums[m] += (d[near].mean(), ab[near].mean(), d[~near].mean(), d.mean())
    return {k: v / pages for k, v in sums.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--working-size", type=int, default=512)
    ap.add_argument("--methods", default="bilinear,inward")
    args = ap.parse_args()
    methods = args.methods.split(",")
    print("| page height | chroma | CIEDE2000 within 3 px of lines | a*b* error there | CIEDE2000 flat | whole page |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in map(int, args.sizes.split(",")):
        for m, (near, ab, flat, whole) in measure(args.pages, size, args.working_size, methods).items():
            print(f"| {size} | {m} | {near:.2f} | {ab:.2f} | {flat:.2f} | {whole:.2f} |", flush=True)


if __name__ == "__main__":
    main()
