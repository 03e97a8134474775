"""Tried and not kept (docs/realdata.md): a region's color from the net's pooled a*b* distribution (the mean of its
pixels' probabilities over the region, read out as the annealed mean at temperature T) instead of the mean of its
pixels' colors (regions.pool). Automatic colors on held-out true pairs, against the defaults:

    .venv/bin/python scripts/region_vote.py runs/realdata-iconpark/train-color/color.pt data/realdata/iconpark/test \\
        1000 0.2

Prints PSNR, CIEDE2000 and colorfulness (and its ratio to the truth's) of the input, the defaults and each T.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import metrics, pairs, regions  # noqa: E402
from onepunch.inference import PageColorizer  # noqa: E402

POOL = regions.pool
STATE: dict = {"T": None}


def voted_pool(color, grey, found=None, shade=regions.SHADE):
    """regions.pool with each enclosed region's a*b* from its pooled distribution (the logits kept by the net's
    readout: (1, Q, H/4, W/4) of the padded working copy)."""
    if STATE["T"] is None:
        return POOL(color, grey, found, shade)
    found = regions.find(grey) if found is None else found
    logits = STATE["logits"]
    size = (logits.shape[-2] * 4, logits.shape[-1] * 4)
    p = torch.nn.functional.interpolate(torch.softmax(logits.float(), 1), size=size, mode="bilinear",
                                        align_corners=False)[0, :, :grey.shape[0], :grey.shape[1]]
    n, core = found.count + 1, regions.interior(found)
    pm = regions._means(p.permute(1, 2, 0).numpy(), found.labels, core, n)  # (n, Q)
    z = np.log(np.maximum(pm, 1e-12)) / STATE["T"]
    w = np.exp(z - z.max(1, keepdims=True))
    ab = (w / w.sum(1, keepdims=True)) @ STATE["centres"]
    # pool itself, with the enclosed regions' a*b* replaced: its colors are the mean a*b* inside each region
    lab = regions.to_lab(color)
    inside = found.enclosed()[found.labels]
    lab[inside, 1:] = ab[found.labels][inside]
    return POOL(regions.to_rgb(lab), grey, found, shade)


def score(out: np.ndarray, truth: np.ndarray) -> tuple:
    o, t = metrics.unit(out), metrics.unit(truth)
    return (metrics.psnr(o, t), float(metrics.ciede2000(metrics.rgb_to_lab(o), metrics.rgb_to_lab(t)).mean()),
            float(metrics.colorfulness(o)[0]), float(metrics.colorfulness(t)[0]))


def main(ckpt: str, folder: str, n: int, temperatures: list[str]) -> None:
    items = [pairs.load(p) for p in pairs.find(folder)[:n]]
    c = PageColorizer(ckpt, device="cpu")
    readout = c.net.readout

    def keep(raw):
        STATE["logits"] = raw[1].detach()
        return readout(raw)

    c.net.readout = keep
    STATE["centres"] = c.net.centres.cpu().numpy()
    regions.pool = voted_pool
    base = np.mean([score(np.repeat(s[..., None], 3, 2), t) for s, t in items], 0)
    truth_cf = base[3]
    print(f"{folder} ({len(items)} pairs): input PSNR {base[0]:.2f} CIEDE2000 {base[1]:.2f}; truth colorfulness "
          f"{truth_cf:.1f}")
    for t in [None] + [float(x) for x in temperatures]:
        STATE["T"] = t
        psnr, de, cf, _ = np.mean([score(np.asarray(c.colorize(Image.fromarray(s, "L"))), tr) for s, tr in items], 0)
        name = "defaults (mean color)" if t is None else f"vote T={t}"
        print(f"  {name}: PSNR {psnr:.2f}  CIEDE2000 {de:.2f}  colorfulness {cf:.1f} ({cf / truth_cf:.2f})",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:])
