"""Colors a person would keep, on held-out true pairs: automatic colors, one click per shape, and whether clicks are
obeyed, for colorizers and settings side by side.

    .venv/bin/python scripts/colors_table.py --pairs data/realdata/openmoji/test \\
        --ckpt method=runs/realdata-openmoji/train-color/color.pt --ckpt xdog=runs/realdata-openmoji-xdog/train-color/color.pt

Each true scan is colorized as users' pages are (PageColorizer; `--variant NAME:key=value,...` adds a run with other
settings, e.g. `--variant raw:regions=off,hint_fill=net`), once without hints and once with one click per enclosed
region (onepunch/clicks.py: at its most interior point, the truth's median color there). Reported per row: PSNR, SSIM,
CIEDE2000 and colorfulness against the truth (and the truth's colorfulness); for the clicked runs the gain over no
clicks, the mean CIEDE2000 between a click's color and the output's median over its region, and the share of clicks
within 5 of it. Input-as-output (the uncolored line art) is the first row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import clicks, metrics, pairs  # noqa: E402
from onepunch.inference import PageColorizer  # noqa: E402


def score(out: np.ndarray, truth: np.ndarray) -> dict:
    o, t = metrics.unit(out), metrics.unit(truth)
    return {"psnr": metrics.psnr(o, t), "ssim": metrics.ssim(o, t),
            "ciede2000": float(metrics.ciede2000(metrics.rgb_to_lab(o), metrics.rgb_to_lab(t)).mean()),
            "colorfulness": float(metrics.colorfulness(o)[0])}


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    kw = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        kw[k] = int(v) if v.isdigit() else v
    return name, kw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", required=True, action="append", help="a pairs folder (scan/, color/); repeatable")
    ap.add_argument("--ckpt", action="append", required=True, help="name=color.pt; repeatable")
    ap.add_argument("--variant", action="append", default=[], help="NAME:key=value,... PageColorizer settings")
    ap.add_argument("--max-pairs", type=int, default=0)
    ap.add_argument("--no-clicks", action="store_true", help="automatic colors only")
    ap.add_argument("--fills", action="store_true", help="a click on every solid black fill too")
    args = ap.parse_args()
    variants = [("", {})] + [parse_variant(v) for v in args.variant]
    for folder in args.pairs:
        found = pairs.find(folder)
        found = found[: args.max_pairs] if args.max_pairs else found
        items = [pairs.load(p) for p in found]
        points = [clicks.clicks(scan, color, fills=args.fills) for scan, color in items]
        rows = {}
        t0 = time.perf_counter()
        truth_cf = float(np.mean([float(metrics.colorfulness(metrics.unit(c))[0]) for _, c in items]))
        rows["input-as-output"] = [score(np.repeat(s[..., None], 3, 2), c) for s, c in items]
        rows["input-as-output"] = [{**r, "hint_de": np.mean(clicks.obedience(np.repeat(s[..., None], 3, 2), s, p))
                                    if p else np.nan} for r, (s, _), p in zip(rows["input-as-output"], items, points, strict=True)]
        for spec in args.ckpt:
            cname, path = spec.split("=", 1)
            for vname, kw in variants:
                c = PageColorizer(path, device="cpu", **kw)
                label = cname + (f" [{vname}]" if vname else "")
                auto, hinted = [], []
                for (scan, color), pts in zip(items, points, strict=True):
                    page = Image.fromarray(scan, "L")
                    out = np.asarray(c.colorize(page))
                    de = clicks.obedience(out, scan, pts)
                    auto.append({**score(out, color), "hint_de": np.mean(de) if de else np.nan})
                    if not args.no_clicks:
                        out_h = np.asarray(c.colorize(page, hints=clicks.as_hints(pts) or None))
                        de_h = clicks.obedience(out_h, scan, pts)
                        hinted.append({**score(out_h, color), "hint_de": np.mean(de_h) if de_h else np.nan,
                                       "de_list": de_h})
                rows[label] = auto
                if hinted:
                    rows[label + " + clicks"] = hinted
        n_clicks = sum(len(p) for p in points)
        print(f"\n{folder}: {len(items)} pairs, {n_clicks} clicks ({n_clicks / max(1, len(items)):.1f} a page), truth "
              f"colorfulness {truth_cf:.1f} ({time.perf_counter() - t0:.0f} s)\n")
        print("| colorizer | PSNR | SSIM | CIEDE2000 | colorfulness | clicks: mean CIEDE2000 to region | within 5 |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label, r in rows.items():
            m = {k: float(np.nanmean([x[k] for x in r])) for k in ("psnr", "ssim", "ciede2000", "colorfulness",
                                                                      "hint_de")}
            des = [d for x in r for d in x.get("de_list", [])]
            within = f"{100 * np.mean(np.array(des) <= clicks.WITHIN):.0f}%" if des else ""
            print(f"| {label} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['ciede2000']:.2f} | {m['colorfulness']:.1f} | "
                  f"{m['hint_de']:.1f} | {within} |")


if __name__ == "__main__":
    main()
