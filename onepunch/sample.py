"""The embedded sample: a small, deterministic, procedural dataset in the exact Danbooru2020 layout.

    python -m onepunch sample --out data/sample        # or implicitly: any pipeline with source.kind = "sample"

Writes `danbooru2020/original/BBBB/ID.EXT` (BBBB = id % 1000), `danbooru2020/metadata/2020/20200000000000NN` (JSON
lines, Danbooru conventions: string scalars, tags as {id, name, category}) and, outside the Danbooru tree,
`truth/ID.png`: the true line art of every colored image, for evaluating generated scans later; and `pages/`, a few
manga-style pages to colorize (panels of toned scans as grey PNG, RGB JPEG and WebP; a two-page `chapter.cbz` whose
second page is pure line art; and one page already in color, which colorize leaves alone).

Images look like illustrations, not noise: closed shapes and strokes with black outlines of varying width. Colored
images get flat fills plus cel shading and highlights (what an artist adds while coloring); scans are different
drawings in line art with screentone, hatching or solid blacks. A fixed set of deliberately broken or awkward files
(truncated, empty, not an image, decompression bomb, 16-bit, CMYK, palette+transparency, RGBA, EXIF-rotated, animated,
tiny, duplicate, missing) exercises the bad-input paths. `sample.json`, written last, marks a complete sample.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from onepunch.manifest import atomic_write, exclusive, read_json, write_json

VERSION = 4
GENERAL_TAGS = ["1girl", "1boy", "solo", "smile", "long_hair", "short_hair", "blue_eyes", "hat", "hat_ribbon",
                "looking_at_viewer", "flower", "cat", "sky", "dress", "multiple_girls"]
TAG_IDS = {}  # name -> stable fake tag id


@dataclass
class Item:
    id: int
    ext: str
    data: bytes
    tags: list[tuple[str, str]]  # (name, category)
    rating: str
    size: tuple[int, int]


def tag_id(name: str) -> str:
    return str(int(hashlib.sha1(name.encode()).hexdigest()[:6], 16))


# ----------------------------------------------------------------------------------------------------------- drawing
# Base fill color of each shape kind (ellipse, polygon, rounded box), jittered per shape: as in real illustrations,
# color follows what is drawn (skin, hair, sky), so a colorizer has something to learn from the line art alone.
PALETTE = np.array([[235.0, 170.0, 120.0], [200.0, 50.0, 70.0], [60.0, 110.0, 200.0]])


def _shape_masks(rng: np.random.Generator, w: int, h: int, n: int):
    """n random closed shapes as (fill mask, outline mask, kind) triples, drawn back to front."""
    out = []
    for _ in range(n):
        lw = int(rng.integers(1, 5))
        fill = Image.new("L", (w, h), 0)
        line = Image.new("L", (w, h), 0)
        df, dl = ImageDraw.Draw(fill), ImageDraw.Draw(line)
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        r = rng.uniform(0.08, 0.35) * min(w, h)
        kind = rng.integers(3)
        if kind == 0:
            box = [cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r * rng.uniform(0.5, 1.5)]
            df.ellipse(box, fill=255)
            dl.ellipse(box, outline=255, width=lw)
        elif kind == 1:
            k = int(rng.integers(5, 10))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = r * rng.uniform(0.5, 1.0, k)
            pts = [(float(cx + a * np.cos(t)), float(cy + a * np.sin(t))) for t, a in zip(ang, rad, strict=True)]
            df.polygon(pts, fill=255)
            dl.polygon(pts, outline=255, width=lw)
        else:
            box = [cx - r, cy - r * 0.7, cx + r, cy + r * 0.7]
            df.rounded_rectangle(box, radius=r * 0.3, fill=255)
            dl.rounded_rectangle(box, radius=r * 0.3, outline=255, width=lw)
        out.append((np.asarray(fill) > 0, np.asarray(line) > 0, int(kind)))
    return out


def _strokes(rng: np.random.Generator, w: int, h: int, n: int) -> np.ndarray:
    """Open curved strokes (hair, folds): ink the shapes do not own."""
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        pts = []
        ang = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(4, 9))):
            pts.append((x, y))
            ang += rng.normal(0, 0.4)
            step = rng.uniform(0.02, 0.06) * min(w, h)
            x, y = x + step * np.cos(ang), y + step * np.sin(ang)
        d.line(pts, fill=255, width=int(rng.integers(1, 3)), joint="curve")
    return np.asarray(img) > 0


def _ink(shapes, strokes: np.ndarray) -> np.ndarray:
    """Outline mask with occlusion: a later shape hides the lines of earlier ones under it."""
    ink = np.zeros_like(strokes)
    for fill, line, _ in shapes:
        ink &= ~fill
        ink |= line
    return ink | strokes


def _soften(a: np.ndarray) -> np.ndarray:
    """Anti-alias the hard PIL edges a little, like a scanned or rendered drawing."""
    return cv2.GaussianBlur(a.astype(np.float32), (0, 0), 0.6)


def draw_color(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A colored illustration (uint8 HxWx3) and its true line art (uint8 HxW, black lines on white)."""
    shapes = _shape_masks(rng, w, h, int(rng.integers(4, 9)))
    strokes = _strokes(rng, w, h, int(rng.integers(2, 6)))
    bg = rng.uniform(200, 255, 3) if rng.random() < 0.7 else np.array([255.0, 255.0, 255.0])
    img = np.ones((h, w, 3), np.float32) * bg
    light = rng.uniform(-1, 1, 2)
    light = light / (np.linalg.norm(light) + 1e-6)
    for fill, _, kind in shapes:
        color = np.clip(PALETTE[kind] + rng.uniform(-25, 25, 3), 0, 255)
        img[fill] = color
        # Cel shading: the part of the shape not covered by itself shifted towards the light is in shadow.
        shift = (int(light[1] * 0.12 * min(w, h)), int(light[0] * 0.12 * min(w, h)))
        lit = np.roll(fill, shift, axis=(0, 1))
        img[fill & ~lit] = color * rng.uniform(0.55, 0.75)
        # Highlight: a small bright ellipse inside the shape, on the lit side.
        ys, xs = np.nonzero(fill)
        if len(ys) > 50:
            j = rng.integers(len(ys))
            yy, xx = np.ogrid[:h, :w]
            r = rng.uniform(0.02, 0.05) * min(w, h)
            spot = ((yy - ys[j]) ** 2 + ((xx - xs[j]) * 0.6) ** 2) < r * r
            img[fill & spot] = img[fill & spot] * 0.4 + 255 * 0.6
    ink = _soften(_ink(shapes, strokes))
    img = img * (1 - ink[..., None]) + 15 * ink[..., None]
    line = 255 * (1 - ink)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), np.clip(line + 0.5, 0, 255).astype(np.uint8)


def draw_scan(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, list[str]]:
    """A monochrome scan (uint8 HxW): line art with screentone, hatching or solid blacks; plus its texture tags."""
    shapes = _shape_masks(rng, w, h, int(rng.integers(4, 9)))
    strokes = _strokes(rng, w, h, int(rng.integers(2, 6)))
    img = np.full((h, w), 250.0, np.float32)
    yy, xx = np.mgrid[:h, :w]
    tags = set()
    for fill, _, _ in shapes:
        style = rng.integers(4)
        if style == 1:  # screentone: a dot grid
            p = int(rng.integers(4, 8))
            dots = ((yy % p - p / 2) ** 2 + (xx % p - p / 2) ** 2) < (p * rng.uniform(0.2, 0.35)) ** 2
            img[fill] = np.where(dots[fill], 40, 250)
            tags.add("screentone")
        elif style == 2:  # hatching: diagonal lines
            p = int(rng.integers(4, 9))
            lines = ((xx + yy) % p) < 1.5
            img[fill] = np.where(lines[fill], 30, 250)
            tags.add("hatching_(texture)")
        elif style == 3 and rng.random() < 0.4:  # solid black (hair, clothes)
            img[fill] = 20
        else:
            img[fill] = 250
    ink = _soften(_ink(shapes, strokes))
    img = img * (1 - ink) + 10 * ink
    img += rng.normal(0, 3, img.shape)  # paper grain
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), sorted(tags)


# ----------------------------------------------------------------------------------------------------------- files
def _encode(arr: np.ndarray, ext: str, rgb_scan: bool = False) -> bytes:
    img = Image.fromarray(arr)
    if rgb_scan:
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG" if ext == "jpg" else "PNG", **({"quality": 90} if ext == "jpg" else {}))
    return buf.getvalue()


def _png_bomb(w: int, h: int) -> bytes:
    """A tiny PNG whose header declares w x h pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 8)) + chunk(b"IEND", b"")


def _size(rng: np.random.Generator) -> tuple[int, int]:
    side = int(rng.integers(320, 800))
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    return (side, max(64, int(side / aspect))) if aspect >= 1 else (max(64, int(side * aspect)), side)


def _color_tags(rng: np.random.Generator) -> list[tuple[str, str]]:
    general = rng.choice(GENERAL_TAGS, size=int(rng.integers(3, 7)), replace=False).tolist()
    bg = ["simple_background"] + (["white_background"] if rng.random() < 0.5 else [])
    return ([(t, "0") for t in general + bg] + [(f"artist_{'abcdefgh'[rng.integers(8)]}", "1"), ("original", "3")])


def _rating(rng: np.random.Generator) -> str:
    u = rng.random()
    return "e" if u < 0.03 else "q" if u < 0.08 else "s"


def _awkward(rng: np.random.Generator) -> list[Item]:
    """The fixed bad-input corpus, each with the tags of a domain so the shards stage meets it."""
    color_tags = [("1girl", "0"), ("solo", "0"), ("simple_background", "0")]
    scan_tags = [("monochrome", "0"), ("greyscale", "0"), ("lineart", "0")]
    items = []
    arr, _ = draw_color(rng, 400, 300)
    good = _encode(arr, "jpg")
    items.append(Item(0, "jpg", b"", color_tags, "s", (400, 300)))                    # empty file
    items.append(Item(0, "jpg", good[: len(good) // 2], color_tags, "s", (400, 300)))  # truncated JPEG
    items.append(Item(0, "png", b"this is not an image\n" * 4, color_tags, "s", (400, 300)))
    items.append(Item(0, "png", _png_bomb(15000, 15000), color_tags, "s", (15000, 15000)))
    items.append(Item(0, "jpg", good, color_tags, "s", (400, 300)))                   # a duplicate (md5) ...
    items.append(Item(0, "jpg", good, color_tags, "s", (400, 300)))                   # ... of this one
    frames = [Image.fromarray(draw_color(rng, 200, 200)[0]).convert("P") for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    items.append(Item(0, "gif", buf.getvalue(), color_tags, "s", (200, 200)))         # animated
    arr, _ = draw_color(rng, 24, 20)
    items.append(Item(0, "png", _encode(arr, "png"), color_tags, "s", (24, 20)))      # tiny
    # Awkward but valid: each must be converted correctly.
    scan, _ = draw_scan(rng, 360, 480)
    buf = io.BytesIO()
    Image.fromarray(scan.astype(np.uint16) * 257).save(buf, "PNG")                    # 16-bit greyscale
    items.append(Item(0, "png", buf.getvalue(), scan_tags, "s", (360, 480)))
    arr, _ = draw_color(rng, 420, 320)
    buf = io.BytesIO()
    Image.fromarray(arr).convert("CMYK").save(buf, "JPEG", quality=90)               # CMYK JPEG
    items.append(Item(0, "jpg", buf.getvalue(), color_tags, "s", (420, 320)))
    arr, _ = draw_color(rng, 300, 300)
    pal = Image.fromarray(arr).quantize(64)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)                                               # palette + transparency
    items.append(Item(0, "png", buf.getvalue(), color_tags, "s", (300, 300)))
    arr, _ = draw_color(rng, 320, 240)
    rgba = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    rgba[:40, :, :3] = (255, 0, 255)  # garbage colour under transparent pixels
    rgba[:40, :, 3] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    items.append(Item(0, "png", buf.getvalue(), color_tags, "s", (320, 240)))
    arr, _ = draw_color(rng, 300, 500)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    buf = io.BytesIO()
    im.rotate(90, expand=True).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    items.append(Item(0, "jpg", buf.getvalue(), color_tags, "s", (300, 500)))
    return items


def generate(out: str | Path, scans: int = 160, colors: int = 160, seed: int = 0) -> Path:
    """Write the sample under `out` (if it is not already there with these settings); returns the Danbooru root."""
    out = Path(out)
    params = {"version": VERSION, "scans": scans, "colors": colors, "seed": seed}
    root = out / "danbooru2020"
    if read_json(out / "sample.json") == params:
        return root
    # Two runs at once (two `shards`, or `run` and `shards`): one writes, the other waits and then finds it done.
    with exclusive(out.parent / f".{out.name}.lock", "sample generation", wait=True):
        if read_json(out / "sample.json") != params:
            _generate(out, root, params, scans, colors, seed)
    return root


def _generate(out: Path, root: Path, params: dict, scans: int, colors: int, seed: int) -> None:
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    n = scans + colors + 32
    ids = np.sort(rng.choice(np.arange(1, 4_279_845), size=n, replace=False)).tolist()
    kinds = ["scan"] * scans + ["color"] * colors
    rng.shuffle(kinds)
    items: list[Item] = []
    truth: dict[int, np.ndarray] = {}
    for kind in kinds:
        w, h = _size(rng)
        if kind == "color":
            arr, line = draw_color(rng, w, h)
            ext = "jpg" if rng.random() < 0.7 else "png"
            item = Item(0, ext, _encode(arr, ext), _color_tags(rng), _rating(rng), (w, h))
            items.append(item)
            truth[len(items) - 1] = line
        else:
            arr, texture = draw_scan(rng, w, h)
            ext = "jpg" if rng.random() < 0.6 else "png"
            style = ["lineart", "comic", "sketch"][rng.integers(3)]
            tags = [(t, "0") for t in ["monochrome", "greyscale", style, *texture]]
            if rng.random() < 0.3:
                tags.append(("traditional_media", "0"))
            items.append(Item(0, ext, _encode(arr, ext, rgb_scan=rng.random() < 0.5), tags, _rating(rng), (w, h)))
    items += _awkward(rng)
    # Files Danbooru has but that are no still images; and one record whose file is missing.
    items.append(Item(0, "webm", b"\x1aE\xdf\xa3" + bytes(60), [("animated", "5"), ("1girl", "0")], "s", (640, 360)))
    items.append(Item(0, "zip", b"PK\x05\x06" + bytes(18), [("ugoira", "5"), ("1girl", "0")], "s", (600, 600)))
    items.append(Item(0, "jpg", None, [("1girl", "0"), ("simple_background", "0")], "s", (500, 400)))  # type: ignore[arg-type]
    assert len(items) <= n, (len(items), n)

    records = []
    for i, item in enumerate(items):
        item.id = ids[i]
        bucket = f"{item.id % 1000:04d}"
        if item.data is not None:
            atomic_write(root / "original" / bucket / f"{item.id}.{item.ext}", item.data)
        if i in truth:
            atomic_write(out / "truth" / f"{item.id}.png", _encode(truth[i], "png"))
        data = item.data if item.data is not None else b"missing"
        records.append({
            "id": str(item.id), "md5": hashlib.md5(data).hexdigest(), "rating": item.rating,
            "image_width": str(item.size[0]), "image_height": str(item.size[1]), "file_ext": item.ext,
            "file_size": str(len(data)), "score": str(int(rng.integers(0, 40))), "is_deleted": False,
            "is_banned": False, "parent_id": "0", "has_children": False, "pools": [], "favs": [],
            "created_at": f"2019-{1 + i % 12:02d}-{1 + i % 28:02d} 12:00:00.000 UTC",
            "tags": [{"id": tag_id(t), "name": t, "category": c} for t, c in item.tags],
        })
    # Danbooru dumps contain the odd duplicate record: the reader must keep the first one.
    records.append(dict(records[3]))
    meta = root / "metadata" / "2020"
    for k in range(4):
        part = records[k::4]
        atomic_write(meta / f"20200000000000{k:02d}", "".join(json.dumps(r) + "\n" for r in part).encode())
    # An earlier year's snapshot, which readers must ignore.
    atomic_write(root / "metadata" / "2019" / "2019000000000000", (json.dumps(records[0]) + "\n").encode())
    write_pages(out / "pages", np.random.default_rng([seed, 1]))
    write_json(out / "sample.json", params)


def draw_page(rng: np.random.Generator, w: int = 1000, h: int = 1400, colored: bool = False,
              lineart: bool = False) -> np.ndarray:
    """A manga-style page: white margins, a grid of framed panels, each a scan (screentone, hatching, solid blacks,
    like the sample's scans), pure line art, or a colored drawing."""
    page = np.full((h, w, 3) if colored else (h, w), 255, np.uint8)
    m, gap = max(4, min(w, h) // 25), max(4, min(w, h) // 60)
    rows = [(m, h // 2 - gap // 2), (h // 2 + gap // 2, h - m)]
    for y0, y1 in rows:
        split = int(rng.integers(w // 3, 2 * w // 3))
        for x0, x1 in ((m, split - gap // 2), (split + gap // 2, w - m)):
            if colored or lineart:
                color, line = draw_color(rng, x1 - x0, y1 - y0)
                page[y0:y1, x0:x1] = color if colored else line
            else:
                page[y0:y1, x0:x1] = draw_scan(rng, x1 - x0, y1 - y0)[0]
            cv2.rectangle(page, (x0, y0), (x1 - 1, y1 - 1), (0, 0, 0) if colored else 0, 4)
    return page


WORDS = ("WAIT", "what?!", "No way...", "I told you", "so", "RUN!", "it's here", "again", "Senpai", "tomorrow",
         "we", "can't", "stop", "now", "the", "train", "leaves", "at", "dawn", "OK")


def draw_lettered_page(rng: np.random.Generator, w: int = 1000, h: int = 1400, lineart: bool = True
                       ) -> tuple[np.ndarray, np.ndarray]:
    """A page (draw_page) with speech bubbles lettered in a real font (Pillow's own TrueType font, so no font file
    is needed): (grey page, bool mask of the bubbles' insides with their text)."""
    from PIL import ImageFont

    page = Image.fromarray(draw_page(rng, w, h, lineart=lineart))
    mask = Image.new("L", (w, h), 0)
    draw, mdraw = ImageDraw.Draw(page), ImageDraw.Draw(mask)
    placed: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(2, 4))):
        size = max(10, int(min(w, h) * rng.uniform(0.018, 0.03)))
        font = ImageFont.load_default(size)
        lines = [" ".join(rng.choice(WORDS, int(rng.integers(1, 4)))) for _ in range(int(rng.integers(2, 4)))]
        box = draw.multiline_textbbox((0, 0), "\n".join(lines), font=font, align="center", spacing=size // 3)
        tw, th = box[2] - box[0], box[3] - box[1]
        bw, bh = int(tw * 1.5) + 2 * size, int(th * 1.5) + 2 * size
        for _ in range(20):  # bubbles do not overlap (one would hide the other's text)
            x0, y0 = int(rng.integers(0, max(1, w - bw))), int(rng.integers(0, max(1, h - bh)))
            ellipse = (x0, y0, x0 + bw, y0 + bh)
            if all(x0 > b[2] or b[0] > x0 + bw or y0 > b[3] or b[1] > y0 + bh for b in placed):
                break
        else:
            continue
        placed.append(ellipse)
        draw.ellipse(ellipse, fill=255, outline=0, width=max(2, size // 6))
        inner = (x0 + max(2, size // 6), y0 + max(2, size // 6), x0 + bw - max(2, size // 6), y0 + bh - max(2, size // 6))
        mdraw.ellipse(inner, fill=255)
        draw.multiline_text((x0 + (bw - tw) // 2 - box[0], y0 + (bh - th) // 2 - box[1]), "\n".join(lines),
                            font=font, fill=0, align="center", spacing=size // 3)
    return np.asarray(page), np.asarray(mask) > 0


def dot_screen(h: int, w: int, period: float, radius: float, diagonal: bool) -> np.ndarray:
    """bool (h, w): the dots of a printed screen (a square grid, or one turned 45 degrees as most printed tone)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = ((xx + yy) / np.sqrt(2), (xx - yy) / np.sqrt(2)) if diagonal else (xx, yy)
    return np.hypot(u % period - period / 2, v % period - period / 2) <= radius


def draw_toned_page(rng: np.random.Generator, w: int = 1000, h: int = 1400) -> tuple[np.ndarray, np.ndarray]:
    """A line-art page (draw_page) with 2-3 outlined fields of printed dot tone (periods 4-9 px, 25-80% grey):
    (grey page, bool mask of the fields' insides)."""
    page = draw_page(rng, w, h, lineart=True)
    mask = Image.new("L", (w, h), 0)
    for _ in range(int(rng.integers(2, 4))):
        bw, bh = int(rng.integers(w // 6, w // 3)), int(rng.integers(h // 8, h // 4))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        box = (x0, y0, x0 + bw, y0 + bh)
        shape = Image.new("L", (w, h), 0)
        ImageDraw.Draw(shape).ellipse(box, fill=255)
        inside = np.asarray(shape) > 0
        period = float(rng.uniform(4, 9))
        dots = dot_screen(h, w, period, period * float(rng.uniform(0.2, 0.4)), bool(rng.integers(0, 2)))
        page = page.copy()
        page[inside] = np.where(dots[inside], 0, 255)
        img = Image.fromarray(page)
        ImageDraw.Draw(img).ellipse(box, outline=0, width=3)
        page = np.asarray(img)
        ImageDraw.Draw(mask).ellipse((x0 + 3, y0 + 3, x0 + bw - 3, y0 + bh - 3), fill=255)
    return page, np.asarray(mask) > 0


def write_pages(out: Path, rng: np.random.Generator) -> None:
    grey = [draw_page(rng) for _ in range(4)] + [draw_page(rng, lineart=True)]
    atomic_write(out / "page-01.png", _encode(grey[0], "png"))
    atomic_write(out / "page-02.jpg", _encode(np.repeat(grey[1][..., None], 3, 2), "jpg"))
    buf = io.BytesIO()
    Image.fromarray(grey[2]).save(buf, "WEBP", quality=90)
    atomic_write(out / "page-03.webp", buf.getvalue())
    atomic_write(out / "cover.png", _encode(draw_page(rng, colored=True), "png"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, page in enumerate(grey[3:], 1):
            z.writestr(zipfile.ZipInfo(f"{i:02d}.png", (1980, 1, 1, 0, 0, 0)), _encode(page, "png"))
        z.writestr(zipfile.ZipInfo("ComicInfo.xml", (1980, 1, 1, 0, 0, 0)),
                   "<ComicInfo><Title>onepunch sample chapter</Title></ComicInfo>")
    atomic_write(out / "chapter.cbz", buf.getvalue())
