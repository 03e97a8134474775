"""Screentone: does it turn into colored noise? `colorize --descreen on` against `off`, measured.

    .venv/bin/python scripts/screentone.py --ckpt runs/demo/train-color/color.pt [--pages 12] [--grid docs/screentone.png]

Pages: the sample's line-art pages with fields of printed dot tone (onepunch.sample.draw_toned_page: 45-degree or
square screens, periods of 4 to 9 px, 25-80% grey), 1000 x 1400 px, whose tone fields are known. Reported inside them
(a few px in from their outlines): chroma noise, the mean over pixels of the local (5 x 5) standard deviation of a*
and b* (0: the field's color is smooth, however its lightness varies), and whether the tone is kept in the output's
lightness: the correlation of the output's fine lightness detail with the page's (1: every dot where it was).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import PageColorizer  # noqa: E402
from onepunch.sample import draw_toned_page  # noqa: E402


def local_std(x: np.ndarray, k: int = 5) -> np.ndarray:
    m = cv2.boxFilter(x, -1, (k, k))
    return np.sqrt(np.maximum(cv2.boxFilter(x * x, -1, (k, k)) - m * m, 0))


def measure(page: np.ndarray, out: np.ndarray, field: np.ndarray) -> tuple[float, float]:
    lab = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    noise = (local_std(lab[..., 1]) + local_std(lab[..., 2]))[field].mean() / 2
    page_l = cv2.cvtColor(np.repeat(page[..., None], 3, 2).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0]
    fine = [x - cv2.GaussianBlur(x, (0, 0), 4) for x in (page_l, lab[..., 0])]
    kept = np.corrcoef(fine[0][field], fine[1][field])[0, 1]
    return float(noise), float(kept)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--working-sizes", default="512,1024")
    ap.add_argument("--grid", type=Path)
    args = ap.parse_args()
    pages = [draw_toned_page(np.random.default_rng(i)) for i in range(args.pages)]
    fields = [cv2.erode(f.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0 for _, f in pages]
    print(f"{args.pages} toned pages, 1000 x 1400, {args.ckpt}:\n")
    print("| working size | descreen | chroma noise in tone (a\\*b\\* local std) | tone kept in lightness (correlation) |")
    print("| --- | --- | --- | --- |")
    crops = []
    for ws in map(int, args.working_sizes.split(",")):
        for d in ("off", "on"):
            c = PageColorizer(args.ckpt, device="cpu", working_size=ws, descreen=d)
            res = []
            for i, ((page, _), field) in enumerate(zip(pages, fields, strict=True)):
                out = np.asarray(c.colorize(Image.fromarray(page)))
                res.append(measure(page, out, field))
                if i == 0 and ws == int(args.working_sizes.split(",")[-1]):
                    crops.append(out)
            noise, kept = np.mean(res, 0)
            print(f"| {ws} | {d} | {noise:.2f} | {kept:.3f} |", flush=True)
    if args.grid:
        page, field = pages[0]
        _, labels, stats, centroids = cv2.connectedComponentsWithStats(field.astype(np.uint8))
        big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))  # the largest field, centred
        cx, cy = (int(v) for v in centroids[big])
        y0, x0 = max(0, cy - 150), max(0, cx - 150)
        tiles = [np.repeat(page[..., None], 3, 2)] + crops
        font = ImageFont.load_default(16)
        sheet = Image.new("RGB", (3 * 310 + 10, 300 + 40), "white")
        d = ImageDraw.Draw(sheet)
        for j, (t, label) in enumerate(zip(tiles, ("page", "--descreen off", "--descreen on (default)"), strict=True)):
            sheet.paste(Image.fromarray(t[y0:y0 + 300, x0:x0 + 300]), (10 + j * 310, 35))
            d.text((10 + j * 310, 8), label, fill="black", font=font)
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.grid)
        print(f"\ngrid: {args.grid}")


if __name__ == "__main__":
    main()
