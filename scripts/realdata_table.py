"""Print the real-data tables (docs/realdata.md) from runs/realdata-<set>/eval/metrics.json, after `make
realdata-table`: one table per set, scans then colors.

    python scripts/realdata_table.py fluent emojione openmoji iconpark
    python scripts/realdata_table.py --summary    # README's one-row-a-set table
    python scripts/realdata_table.py --grids      # docs/realdata-<set>-real(-scans).png from the eval grids
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCANS = [("generator", "scan generator (learned, `scan.pt`, levelled)"),
         ("generator_unlevelled", "the same without levels (`--paper-level 255 --ink-level 0`)"), ("xdog", "XDoG"), ("greyscale", "greyscale conversion"),
         ("white", "white page")]
COLORS = [("colorizer", "colorizer trained on the generator's pairs (the method), automatic"),
          ("colorizer_clicks", "the same, one click per enclosed region"),
          ("colorizer_clicks_fills", "the same, one click per enclosed region and per solid black fill"),
          ("xdog", "colorizer trained on XDoG pairs"),
          ("oracle", "oracle: colorizer trained on true pairs"),
          ("scan", "input-as-output (the uncolored line art)"),
          ("mean_color", "mean training color")]


def table(name: str) -> str:
    m = json.loads(Path(f"runs/realdata-{name}/eval/metrics.json").read_text())["sets"]
    scans, colors = m["real_scans"], m["real"]
    truth = colors["metrics"]["truth"]["colorfulness"]
    n, per = colors["images"], colors.get("clicks", {})
    out = [f"**{name}**: {n} held-out true pairs; clicks {per.get('colorizer_clicks', 0) / max(1, n):.1f} a page "
           f"({per.get('colorizer_clicks_fills', 0) / max(1, n):.1f} with fills); truth's colorfulness {truth:.1f}", "",
           "| scans, against the true ink | PSNR | SSIM |", "| --- | --- | --- |"]
    for key, label in SCANS:
        if (r := scans["metrics"].get(key)) is not None:
            out.append(f"| {label} | {r['psnr']:.2f} | {r['ssim']:.3f} |")
    out += ["", "| colors, against the true colors | PSNR | SSIM | CIEDE2000 | colorfulness | clicks: CIEDE2000 to "
            "their region | clicks within 5 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, label in COLORS:
        if (r := colors["metrics"].get(key)) is None:
            continue
        clicks = (f"{r['click_de']:.1f} | {100 * r['clicks_within']:.0f}%" if "click_de" in r else " | ")
        out.append(f"| {label} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['ciede2000']:.2f} | "
                   f"{r['colorfulness']:.1f} ({r['colorfulness'] / truth:.2f}) | {clicks} |")
    return "\n".join(out)


def summary(sets: list[str]) -> str:
    """One row a set: scans (learned vs XDoG), colors (the method vs the uncolored page and the XDoG-pairs colorizer),
    and how many clicks are obeyed."""
    out = ["| set | scans PSNR / SSIM: learned (XDoG) | colors PSNR / CIEDE2000: method (uncolored page; XDoG pairs) "
           "| with one click a region | clicks within 5 |", "| --- | --- | --- | --- | --- |"]
    for name in sets:
        m = json.loads(Path(f"runs/realdata-{name}/eval/metrics.json").read_text())["sets"]
        s, c = m["real_scans"]["metrics"], m["real"]["metrics"]
        g, x = s["generator"], s["xdog"]
        me, sc, xd, cl = c["colorizer"], c["scan"], c["xdog"], c["colorizer_clicks"]
        out.append(f"| `{name}` | {g['psnr']:.2f} / {g['ssim']:.3f} ({x['psnr']:.2f} / {x['ssim']:.3f}) | "
                   f"{me['psnr']:.2f} / {me['ciede2000']:.2f} ({sc['psnr']:.2f} / {sc['ciede2000']:.2f}; "
                   f"{xd['psnr']:.2f} / {xd['ciede2000']:.2f}) | {cl['psnr']:.2f} / {cl['ciede2000']:.2f} | "
                   f"{100 * cl['clicks_within']:.0f}% |")
    return "\n".join(out)


def grids(sets: list[str]) -> None:
    """The docs' grids: the first four rows of each set's eval grids, as 256-color PNGs (small enough for git)."""
    from PIL import Image

    for s in sets:
        for kind, suffix in (("real", "real"), ("real_scans", "real-scans")):
            img = Image.open(f"runs/realdata-{s}/eval/grid-{kind}.png")
            img = img.crop((0, 0, img.width, img.height // 2)).quantize(256)
            img.save(f"docs/realdata-{s}-{suffix}.png", optimize=True)
            print(f"docs/realdata-{s}-{suffix}.png")


def main(args: list[str]) -> None:
    sets = [a for a in args if not a.startswith("--")] or ["fluent", "emojione", "openmoji", "iconpark"]
    if "--grids" in args:
        grids(sets)
    else:
        print(summary(sets) if "--summary" in args else "\n\n".join(table(s) for s in sets))


if __name__ == "__main__":
    main(sys.argv[1:])
