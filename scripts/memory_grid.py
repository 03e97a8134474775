"""A grid of colors from the training set (onepunch/memory.py) on the real sets' held-out true line art: per row,
the line art, the net's colors (`memory="off"`), the colors with the memory (the default), and the truth.
docs/realdata.md, "Colors from the training set".

    .venv/bin/python scripts/memory_grid.py docs/realdata-memory.png fluent:5 iconpark:40 openmoji:7 emojione:12

The colorizers are runs/realdata-<set>/train-color/color.pt (train-color keeps the memory in them); `--ckpt-dir DIR`
reads DIR/color-realdata-<set>.pt instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import grids  # noqa: E402

from onepunch import pairs  # noqa: E402
from onepunch.inference import PageColorizer  # noqa: E402

SIDE = 160
COLUMNS = ("line art", "net (memory off)", "memory (default)", "truth")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("rows", nargs="+", help="SET:K: the K-th held-out pair of the set's test/ (in name order)")
    ap.add_argument("--ckpt-dir", type=Path)
    args = ap.parse_args()
    tiles = []
    for row in args.rows:
        name, k = row.split(":")
        ckpt = (args.ckpt_dir / f"color-realdata-{name}.pt" if args.ckpt_dir else
                Path(f"runs/realdata-{name}/train-color/color.pt"))
        on, off = PageColorizer(ckpt, device="cpu"), PageColorizer(ckpt, device="cpu", memory="off")
        if on.memory is None:
            sys.exit(f"{ckpt} has no memory: run train-color again (make realdata-table)")
        scan, color = pairs.load(pairs.find(f"data/realdata/{name}/test")[int(k)])
        page = Image.fromarray(scan, "L")
        tiles.append([page.convert("RGB"), off.colorize(page), on.colorize(page), Image.fromarray(color)])
    grids.save(args.out, COLUMNS, tiles, SIDE)


if __name__ == "__main__":
    main()
