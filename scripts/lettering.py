"""Do speech bubbles and their text stay black on white? `colorize --lettering keep` against `off`, measured.

    .venv/bin/python scripts/lettering.py --ckpt runs/demo/train-color/color.pt [--pages 20] [--grid docs/lettering.png]

Pages: the sample's manga pages (line art and toned scans, alternately) with speech bubbles lettered in a real font
(Pillow's own TrueType font), 1000 x 1400 px (onepunch.sample.draw_lettered_page), whose bubbles are known. Reported
inside the bubbles: SSIM of the output's luminance against the page's, and the mean chroma (a*b* distance from grey;
0 is black, white and grey); outside them, the share of the page that was kept as it is (text found where there is
none); on pages without lettering, the same share. `--grid`: before/after crops of a few bubbles as a PNG.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import PageColorizer, lettering, metrics  # noqa: E402
from onepunch.sample import draw_lettered_page, draw_page  # noqa: E402


def chroma(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    return np.hypot(lab[..., 1], lab[..., 2])


def ssim_inside(page: np.ndarray, out: np.ndarray, mask: np.ndarray) -> float:
    """SSIM of the output's luminance against the page's over the mask's box, outside the mask taken as the page."""
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    lum = np.asarray(Image.fromarray(out).convert("L"))
    lum = np.where(mask, lum, page)[box]
    a, b = (torch.from_numpy(x.astype(np.float32) / 255)[None, None] for x in (page[box], lum))
    return float(metrics.ssim(a, b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--working-size", type=int, default=512)
    ap.add_argument("--grid", type=Path)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    runs = {m: PageColorizer(args.ckpt, device="cpu", working_size=args.working_size, lettering=m)
            for m in ("off", "keep")}
    sums = {m: np.zeros(3) for m in runs}
    crops = []
    for i in range(args.pages):
        page, bubbles = draw_lettered_page(rng, 1000, 1400, lineart=i % 2 == 0)
        for m, c in runs.items():
            out = np.asarray(c.colorize(Image.fromarray(page)))
            kept = np.all(out == page[..., None], 2)
            sums[m] += (ssim_inside(page, out, bubbles), chroma(out)[bubbles].mean(), (kept & ~bubbles).mean())
            if i < 3 and args.grid:
                crops.append((i, m, page, out, bubbles))
    clean = [draw_page(rng, 1000, 1400, lineart=i % 2 == 0) for i in range(args.pages)]
    false = np.mean([lettering.find(p).mean() for p in clean])
    print(f"{args.pages} lettered pages, 1000 x 1400, working size {args.working_size}, {args.ckpt}:\n")
    print("| lettering | luminance SSIM in bubbles | chroma in bubbles (a*b*) | page outside bubbles kept |")
    print("| --- | --- | --- | --- |")
    for m, (ssim, ab, kept) in sums.items():
        print(f"| {m} | {ssim / args.pages:.3f} | {ab / args.pages:.2f} | {kept / args.pages:.2%} |")
    print(f"\npages without lettering ({args.pages}): {false:.2%} of the page taken for lettering")
    if args.grid:
        grid(crops, args.grid)


def grid(crops, path: Path) -> None:
    """Rows of (page, off, keep) crops around the first bubble of each page."""
    rows = []
    for i in sorted({c[0] for c in crops}):
        page, bubbles = next(c[2] for c in crops if c[0] == i), next(c[4] for c in crops if c[0] == i)
        n, labels = cv2.connectedComponents(bubbles.astype(np.uint8))
        ys, xs = np.nonzero(labels == 1)
        y0, y1 = max(0, ys.min() - 60), min(page.shape[0], ys.max() + 60)
        x0, x1 = max(0, xs.min() - 60), min(page.shape[1], xs.max() + 60)
        tiles = [np.repeat(page[y0:y1, x0:x1, None], 3, 2)]
        tiles += [c[3][y0:y1, x0:x1] for c in crops if c[0] == i]
        rows.append([Image.fromarray(t).resize((360, round(360 * (y1 - y0) / (x1 - x0)))) for t in tiles])
    w, h = 3 * 360 + 40, sum(r[0].height for r in rows) + 10 * len(rows) + 30
    sheet = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(sheet)
    for j, label in enumerate(("page", "--lettering off", "--lettering keep (default)")):
        d.text((10 + j * 370, 6), label, fill="black", font=ImageFont.load_default(16))
    y = 30
    for r in rows:
        for j, t in enumerate(r):
            sheet.paste(t, (10 + j * 370, y))
        y += r[0].height + 10
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"grid: {path}")


if __name__ == "__main__":
    main()
