"""Property-style tests: many seeded random cases against a statement of what must hold (no new dependency; a failing
case prints its seed). Any tag query against its set definition; any image size and Pillow mode through the shards'
decoder and through colorize."""

import io
import random

import numpy as np
import pytest
from PIL import Image

from onepunch import imageio
from onepunch.config import DomainQuery
from onepunch.query import why_not
from onepunch.sources import Record

TAGS = [f"t{i}" for i in range(8)]
RULES = ("rating", "all_of", "any_of", "none_of", "min_side", "aspect")


def random_query(rng: random.Random) -> DomainQuery:
    tags = rng.sample(TAGS, rng.randint(0, 6))
    cut = sorted(rng.choices(range(len(tags) + 1), k=2))
    min_aspect = rng.choice([0.0, 0.5, 1.0])
    return DomainQuery(all_of=tuple(tags[:cut[0]]), any_of=tuple(tags[cut[0]:cut[1]]), none_of=tuple(tags[cut[1]:]),
                       ratings=tuple(rng.sample("gsqe", rng.randint(0, 3))), min_side=rng.choice([0, 64, 256]),
                       min_aspect=min_aspect, max_aspect=rng.choice([0.0, max(min_aspect, 1.0), 2.0]))


def random_record(rng: random.Random) -> Record:
    sized = rng.random() < 0.8
    return Record(id="x", tags=tuple(rng.sample(TAGS, rng.randint(0, 8))), rating=rng.choice([None, *"gsqe"]),
                  width=rng.randint(1, 600) if sized else None, height=rng.randint(1, 600) if sized else None,
                  ext=rng.choice(["", "jpg", "png"]))


def matches(q: DomainQuery, r: Record) -> bool:
    """The query's meaning, written out once more as plain set logic."""
    tags = set(r.tags)
    ok = (not q.ratings or r.rating is None or r.rating in q.ratings) and set(q.all_of) <= tags
    ok = ok and (not q.any_of or bool(tags & set(q.any_of))) and not tags & set(q.none_of)
    if r.width and r.height:
        aspect = r.width / r.height
        ok = ok and min(r.width, r.height) >= q.min_side and not (q.min_aspect and aspect < q.min_aspect)
        ok = ok and not (q.max_aspect and aspect > q.max_aspect)
    return ok


def test_any_tag_query_matches_its_set_definition():
    rng = random.Random(0)
    for case in range(3000):
        q, r = random_query(rng), random_record(rng)
        reason = why_not(q, r)
        assert (reason is None) == matches(q, r), (case, q, r, reason)
        assert reason is None or reason in RULES, (case, reason)


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK", "PA"]


def random_image(rng: np.random.Generator) -> Image.Image:
    w, h = (int(x) for x in rng.integers(1, 160, 2))
    mode = MODES[int(rng.integers(len(MODES)))]
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mode in ("P", "PA"):
        return rgb.convert("P").convert(mode) if mode == "PA" else rgb.convert("P")
    if mode in ("I;16", "I", "F"):
        deep = Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))  # 16-bit grey, mode I;16
        return deep if mode == "I;16" else deep.convert("I").convert(mode)
    return rgb.convert(mode)


def encoded(img: Image.Image, rng: np.random.Generator) -> bytes:
    """The image in a format that can hold its mode (PNG holds most; TIFF the rest)."""
    fmt = "TIFF" if img.mode in ("I", "F", "CMYK", "PA") else ["PNG", "TIFF"][int(rng.integers(2))]
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_any_size_and_mode_decodes_to_the_asked_mode_within_bounds_or_is_a_named_reject():
    rng = np.random.default_rng(0)
    decoded = 0
    for case in range(150):
        img = random_image(rng)
        mode, max_side = ["RGB", "L"][case % 2], int(rng.integers(8, 200))
        try:
            out, size = imageio.decode(encoded(img, rng), mode=mode, max_side=max_side, max_pixels=10**7, min_side=1)
        except imageio.Reject as e:
            assert e.reason in imageio.REASONS, (case, img.mode, e)
            continue
        decoded += 1
        assert out.mode == mode and max(out.size) <= max_side and min(out.size) >= 1, (case, img.mode, out)
        assert size == img.size, (case, size, img.size)  # the source's own size is reported
    assert decoded > 120  # most cases are ordinary images: the property is not vacuous


def test_any_size_and_mode_colorizes_to_the_page_size(color_pt):
    from onepunch.inference import PageColorizer

    c = PageColorizer(color_pt, device="cpu", working_size=64)
    rng = np.random.default_rng(1)
    for case in range(30):
        page = random_image(rng)
        if page.mode == "F":  # 32-bit float: no one range to read it in, so a named reject, as in shards
            with pytest.raises(imageio.Reject, match="unsupported_mode"):
                c.colorize(page)
            continue
        out = c.colorize(page)
        if out is None:  # left alone: only a page that is already in color
            assert page.mode in ("RGB", "RGBA", "P", "PA", "CMYK"), (case, page.mode)
            continue
        assert out.mode == "RGB" and out.size == page.size, (case, page.mode, page.size, out.size)


@pytest.mark.parametrize("size", [(1, 1), (1, 500), (500, 1), (3, 7)])
def test_degenerate_pages_colorize(color_pt, size):
    from onepunch.inference import PageColorizer

    out = PageColorizer(color_pt, device="cpu", working_size=64).colorize(Image.new("L", size, 255))
    assert out.size == size and out.mode == "RGB"


def test_sha256_is_remembered_only_while_the_file_is_unchanged(tmp_path):
    import os

    from onepunch.manifest import sha256_file

    f = tmp_path / "ckpt"
    f.write_bytes(b"a" * 100)
    old = os.stat(f).st_mtime_ns - 10**10
    os.utime(f, ns=(old, old))  # an old file: its hash is remembered
    first = sha256_file(f)
    with open(f, "r+b") as fh:  # same size, same inode, rewritten in place
        fh.write(b"b")
    assert sha256_file(f) != first  # the new mtime is a new key
    f.write_bytes(b"c" * 100)  # and a file just written is never remembered, so a rewrite in the same tick is seen
    now = sha256_file(f)
    with open(f, "r+b") as fh:
        fh.write(b"d")
    assert sha256_file(f) != now
