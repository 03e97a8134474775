"""The region pooling's module constants (onepunch/regions.py: AGREE, PAPER_CHROMA, SHADE, INK_L) tried on held-out
true pairs, automatic colors only: PSNR, CIEDE2000 and colorfulness against the truth, one line per setting.

    .venv/bin/python scripts/region_knobs.py runs/realdata-openmoji/train-color/color.pt data/realdata/openmoji/test \\
        100 AGREE=0 AGREE=1 AGREE=4

Settings apply in order and stay set (AGREE=1 then PAPER_CHROMA=15 tries both together); `memory.VOTES=5` or
`follow.KEYED=0` sets another module's (scripts/knobs.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import knobs  # noqa: E402

from onepunch import metrics, pairs  # noqa: E402
from onepunch.inference import PageColorizer  # noqa: E402


def main(ckpt: str, folder: str, n: int, settings: list[str]) -> None:
    items = [pairs.load(p) for p in pairs.find(folder)[:n]]
    for spec in settings:
        knobs.apply(spec.split(","))
        c = PageColorizer(ckpt, device="cpu")
        rows = []
        for scan, truth in items:
            out, t = metrics.unit(np.asarray(c.colorize(Image.fromarray(scan, "L")))), metrics.unit(truth)
            rows.append((metrics.psnr(out, t), float(metrics.ciede2000(metrics.rgb_to_lab(out),
                                                                        metrics.rgb_to_lab(t)).mean()),
                         float(metrics.colorfulness(out)[0])))
        psnr, de, cf = np.mean(rows, 0)
        print(f"{spec}: PSNR {psnr:.3f}  CIEDE2000 {de:.3f}  colorfulness {cf:.1f}  ({len(items)} pairs)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:])
