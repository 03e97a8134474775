"""A grid of `--follow` on the same people in other colors (make realdata: data/realdata/<set>/tones/): per row, the
colored reference (another person in the target's colors), the target's line art, its automatic colors, its colors
following the reference, and the truth. docs/realdata.md, "References".

    .venv/bin/python scripts/follow_grid.py docs/realdata-follow.png openmoji:3 fluent:8 emojione:4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import grids  # noqa: E402

from onepunch.inference import PageColorizer  # noqa: E402

SIDE = 160
COLUMNS = ("reference", "line art", "automatic", "following", "truth")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("rows", nargs="+", help="SET:K: the K-th person of the set's tones/ (in name order)")
    ap.add_argument("--tone", default="3-medium-dark", help="the tone the reference and the truth share")
    args = ap.parse_args()
    tiles = []
    for row in args.rows:
        name, k = row.split(":")
        tones = Path("data/realdata") / name / "tones"
        designs = sorted(p.name for p in (tones / "scan").glob("*.png"))
        d, other = designs[int(k)], designs[(int(k) + 1) % len(designs)]
        c = PageColorizer(f"runs/realdata-{name}/train-color/color.pt", device="cpu")
        scan = Image.open(tones / "scan" / d).convert("L")
        ref_color = Image.open(tones / "color" / args.tone / other).convert("RGB")
        ref = c.reference(Image.open(tones / "scan" / other), ref_color)
        tiles.append([ref_color, scan.convert("RGB"), c.colorize(scan), c.colorize(scan, follow=ref),
                      Image.open(tones / "color" / args.tone / d).convert("RGB")])
    grids.save(args.out, COLUMNS, tiles, SIDE)


if __name__ == "__main__":
    main()
