"""How much color hints and a palette steer a colorizer, on held-out (scan, color) pairs.

    .venv/bin/python scripts/hints_table.py --ckpt runs/realdata-fluent-oracle/train-color/color.pt \
        --compare nohints=runs/realdata-fluent-oracle-nohints/train-color/color.pt --pairs data/realdata/fluent/test
    .venv/bin/python scripts/hints_table.py --ckpt runs/demo/train-color/color.pt --pipeline pipelines/demo.toml \
        --compare nohints=runs/demo-nohints/train-color/color.pt      # the sample's held-out pairs

Each pair's true scan is colorized the way users' pages are (PageColorizer, its default settings) with 0, 1, 5 and 20
hints sampled from the pair's own true colors (onepunch/hints.py: places off the white paper, squares of 1-5 px
holding the truth's mean color there; the same places for every count, a larger count adding to a smaller one's), and
once more with no hints and the truth's own palette (what a reference page of the same character gives at best).
Reported: mean PSNR (RGB) and CIEDE2000 against the truth. Compared colorizers (--compare name=path) run with 0 hints.
With `--pipeline`, the pairs are that pipeline's held-out pairs with their true line art as the scan (what eval's
"true_lineart" rows use: the embedded sample's drawings), instead of a pairs folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import hints, metrics, pairs  # noqa: E402
from onepunch.inference import PageColorizer  # noqa: E402


def score(out: Image.Image, truth: np.ndarray) -> tuple[float, float]:
    o, t = (torch.from_numpy(np.asarray(x).copy()).permute(2, 0, 1)[None].float() / 255 for x in (out, truth))
    return metrics.psnr(o, t), float(metrics.ciede2000(metrics.rgb_to_lab(o), metrics.rgb_to_lab(t)).mean())


def truth_hints(color: np.ndarray, n: int, seed: int, draws: int) -> np.ndarray | None:
    """n hints from the truth (uint8 H x W x 3) as a page-size hint map; None for n = 0."""
    if n == 0:
        return None
    t = torch.from_numpy(color.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    gen = torch.Generator().manual_seed(seed)
    return hints.sample(t, torch.tensor([n]), gen, draws=draws)[0].permute(1, 2, 0).numpy()


def held_out(pipeline: str) -> list:
    """(key, true line art, color) of a pipeline's held-out pairs (its build-pairs output must exist)."""
    from onepunch import config
    from onepunch.manifest import read_json
    from onepunch.stages import build_pairs, evaluate

    cfg = config.load(Path(pipeline))
    _, found = evaluate._val_pairs(cfg, read_json(build_pairs.manifest_path(cfg)))
    return evaluate._true_lineart(cfg, found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--pairs", help="a folder of pairs: scan/ and color/, same names")
    ap.add_argument("--pipeline", help="instead: a pipeline whose held-out pairs have true line art (the sample's)")
    ap.add_argument("--compare", action="append", default=[], help="name=color.pt, run with 0 hints")
    ap.add_argument("--counts", default="0,1,5,20")
    ap.add_argument("--max-pairs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if args.pipeline:
        items = held_out(args.pipeline)
    else:
        found = pairs.find(args.pairs)
        items = [(p.name, *pairs.load(p)) for p in found]
    items = items[: args.max_pairs] if args.max_pairs else items
    c = PageColorizer(args.ckpt, device="cpu")
    rows: dict[str, list] = {f"{n} hints": [] for n in counts}
    rows["palette, 0 hints"] = []
    others = {name: PageColorizer(path, device="cpu") for name, path in (a.split("=", 1) for a in args.compare)}
    rows.update({f"{name}, 0 hints": [] for name in others})
    for i, (_, scan, color) in enumerate(items):
        page = Image.fromarray(scan, "L")
        for n in counts:
            h = truth_hints(color, n, args.seed + i, max(counts))
            rows[f"{n} hints"].append(score(c.colorize(page, hints=h), color))
        rows["palette, 0 hints"].append(score(c.colorize(page, palette=hints.of_image(Image.fromarray(color))), color))
        for name, other in others.items():
            rows[f"{name}, 0 hints"].append(score(other.colorize(page), color))
    print(f"{len(items)} pairs from {args.pipeline or args.pairs}; colorizer {args.ckpt}\n")
    print("| input | PSNR (dB) | CIEDE2000 |\n| --- | --- | --- |")
    for name, r in rows.items():
        a = np.array(r)
        print(f"| {name} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} |")


if __name__ == "__main__":
    main()
