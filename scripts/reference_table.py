"""Reference-based coloring, two training-free ways, measured on the same people in five skin tones (make realdata:
data/realdata/<set>/tones/). Each held-out design's line art is colored with a reference: another design in the same
tone (right), the same other design in another tone (wrong: another person), a held-out design that is no person
(unrelated), the right reference as a palette (the net's global --reference), and none; CIEDE2000 and PSNR against
the design in the reference's tone. The two ways (tried, not in the library: docs/realdata.md, "References"):
`reference` snaps each enclosed shape's automatic color to the nearest of the reference's own colors; `keyed` also
colors the reference's line art automatically and maps each shape by the net's color of it (and, "with place", its
place in the drawing) to the reference shape the net colored alike (skin as skin, hair as hair). Either makes its
matches clicks of the matched color (hints, filled flat). The ceiling: one click a shape in the truth's color.

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


def matched_clicks(scan: np.ndarray, auto: np.ndarray, palette: np.ndarray, near: float = NEAR) -> list[dict]:
    """Clicks for the page's line art `scan` (uint8 (H, W)) whose automatic colors are `auto` (uint8 (H, W, 3)):
    one per enclosed shape whose color has a reference color (`colors`) within `near`, in that color."""
    points = clicks.clicks(scan, auto)
    if not len(palette) or not points:
        return []
    return matches(points, regions.to_lab(np.uint8([[p["color"] for p in points]]))[0], palette, palette, near)


GEO = 50.0
"""`keyed` with place: a shape's key also holds its centroid within the drawing's ink box (0-1 each way) times this,
so a shift of a tenth of the drawing counts as 5 Lab units of color (a face stays a face, a sleeve a sleeve)."""


def _key(scan: np.ndarray, points: list[dict], geo: float) -> np.ndarray:
    """(K, 3 or 5) keys of clicked shapes: their Lab color, and with `geo` their place in the drawing."""
    lab = regions.to_lab(np.uint8([[p["color"] for p in points]]))[0]
    if not geo:
        return lab
    ys, xs = np.nonzero(scan < 128)
    if not len(ys):
        return np.concatenate([lab, np.zeros((len(lab), 2), np.float32)], 1)
    labels, _ = regions.shapes(scan)
    places = []
    for p in points:
        yy, xx = np.nonzero(labels == p["region"])
        places.append(((xx.mean() - xs.min()) / max(1, np.ptp(xs)), (yy.mean() - ys.min()) / max(1, np.ptp(ys))))
    return np.concatenate([lab, geo * np.float32(places)], 1)


def keyed(scan: np.ndarray, auto: np.ndarray, colored: np.ndarray, geo: float = 0.0) -> tuple:
    """A colored page whose line art is known (a page a person colored; a character sheet and its ink drawing):
    per enclosed shape, (its key: the net's automatic color there, and with `geo` its place; the page's Lab color
    there), so a shape the net colors as it colored a reference shape (skin as skin, hair as hair) takes that
    shape's color."""
    truth = {p["region"]: p for p in clicks.clicks(scan, colored)}
    auto_points = [p for p in clicks.clicks(scan, auto) if p["region"] in truth]
    if not auto_points:
        return np.zeros((0, 5 if geo else 3), np.float32), np.zeros((0, 3), np.float32)
    values = regions.to_lab(np.uint8([[truth[p["region"]]["color"] for p in auto_points]]))[0]
    return _key(scan, auto_points, geo), values


def keyed_clicks(scan: np.ndarray, auto: np.ndarray, keys: np.ndarray, values: np.ndarray,
                 near: float = NEAR, geo: float = 0.0) -> list[dict]:
    """Clicks for a page (line art `scan`, automatic colors `auto`): each enclosed shape whose key is within `near`
    of a reference key takes that key's value (`keyed`)."""
    points = clicks.clicks(scan, auto)
    if not len(keys) or not points:
        return []
    return matches(points, _key(scan, points, geo), keys, values, near)



def unit(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255


def score(out: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """PSNR, CIEDE2000 over the page, CIEDE2000 over the truth's colored pixels (chroma above 10: skin, hair)."""
    o, t = unit(out), unit(truth)
    lab_t = metrics.rgb_to_lab(t)
    de = metrics.ciede2000(metrics.rgb_to_lab(o), lab_t)[0]
    colored = torch.hypot(lab_t[0, 1], lab_t[0, 2]) > 10
    return metrics.psnr(o, t), float(de.mean()), float(de[colored].mean()) if colored.any() else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tones", type=Path)
    ap.add_argument("ckpt")
    ap.add_argument("--max-designs", type=int, default=0)
    ap.add_argument("--near", type=float, default=NEAR)
    args = ap.parse_args()
    designs = sorted(p.name for p in (args.tones / "scan").glob("*.png"))
    designs = designs[: args.max_designs or None]
    tones = sorted(p.name for p in (args.tones / "color").iterdir())
    c = PageColorizer(args.ckpt, device="cpu")
    rows: dict[str, list] = {k: [] for k in ("none", "palette (right)", "reference (right)", "reference (wrong)",
                                             "keyed (right)", "keyed (wrong)", "keyed with place (right)",
                                             "keyed with place (wrong)", "keyed with place (unrelated)",
                                             "clicks from the truth (ceiling)")}
    # An unrelated reference: a held-out design of the set that is no person (test/, not in tones/).
    people = set(designs)
    unrelated = sorted(p.name for p in (args.tones.parent / "test" / "scan").glob("*.png") if p.name not in people)
    autos = {}
    for i, d in enumerate(designs):
        scan = np.asarray(Image.open(args.tones / "scan" / d).convert("L"))
        auto = np.asarray(c.colorize(Image.fromarray(scan, "L")))
        other = designs[(i + 1) % len(designs)]
        other_scan = np.asarray(Image.open(args.tones / "scan" / other).convert("L"))
        if other not in autos:
            autos[other] = np.asarray(c.colorize(Image.fromarray(other_scan, "L")))
        for t, tone in enumerate(tones):
            truth = np.asarray(Image.open(args.tones / "color" / tone / d).convert("RGB"))
            right = Image.open(args.tones / "color" / tone / other).convert("RGB")
            wrong = Image.open(args.tones / "color" / tones[(t + 2) % len(tones)] / other).convert("RGB")
            rows["none"].append(score(auto, truth))
            if c.takes_palette:
                pal = np.asarray(c.colorize(Image.fromarray(scan, "L"), palette=hints.of_image(right)))
                rows["palette (right)"].append(score(pal, truth))
            for name, ref in (("reference (right)", right), ("reference (wrong)", wrong)):
                pts = matched_clicks(scan, auto, colors(np.asarray(ref)), args.near)
                out = np.asarray(c.colorize(Image.fromarray(scan, "L"), hints=clicks.as_hints(pts))) if pts else auto
                rows[name].append(score(out, truth))
                for geo, label in ((0.0, "keyed"), (GEO, "keyed with place")):
                    keys, values = keyed(other_scan, autos[other], np.asarray(ref), geo)
                    pts = keyed_clicks(scan, auto, keys, values, args.near, geo)
                    out = (np.asarray(c.colorize(Image.fromarray(scan, "L"), hints=clicks.as_hints(pts))) if pts
                           else auto)
                    rows[name.replace("reference", label)].append(score(out, truth))
            u = unrelated[(i * len(tones) + t) % len(unrelated)]
            u_scan = np.asarray(Image.open(args.tones.parent / "test" / "scan" / u).convert("L"))
            u_color = np.asarray(Image.open(args.tones.parent / "test" / "color" / u).convert("RGB"))
            u_auto = np.asarray(c.colorize(Image.fromarray(u_scan, "L")))
            keys, values = keyed(u_scan, u_auto, u_color, GEO)
            pts = keyed_clicks(scan, auto, keys, values, args.near, GEO)
            out = np.asarray(c.colorize(Image.fromarray(scan, "L"), hints=clicks.as_hints(pts))) if pts else auto
            rows["keyed with place (unrelated)"].append(score(out, truth))
            pts = clicks.clicks(scan, truth)
            out = np.asarray(c.colorize(Image.fromarray(scan, "L"), hints=clicks.as_hints(pts))) if pts else auto
            rows["clicks from the truth (ceiling)"].append(score(out, truth))
    print(f"{args.tones}: {len(designs)} designs x {len(tones)} tones, {args.ckpt}\n")
    print("| reference | PSNR | CIEDE2000 | CIEDE2000 on colored pixels |\n| --- | --- | --- | --- |")
    for name, r in rows.items():
        if r:
            m = np.mean(r, 0)
            print(f"| {name} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} |")


if __name__ == "__main__":
    main()
