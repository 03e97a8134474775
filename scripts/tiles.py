"""How far tiled colorization is from the whole page: the seam error of `colorize --tile`.

    .venv/bin/python scripts/tiles.py --ckpt color.pt --pages DIR [--count 50] [--working-size 256] [--tile 128]

On pages small enough to colorize whole, the net's output at the working size is made whole (the reference) and
tiled: with each tile normalising and attending on its own statistics (`--tile-passes 0`, as before 2026-12), and
with the page's statistics gathered over the tiles in 1, 2 (the default) and 3 passes (each pass starts from the
statistics the one before gathered; what is left after them is the convolutions' view cut at tile borders). Reported: mean
CIEDE2000 against the whole-page output over the page and within the overlap bands where tiles meet (the seams),
and the mean largest 8-bit difference per page. `--pages`: a folder of line-art pages (PNG), e.g.
data/realdata/fluent/test1024/scan.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import metrics  # noqa: E402
from onepunch.inference import PageColorizer, _starts  # noqa: E402


def ciede(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lab = [metrics.rgb_to_lab(torch.from_numpy(x.copy()).permute(2, 0, 1)[None].double() / 255) for x in (a, b)]
    return metrics.ciede2000(*lab)[0].numpy()


def seams(h: int, w: int, tile: int, overlap: int) -> np.ndarray:
    """bool (h, w): the overlap bands where neighbouring tiles are blended."""
    band = np.zeros((h, w), bool)
    for n, axis in ((h, 0), (w, 1)):
        for s in _starts(max(n, tile), tile, overlap)[1:]:
            sl = slice(s, min(n, s + overlap))
            if axis == 0:
                band[sl] = True
            else:
                band[:, sl] = True
    return band


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--pages", type=Path, required=True)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--working-size", type=int, default=256)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=32)
    args = ap.parse_args()
    torch.manual_seed(0)
    whole = PageColorizer(args.ckpt, device="cpu", working_size=args.working_size)
    kinds = {"each tile its own (before)": 0, "gathered over the tiles, 1 pass": 1,
             "gathered over the tiles, 2 passes (default)": 2, "gathered over the tiles, 3 passes": 3}
    tiled = {k: PageColorizer(args.ckpt, device="cpu", working_size=args.working_size, tile=args.tile,
                              overlap=args.overlap, tile_passes=c) for k, c in kinds.items()}
    sums = {k: np.zeros(3) for k in kinds}
    paths = sorted(args.pages.glob("*.png"))[: args.count]
    for path in paths:
        work = whole.working_copy(np.asarray(Image.open(path).convert("L")))
        ref = whole.color_at_working_size([work])[0]
        band = seams(*work.shape, args.tile, args.overlap)
        for k, c in tiled.items():
            out = c.color_at_working_size([work])[0]
            d = ciede(out, ref)
            sums[k] += (d.mean(), d[band].mean(), np.abs(out.astype(int) - ref).max())
    print(f"{len(paths)} pages of {args.pages}, working size {args.working_size}, tile {args.tile}, overlap "
          f"{args.overlap}; CIEDE2000 against the whole page's output:\n")
    print("| tiles share | whole page | seams (overlap bands) | largest 8-bit difference |")
    print("| --- | --- | --- | --- |")
    for k, (page, seam, mx) in sums.items():
        print(f"| {k} | {page / len(paths):.2f} | {seam / len(paths):.2f} | {mx / len(paths):.0f} |")


if __name__ == "__main__":
    main()
