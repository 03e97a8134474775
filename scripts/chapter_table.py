"""A chapter that follows its first colored page, measured on the same people in five skin tones (make realdata:
data/realdata/<set>/tones/). Per tone, a "chapter" is every held-out person drawn in that tone (their skin and hair
are the tone's); its first page, colored as the truth is, leads the rest (`--follow`); each of the first `--leads`
people leads a chapter in turn. Scored on the pixels that the
tone changes (where a design's five colored versions differ: skin and hair), against the truth: CIEDE2000 there,
and the spread of the chapter's skin-and-hair color (each page's mean Lab there; the mean CIEDE2000 between the pages'
colors and the chapter's mean), and CIEDE2000 over the whole page, without following, following the first page, and
in the truth.

    .venv/bin/python scripts/chapter_table.py data/realdata/openmoji/tones runs/realdata-openmoji/train-color/color.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import knobs  # noqa: E402

from onepunch import metrics  # noqa: E402
from onepunch.inference import PageColorizer  # noqa: E402


def lab(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> (3, H, W) CIE Lab."""
    return metrics.rgb_to_lab(metrics.unit(img))[0]


def spread(colors: list[torch.Tensor]) -> float:
    """Mean CIEDE2000 between each page's color ((3,) Lab) and the chapter's mean color."""
    c = torch.stack(colors)[:, :, None, None]
    mean = c.mean(0, keepdim=True).expand_as(c)
    return float(metrics.ciede2000(c, mean).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tones", type=Path)
    ap.add_argument("ckpt")
    ap.add_argument("--max-designs", type=int, default=20)
    ap.add_argument("--leads", type=int, default=4, help="chapters per tone, each led by another of the first pages")
    ap.add_argument("--set", action="append", default=[], help="module.NAME=value: a module constant (scripts/knobs.py)")
    args = ap.parse_args()
    knobs.apply(args.set)
    designs = sorted(p.name for p in (args.tones / "scan").glob("*.png"))[: args.max_designs]
    tones = sorted(p.name for p in (args.tones / "color").iterdir())
    c = PageColorizer(args.ckpt, device="cpu")
    scans = {d: Image.open(args.tones / "scan" / d).convert("L") for d in designs}
    auto = {d: np.asarray(c.colorize(scans[d])) for d in designs}
    truths = {(d, t): np.asarray(Image.open(args.tones / "color" / t / d).convert("RGB")) for d in designs for t in tones}
    # The pixels each design's tone changes: its five colored versions differ there.
    toned = {d: np.ptp(np.stack([truths[d, t] for t in tones]).astype(int), 0).max(-1) > 20 for d in designs}
    rows = {"none": ([], [], []), "following the first page": ([], [], []), "truth": ([], [], [])}
    for t, first in ((t, f) for t in tones for f in designs[: args.leads]):
        ref = c.reference(scans[first], Image.fromarray(truths[first, t]))
        page_colors = {k: [] for k in rows}
        for d in (d for d in designs if d != first):
            m = torch.from_numpy(toned[d])
            if not m.any():
                continue
            truth = lab(truths[d, t])
            for name, out in (("none", auto[d]), ("following the first page", np.asarray(c.colorize(scans[d], follow=ref))),
                              ("truth", truths[d, t])):
                o = lab(out)
                de = metrics.ciede2000(o[None], truth[None])[0]
                rows[name][0].append(float(de[m].mean()))
                rows[name][2].append(float(de.mean()))
                page_colors[name].append(o[:, m].mean(1))
        for name in rows:
            rows[name][1].append(spread(page_colors[name]))
    print(f"{args.tones}: {len(designs)} designs x {len(tones)} tones x {args.leads} leading pages, {args.ckpt}\n")
    print("| chapter | CIEDE2000 on skin and hair | spread of skin and hair across pages | CIEDE2000 over the page |\n"
          "| --- | --- | --- | --- |")
    for name, (de, sp, page) in rows.items():
        print(f"| {name} | {np.mean(de):.2f} | {np.mean(sp):.2f} | {np.mean(page):.2f} |")


if __name__ == "__main__":
    main()
