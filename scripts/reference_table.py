"""Reference-based coloring, two training-free ways, measured on the same people in five skin tones (make realdata:
data/realdata/<set>/tones/). Each held-out design's line art is colored with a reference: another design in the same
tone (right), the same other design in another tone (wrong: another person), a held-out design that is no person
(unrelated), the right reference as a palette (the net's global --reference), and none; CIEDE2000 and PSNR against
the design in the reference's tone. The two ways (tried, not in the library: docs/realdata.md, "References"):
`reference` snaps each enclosed shape's automatic color to the nearest of the reference's own colors; `keyed` also
colors the reference's line art automatically and maps each shape by the net's color of it (and, "with place", its
place in the drawing) to the reference shape the net colored alike (skin as skin, hair as hair). Either makes its
matches clicks of the matched color (hints, filled flat). The ceiling: one click a shape in the truth's color. Also
`keyed` from the reference's own luminance instead of its ink drawing (a colored page alone), and the palette of the
wrong reference. And `follow`, the library's way (onepunch/follow.py: `keyed` without place, within follow.NEAR).

    .venv/bin/python scripts/reference_table.py data/realdata/openmoji/tones runs/realdata-openmoji/train-color/color.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import knobs  # noqa: E402

from onepunch import clicks, hints, metrics, regions  # noqa: E402
from onepunch.inference import PageColorizer  # noqa: E402

NEAR = 25.0
"""A shape takes a reference color at most this far (CIE Lab distance) from the net's color of it."""
MIN_SHARE = 0.005
"""A reference color covers at least this share of the reference's colored pixels (not a stray antialiased edge)."""
BIN = 6.0
"""Reference colors are gathered in Lab cells of this side."""


def matches(points: list[dict], found: np.ndarray, keys: np.ndarray, values: np.ndarray, near: float) -> list[dict]:
    """The clicks among `points` whose key (`found`, one a point) lies within `near` of one of `keys`, each in that
    key's value (Lab) as its color."""
    out = []
    for p, key in zip(points, found, strict=True):
        d = np.linalg.norm(keys - key, axis=1)
        k = int(np.argmin(d))
        if d[k] <= near:
            rgb = cv2.cvtColor(values[k][None, None].astype(np.float32), cv2.COLOR_Lab2RGB)[0, 0]
            out.append({**p, "color": [int(round(float(v) * 255)) for v in np.clip(rgb, 0, 1)]})
    return out


def colors(reference: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB reference -> (K, 3) float Lab: its colors (neither ink nor paper), the mean of each Lab
    cell holding at least MIN_SHARE of them."""
    lab = regions.to_lab(reference).reshape(-1, 3)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    keep = (lab[:, 0] > 15) & ((lab[:, 0] < 95) | (chroma > 8))  # not ink, not paper white
    lab = lab[keep]
    if not len(lab):
        return np.zeros((0, 3), np.float32)
    cell = np.floor(lab / BIN).astype(np.int64)
    _, inverse, count = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    sums = np.stack([np.bincount(inverse, lab[:, c]) for c in range(3)], 1)
    means = sums / count[:, None]
    return means[count >= MIN_SHARE * len(lab)].astype(np.float32)


GEO = 50.0
"""`keyed` with place: a shape's key also holds its centroid within the drawing's ink box (0-1 each way) times this,
so a shift of a tenth of the drawing counts as 5 Lab units of color (a face stays a face, a sleeve a sleeve)."""


class Shapes:
    """A page's clicked shapes (clicks.clicks on its line art and automatic colors: one a shape) and their keys:
    the net's Lab color there (`geo` 0), and with `geo` their place in the drawing too. Made once a page."""

    def __init__(self, scan: np.ndarray, auto: np.ndarray):
        self.scan, self.auto, self.points = scan, auto, clicks.clicks(scan, auto)
        lab = regions.to_lab(np.uint8([[p["color"] for p in self.points]]))[0] if self.points else np.zeros((0, 3))
        self.keys = {0.0: lab, GEO: np.concatenate([lab, GEO * self._places()], 1)}

    def _places(self) -> np.ndarray:
        ys, xs = np.nonzero(self.scan < 128)
        if not len(ys) or not self.points:
            return np.zeros((len(self.points), 2), np.float32)
        labels, _ = regions.shapes(self.scan)
        places = []
        for p in self.points:
            yy, xx = np.nonzero(labels == p["region"])
            places.append(((xx.mean() - xs.min()) / max(1, np.ptp(xs)), (yy.mean() - ys.min()) / max(1, np.ptp(ys))))
        return np.float32(places)

    def snapped(self, palette: np.ndarray, near: float) -> list[dict]:
        """`reference`: each shape whose color has a reference color (`colors`) within `near`, in that color."""
        return matches(self.points, self.keys[0.0], palette, palette, near) if len(palette) else []

    def keyed(self, ref: Shapes, colored: np.ndarray, geo: float, near: float) -> list[dict]:
        """`keyed`: the reference page `ref` (a page a person colored; a character sheet and its ink drawing) in
        its colors `colored`: each shape of this page whose key is within `near` of a reference shape's takes that
        shape's color, so a shape the net colors as it colored a reference shape (skin as skin, hair as hair)
        takes its color."""
        truth = {p["region"]: p["color"] for p in clicks.clicks(ref.scan, colored)}
        have = [i for i, p in enumerate(ref.points) if p["region"] in truth]
        if not have or not self.points:
            return []
        values = regions.to_lab(np.uint8([[truth[ref.points[i]["region"]] for i in have]]))[0]
        return matches(self.points, self.keys[geo], ref.keys[geo][have], values, near)


def score(out: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """PSNR, CIEDE2000 over the page, CIEDE2000 over the truth's colored pixels (chroma above 10: skin, hair)."""
    o, t = metrics.unit(out), metrics.unit(truth)
    lab_t = metrics.rgb_to_lab(t)
    de = metrics.ciede2000(metrics.rgb_to_lab(o), lab_t)[0]
    colored = torch.hypot(lab_t[0, 1], lab_t[0, 2]) > 10
    return metrics.psnr(o, t), float(de.mean()), float(de[colored].mean()) if colored.any() else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tones", type=Path)
    ap.add_argument("ckpt")
    ap.add_argument("--max-designs", type=int, default=0)
    ap.add_argument("--only-follow", action="store_true", help="only none, follow and the ceiling")
    ap.add_argument("--near", type=float, default=NEAR)
    ap.add_argument("--set", action="append", default=[], help="module.NAME=value: a module constant (scripts/knobs.py)")
    args = ap.parse_args()
    knobs.apply(args.set)
    designs = sorted(p.name for p in (args.tones / "scan").glob("*.png"))
    designs = designs[: args.max_designs or None]
    tones = sorted(p.name for p in (args.tones / "color").iterdir())
    c = PageColorizer(args.ckpt, device="cpu")
    rows: dict[str, list] = {k: [] for k in ("none", "follow (right)", "follow (wrong)", "follow (unrelated)",
                                             "palette (right)", "reference (right)", "reference (wrong)",
                                             "keyed (right)", "keyed (wrong)", "keyed with place (right)",
                                             "keyed with place (wrong)", "keyed with place (unrelated)",
                                             "palette (wrong)", "keyed with place, reference's luminance (right)",
                                             "keyed with place, reference's luminance (wrong)",
                                             "clicks from the truth (ceiling)")}
    # An unrelated reference: a held-out design of the set that is no person (test/, not in tones/).
    people = set(designs)
    unrelated = sorted(p.name for p in (args.tones.parent / "test" / "scan").glob("*.png") if p.name not in people)
    cache: dict[Path, Shapes] = {}

    def shapes(path: Path) -> Shapes:
        """A line art's shapes, colorized automatically once (a colored image's: from its luminance, what a user's
        colored page or character sheet gives when its ink drawing is not at hand)."""
        if path not in cache:
            scan = np.asarray(Image.open(path).convert("L"))
            cache[path] = Shapes(scan, np.asarray(c.colorize(Image.fromarray(scan, "L"))))
        return cache[path]

    def colorize(page: Shapes, points: list[dict]) -> np.ndarray:
        """The page with these clicks (filled flat); its automatic colors when there are none."""
        if not points:
            return page.auto
        return np.asarray(c.colorize(Image.fromarray(page.scan, "L"), hints=clicks.as_hints(points)))

    for i, d in enumerate(designs):
        page = shapes(args.tones / "scan" / d)
        other = designs[(i + 1) % len(designs)]
        ref = shapes(args.tones / "scan" / other)
        for t, tone in enumerate(tones):
            truth = np.asarray(Image.open(args.tones / "color" / tone / d).convert("RGB"))
            right = np.asarray(Image.open(args.tones / "color" / tone / other).convert("RGB"))
            wrong = np.asarray(Image.open(args.tones / "color" / tones[(t + 2) % len(tones)] / other).convert("RGB"))
            rows["none"].append(score(page.auto, truth))
            u = unrelated[(i * len(tones) + t) % len(unrelated)]
            u_color = np.asarray(Image.open(args.tones.parent / "test" / "color" / u).convert("RGB"))
            if not args.only_follow:  # the training-free ways that are not in the library
                if c.takes_palette:
                    for which, colored in (("right", right), ("wrong", wrong)):
                        pal = c.colorize(Image.fromarray(page.scan, "L"), palette=hints.of_image(Image.fromarray(colored)))
                        rows[f"palette ({which})"].append(score(np.asarray(pal), truth))
                for which, t2 in (("right", tone), ("wrong", tones[(t + 2) % len(tones)])):
                    path = args.tones / "color" / t2 / other
                    own = shapes(path)
                    colored = np.asarray(Image.open(path).convert("RGB"))
                    keyed = page.keyed(own, colored, GEO, args.near)
                    rows[f"keyed with place, reference's luminance ({which})"].append(score(colorize(page, keyed), truth))
                for which, colored in (("right", right), ("wrong", wrong)):
                    snapped = page.snapped(colors(colored), args.near)
                    rows[f"reference ({which})"].append(score(colorize(page, snapped), truth))
                    for geo, label in ((0.0, "keyed"), (GEO, "keyed with place")):
                        keyed = page.keyed(ref, colored, geo, args.near)
                        rows[f"{label} ({which})"].append(score(colorize(page, keyed), truth))
                u_keyed = page.keyed(shapes(args.tones.parent / "test" / "scan" / u), u_color, GEO, args.near)
                rows["keyed with place (unrelated)"].append(score(colorize(page, u_keyed), truth))
            # The library's way (onepunch/follow.py, `colorize --follow`): the reference page and its colors.
            line_art = Image.fromarray(page.scan, "L")
            for which, r_scan, colored in (("right", ref.scan, right), ("wrong", ref.scan, wrong),
                                           ("unrelated", shapes(args.tones.parent / "test" / "scan" / u).scan, u_color)):
                followed = c.reference(Image.fromarray(r_scan, "L"), Image.fromarray(colored))
                rows[f"follow ({which})"].append(score(np.asarray(c.colorize(line_art, follow=followed)), truth))
            ceiling = clicks.clicks(page.scan, truth)
            rows["clicks from the truth (ceiling)"].append(score(colorize(page, ceiling), truth))
    print(f"{args.tones}: {len(designs)} designs x {len(tones)} tones, {args.ckpt}\n")
    print("| reference | PSNR | CIEDE2000 | CIEDE2000 on colored pixels |\n| --- | --- | --- | --- |")
    for name, r in rows.items():
        if r:
            m = np.mean(r, 0)
            print(f"| {name} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} |")


if __name__ == "__main__":
    main()
