"""Real (scan, color) pairs for development: `make realdata` (optional; needs npm and an SVG renderer).

    python scripts/realdata.py                      # every set into data/realdata/
    python scripts/realdata.py --sets fluent --out /data/realdata

Public icon and emoji sets drawn by their artists both in color and in black ink, with the same geometry, give what
the method cannot get from illustrations: true pairs to measure against. Four styles:
- fluent, emojione: color art WITHOUT ink outlines (flat shapes; the ink versions are outlines and solid blacks);
- openmoji: color art that KEEPS the black ink outlines of its line art (hair, skin, clothes of many people);
- iconpark: one source drawn in two themes, outline (ink) and multi-color (outlined strokes, colored fills).
Per set, from npm (`npm pack`, cached in <out>/npm/), designs present in both versions, rendered on white with
rsvg-convert (Debian: `apt-get install librsvg2-bin`) or, if that is missing, CairoSVG (`pip install cairosvg`, needs
libcairo); iconpark's themes are made by the package's own code, run with node:

    <out>/<set>/unpaired/scan/NAME.png   ink drawings of one half of the training designs  (the method's scans)
    <out>/<set>/unpaired/color/NAME.png  color versions of the other half                   (the method's colors)
    <out>/<set>/pairs/{scan,color}/      both versions of every training design (an oracle's "perfect scans")
    <out>/<set>/test/{scan,color}/       held-out designs, both versions, same file names   (eval's real pairs)
    <out>/<set>/test1024/{scan,color}/   the first held-out designs at 1024 px                (full-resolution checks)
    <out>/<set>/README.md, realdata.json licenses, versions, counts and every file's sha256

Designs whose ink drawings render identically (skin-tone variants) are kept once, so no ink drawing is both in
training and in the test set. The split is a hash of the design name: stable as the packages grow. Run once; a rerun
with the same settings does nothing. Nothing here runs at onepunch's run time: the pipelines only read the folders.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch.manifest import read_json, write_json  # noqa: E402

VERSION = 2
MIN_INK = 0.002
"""An ink drawing with less than this fraction of dark pixels is blank and left out."""
SETS = {
    "fluent": {"kind": "iconify", "color": ("@iconify-json/fluent-emoji-flat", "1.2.6"),
               "ink": ("@iconify-json/fluent-emoji-high-contrast", "1.2.6"),
               "license": "MIT, (c) Microsoft Corporation (github.com/microsoft/fluentui-emoji)"},
    "emojione": {"kind": "iconify", "color": ("@iconify-json/emojione", "1.2.3"),
                 "ink": ("@iconify-json/emojione-monotone", "1.2.1"),
                 "license": "CC BY 4.0, Emoji One (Emoji One 2.3.0 color, 2.2.7 monotone; github.com/EmojiTwo)"},
    "openmoji": {"kind": "openmoji", "color": ("openmoji", "17.0.0"), "ink": ("openmoji", "17.0.0"),
                 "license": "CC BY-SA 4.0, OpenMoji (openmoji.org): color/svg and black/svg of the same emoji"},
    "iconpark": {"kind": "iconpark", "color": ("@icon-park/svg", "1.4.2"), "ink": ("@icon-park/svg", "1.4.2"),
                 "license": "Apache-2.0, IconPark (ByteDance): the multi-color and outline themes of each icon"},
}


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def npm_pack(name: str, version: str, cache: Path) -> Path:
    """The package's tarball, fetched once with `npm pack` into the cache."""
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not tgz.is_file():
        if shutil.which("npm") is None:
            fail("npm is needed to fetch the icon packages (Debian: apt-get install npm)")
        r = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=cache, capture_output=True, text=True)
        if r.returncode != 0 or not tgz.is_file():
            fail(f"npm pack {name}@{version} failed: {r.stderr.strip()[:300]}")
    return tgz


def npm_icons(name: str, version: str, cache: Path) -> dict:
    """icons.json of an Iconify npm package."""
    with tarfile.open(npm_pack(name, version, cache)) as t:
        return json.load(t.extractfile("package/icons.json"))


def iconify_svgs(icons: dict) -> dict[str, str]:
    return {name: svg_of(icons, name) for name in icons["icons"]}


def openmoji_svgs(spec: dict, cache: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(ink, color): the black/ and color/ SVG files of the openmoji package, by hexcode."""
    out: tuple[dict, dict] = ({}, {})
    with tarfile.open(npm_pack(*spec["color"], cache)) as t:
        for m in t.getmembers():
            parts = m.name.split("/")  # package/{black,color}/svg/HEX.svg
            if m.isfile() and len(parts) == 4 and parts[1] in ("black", "color") and parts[2] == "svg":
                out[parts[1] == "color"][parts[3][: -len(".svg")]] = t.extractfile(m).read().decode()
    return out


ICONPARK_JS = """
const m = require(process.argv[1] + '/package/lib/map');
const out = {};
for (const name of Object.keys(m).sort()) {
  out[name] = [m[name]({theme: 'outline', size: 48, fill: ['#000']}),
               m[name]({theme: 'multi-color', size: 48})];
}
process.stdout.write(JSON.stringify(out));
"""


def iconpark_svgs(spec: dict, cache: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(ink, color): every IconPark icon in its outline theme in black, and in its default multi-color theme (#333
    outlines, blue fills, white inner strokes), made by the package's own code under node."""
    if shutil.which("node") is None:
        fail("node is needed to draw the IconPark themes (Debian: apt-get install nodejs)")
    tgz = npm_pack(*spec["color"], cache)
    unpacked = cache / tgz.name.removesuffix(".tgz")
    if not (unpacked / "package" / "lib" / "map.js").is_file():
        with tarfile.open(tgz) as t:
            t.extractall(unpacked, filter="data")
    r = subprocess.run(["node", "-e", ICONPARK_JS, str(unpacked.resolve())], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"node could not draw the IconPark icons: {r.stderr.strip()[:300]}")
    both = json.loads(r.stdout)
    return {k: v[0] for k, v in both.items()}, {k: v[1] for k, v in both.items()}


def svgs(spec: dict, cache: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(ink, color) SVG text by design name."""
    if spec["kind"] == "iconify":
        return iconify_svgs(npm_icons(*spec["ink"], cache)), iconify_svgs(npm_icons(*spec["color"], cache))
    return (openmoji_svgs if spec["kind"] == "openmoji" else iconpark_svgs)(spec, cache)


def renderer():
    """svg text, size -> PNG bytes on white."""
    if shutil.which("rsvg-convert"):
        def render(svg: str, size: int) -> bytes:
            r = subprocess.run(["rsvg-convert", "-w", str(size), "-h", str(size), "-b", "white", "-f", "png"],
                               input=svg.encode(), capture_output=True, check=True)
            return r.stdout
        return render
    try:
        import cairosvg
    except ImportError:
        fail("an SVG renderer is needed: rsvg-convert (Debian: apt-get install librsvg2-bin) or CairoSVG "
             "(pip install cairosvg)")
    return lambda svg, size: cairosvg.svg2png(bytestring=svg.encode(), output_width=size, output_height=size,
                                              background_color="white")


def svg_of(icons: dict, name: str) -> str:
    icon = icons["icons"][name]
    w, h = icon.get("width", icons.get("width", 16)), icon.get("height", icons.get("height", 16))
    box = f"{icon.get('left', 0)} {icon.get('top', 0)} {w} {h}"
    # currentColor (the ink sets) is black ink.
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{box}" color="#000000">{icon["body"]}</svg>'


def png(data: bytes, mode: str) -> bytes:
    """The rendering as a plain PNG in `mode` (L for ink, RGB for color), deterministic bytes."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert(mode).save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def colorless(ink: bytes, color: bytes) -> bool:
    """The color rendering is the ink drawing (within one grey level on average): nothing to colorize."""
    a = np.asarray(Image.open(io.BytesIO(ink)).convert("L"), np.float32)
    b = np.asarray(Image.open(io.BytesIO(color)).convert("L"), np.float32)
    return float(np.abs(a - b).mean()) < 1.0


def hash01(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2 ** 64


def fresh(root: Path, prefix: str = ""):
    """An emptied folder: (the sha256 of every file written, by prefix + its path in the folder; put(rel, data))."""
    if root.exists():
        shutil.rmtree(root)
    files: dict[str, str] = {}

    def put(rel: str, data: bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[prefix + rel] = hashlib.sha256(data).hexdigest()

    return files, put


def build_set(key: str, spec: dict, drawings, out: Path, args, render) -> dict:
    ink_svgs, color_svgs = drawings()
    names = sorted(set(color_svgs) & set(ink_svgs))
    print(f"{key}: {len(names)} designs in both {spec['color'][0]} and {spec['ink'][0]}; rendering", flush=True)

    def both(name: str, size: int) -> tuple[bytes, bytes]:
        return png(render(ink_svgs[name], size), "L"), png(render(color_svgs[name], size), "RGB")

    with ThreadPoolExecutor(args.jobs) as pool:
        rendered = dict(zip(names, pool.map(lambda n: both(n, args.size), names), strict=True))
    seen, kept, blank = set(), [], 0
    for name in names:  # skin-tone variants share one ink drawing: keep the first
        digest = hashlib.md5(rendered[name][0]).hexdigest()
        if (np.asarray(Image.open(io.BytesIO(rendered[name][0]))) < 128).mean() < MIN_INK:
            blank += 1  # an ink version with no ink (openmoji has one): nothing to colorize
        elif digest not in seen:
            seen.add(digest)
            kept.append(name)
    test = sorted((n for n in kept if hash01(f"{args.seed}:test:{n}") < args.test_fraction),
                  key=lambda n: hash01(f"{args.seed}:order:{n}"))
    train = [n for n in kept if n not in set(test)]
    # A held-out design whose color version is its ink drawing (a black-and-white emoji) has nothing to colorize, and
    # its PSNR is capped at 100 dB for leaving it alone: it would swamp the mean. Training keeps such designs.
    same = [n for n in test if colorless(*rendered[n])]
    test = [n for n in test if n not in set(same)]
    scan_ids = [n for n in train if hash01(f"{args.seed}:side:{n}") < 0.5]
    color_ids = [n for n in train if n not in set(scan_ids)]
    root = out / key
    files, put = fresh(root)

    for n in scan_ids:
        put(f"unpaired/scan/{n}.png", rendered[n][0])
    for n in color_ids:
        put(f"unpaired/color/{n}.png", rendered[n][1])
    for n in train:
        put(f"pairs/scan/{n}.png", rendered[n][0])
        put(f"pairs/color/{n}.png", rendered[n][1])
    for n in test:
        put(f"test/scan/{n}.png", rendered[n][0])
        put(f"test/color/{n}.png", rendered[n][1])
    big = test[: args.big_count]
    with ThreadPoolExecutor(args.jobs) as pool:
        for n, (ink, color) in zip(big, pool.map(lambda n: both(n, args.big), big), strict=True):
            put(f"test{args.big}/scan/{n}.png", ink)
            put(f"test{args.big}/color/{n}.png", color)
    counts = {"designs_in_both": len(names), "blank_ink": blank, "after_ink_dedupe": len(kept), "unpaired_scans": len(scan_ids),
              "unpaired_colors": len(color_ids), "train_pairs": len(train), "test_same_as_ink": len(same), "test_pairs": len(test),
              f"test{args.big}_pairs": len(big)}
    (root / "README.md").write_text(
        f"# Real pairs: {key}\n\nColor: `{spec['color'][0]}` {spec['color'][1]}; ink: `{spec['ink'][0]}` "
        f"{spec['ink'][1]} (npm). License: {spec['license']}.\nMade by onepunch's `scripts/realdata.py` "
        f"(version {VERSION}): rendered at {args.size} px (and {args.big} px for `test{args.big}/`) on white.\n\n"
        + "".join(f"- {k}: {v}\n" for k, v in counts.items()))
    return {"packages": {"color": list(spec["color"]), "ink": list(spec["ink"])}, "license": spec["license"],
            "counts": counts, "files": files}


TONED = ("openmoji", "fluent", "emojione")
"""Sets that draw people in five skin tones: `tones/` (build_tones)."""
TONES = ("light", "medium-light", "medium", "medium-dark", "dark")
"""The five skin tones (Fitzpatrick 1-2 to 6), as the sets name them."""
OPENMOJI_TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")


def tone_of(key: str, name: str) -> tuple[str, int] | None:
    """(the design's name without its skin tone, the tone 0-4) of a design drawn in one skin tone; None otherwise
    (no tone, or several people in different tones)."""
    if key == "openmoji":
        parts = name.split("-")
        found = [i for i, p in enumerate(parts) if p in OPENMOJI_TONES]
        if len(found) != 1:
            return None
        return "-".join(parts[: found[0]] + parts[found[0] + 1:]), OPENMOJI_TONES.index(parts[found[0]])
    suffix = "-skin-tone" if key == "emojione" else ""
    for t in sorted(range(len(TONES)), key=lambda t: -len(TONES[t])):  # medium-light before light
        end = f"-{TONES[t]}{suffix}"
        if name.endswith(end):
            return name[: -len(end)], t
    return None


def build_tones(key: str, spec: dict, drawings, out: Path, args, render) -> dict:
    """The same people in five skin tones, for reference-based coloring (docs/realdata.md): every held-out design
    (test/) drawn in all five tones, as `tones/scan/<design>.png` (its ink drawing, the same in every tone) and
    `tones/color/<tone>/<design>.png`. A held-out design's tone variants share its ink drawing, so none is in
    training."""
    ink_svgs, color_svgs = drawings()
    groups: dict[str, dict[int, str]] = {}
    for name in color_svgs:
        found = tone_of(key, name)
        if found and (name in ink_svgs or found[0] in ink_svgs):
            groups.setdefault(found[0], {})[found[1]] = name
    held_out = {p.stem for p in (out / key / "test" / "scan").glob("*.png")}
    # The held-out design is whichever of a tone group sorted first (the dedupe keeps one per ink drawing).
    designs = sorted(b for b, g in groups.items() if len(g) == len(TONES) and ({b, *g.values()} & held_out))
    files, put = fresh(out / key / "tones", "tones/")

    def draw(b: str) -> list[bytes]:
        g = groups[b]
        ink = ink_svgs.get(g[0]) or ink_svgs[b]  # a set that draws the tones in ink draws them alike
        return [png(render(ink, args.size), "L")] + [png(render(color_svgs[g[t]], args.size), "RGB")
                                                               for t in range(len(TONES))]

    with ThreadPoolExecutor(args.jobs) as pool:
        for b, drawn in zip(designs, pool.map(draw, designs), strict=True):
            put(f"scan/{b}.png", drawn[0])
            for t, data in enumerate(drawn[1:]):
                put(f"color/{t}-{TONES[t]}/{b}.png", data)
    return {"designs": len(designs), "files": files}


def settings_of(key: str, args) -> dict:
    """What a set's files depend on, as its record (realdata.json, tones.json) holds it: JSON, so tuples read back
    as lists and a rerun with nothing changed finds the set up to date."""
    return json.loads(json.dumps({"version": VERSION, "size": args.size, "big": args.big, "big_count": args.big_count,
                                  "test_fraction": args.test_fraction, "seed": args.seed,
                                  "packages": {k: v for k, v in SETS[key].items() if k != "kind"}}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/realdata"))
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated: {', '.join(SETS)}")
    p.add_argument("--size", type=int, default=256, help="render size of the train and test images")
    p.add_argument("--big", type=int, default=1024, help="render size of the full-resolution test subset")
    p.add_argument("--big-count", type=int, default=200, help="held-out designs also rendered at --big")
    p.add_argument("--test-fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    keys = [k.strip() for k in args.sets.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(SETS))
    if unknown:
        fail(f"unknown set(s) {unknown}: choose from {sorted(SETS)}")
    render = renderer()
    for key in keys:
        make_set(key, args, render)


def make_set(key: str, args, render) -> None:
    """A set, and its people in five tones for the sets that draw them; each only when its record does not hold
    these settings already (a rerun with nothing changed does nothing)."""
    settings = settings_of(key, args)
    drawings = functools.cache(lambda: svgs(SETS[key], args.out / "npm"))  # parsed once, and only if needed
    # The set first: rebuilding it empties its folder, tones.json with it, so its tones are rebuilt too.
    made = ensure(args.out / key / "realdata.json", settings,
                  lambda: build_set(key, SETS[key], drawings, args.out, args, render))
    print(f"{key}: {made['counts']} -> {args.out / key}" if made else f"{key}: up to date ({args.out / key})")
    if key in TONED:
        made = ensure(args.out / key / "tones.json", settings,
                      lambda: build_tones(key, SETS[key], drawings, args.out, args, render))
        print(f"{key} tones: {made['designs']} held-out designs in {len(TONES)} skin tones -> {args.out / key}/tones"
              if made else f"{key} tones: up to date")


def ensure(record: Path, settings: dict, build) -> dict | None:
    """build() and its result, unless `record` holds these settings already (None). The record is written last and
    atomically: a killed build leaves none, so the next run builds again."""
    found = read_json(record)
    if found is not None and found.get("settings") == settings:
        return None
    result = build()
    write_json(record, {"settings": settings, **result})
    return result

if __name__ == "__main__":
    main()
