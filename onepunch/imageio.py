"""Safe image decoding and resizing for shards: every source image becomes a clean RGB/L image or a reason code.

Pillow traps handled here (see REFERENCE.md): decompression bombs only warn below 2x the limit, so the warning is an
error; truncated files pass `verify()`, so we `load()`; EXIF orientation is applied; transparent pixels are composited on
white (their hidden colour is garbage); 16-bit images are scaled, not clipped; CMYK is converted; embedded ICC profiles
are honoured (pixels converted to sRGB); animations are
rejected rather than silently reduced to one frame.
"""

from __future__ import annotations

import ctypes
import functools
import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # never grey-fill a broken file
# A PNG's embedded ICC profile is a compressed chunk that Pillow refuses beyond 1 MB as a decompression bomb, and then
# the whole (intact) page with it; printers' profiles reach a few MB. Still bounded: 16 MB a chunk, 64 MB in all.
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, 16 << 20)

# Reason codes a sample can be rejected with (also used by the planner for metadata-level checks).
REASONS = (
    "missing_file", "empty_file", "not_an_image", "truncated", "decompression_bomb", "animated",
    "unsupported_mode", "too_small", "aspect", "duplicate_md5", "duplicate_id", "read_error", "archive_bomb", "size_mismatch",
)

GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N")


class Reject(Exception):
    """A sample that cannot go into a shard; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def decode(data: bytes, *, mode: str, max_side: int, max_pixels: int, min_side: int = 1) -> tuple[Image.Image, tuple[int, int]]:
    """Decode `data` to a `mode` ("RGB" or "L") image whose longer side is <= max_side, aspect kept.

    Returns (image, (source_width, source_height)); the source size is after EXIF orientation. Raises Reject.
    """
    if not data:
        raise Reject("empty_file")
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if getattr(img, "n_frames", 1) > 1:
                raise Reject("animated", f"{img.n_frames} frames")
            w, h = img.size
            if w * h > max_pixels:
                raise Reject("decompression_bomb", f"{w}x{h}")
            if img.format == "JPEG" and max(w, h) > max_side:
                # DCT-domain downscale (4x faster); it keeps the size >= the requested one, the resize below finishes.
                scale = max_side / max(w, h)
                img.draft(None, (max(1, int(w * scale)), max(1, int(h * scale))))
            img.load()
    except Reject:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Reject("decompression_bomb", str(e)) from None
    except UnidentifiedImageError:
        raise Reject("not_an_image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise Reject("truncated", str(e)) from None

    # EXIF orientation: the draft-scaled image keeps the tag, so transposing here is right for both paths.
    orientation = img.getexif().get(0x0112, 1)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if orientation != 1:
        img = ImageOps.exif_transpose(img)  # it copies even when there is nothing to do: call only when needed
    if min(w, h) < min_side:
        raise Reject("too_small", f"{w}x{h} < {min_side}")
    img = to_mode(to_srgb(img), mode)
    if max(img.size) > max_side:
        img = resize_max(img, max_side)
    return img, (w, h)


def resize_max(img: Image.Image, max_side: int) -> Image.Image:
    """Downscale so the longer side is max_side, aspect kept (see resize_to)."""
    factor = max(img.size) / max_side
    return resize_to(img, (max(1, round(img.width / factor)), max(1, round(img.height / factor))))


def resize_to(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Downscale to exactly `size` (w, h): a Gaussian prefilter (sigma = (factor - 1) / 2, as skimage's
    anti_aliasing) then bilinear. As close to Lanczos as INTER_AREA here, 3x faster than either, and no ringing halos
    around black lines (see BENCHMARKS.md)."""
    factor = max(img.width / size[0], img.height / size[1])
    a = np.asarray(img)
    sigma = (factor - 1) / 2
    if sigma > 0.05:
        a = cv2.GaussianBlur(a, (0, 0), sigma)
    return Image.fromarray(cv2.resize(a, size, interpolation=cv2.INTER_LINEAR), img.mode)


@functools.cache
def _srgb():
    from PIL import ImageCms

    return ImageCms.createProfile("sRGB")


ICC_MODES = {"RGB": "RGB", "RGBA": "RGB", "L": "L", "LA": "L", "CMYK": "RGB"}  # mode -> the mode converted


def to_srgb(img: Image.Image) -> Image.Image:
    """An image with an embedded ICC profile (Adobe RGB, a print CMYK, a grey gamma...), its pixels converted to
    sRGB, what the net was trained on and what viewers assume of untagged files (outputs are untagged sRGB).
    Untouched: no profile, an sRGB one, or one LittleCMS cannot read or that does not fit the mode (the pixels are
    then taken as sRGB, as every program that ignores the profile takes them). Alpha is kept as it is."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ICC_MODES:
        return img
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(src).lower():
            return img
        base = img.convert(img.mode[:-1]) if img.mode in ("RGBA", "LA") else img
        # Grey stays grey: a grey profile's pixels go to sRGB's greys (R = G = B), then back to one channel.
        out = ImageCms.profileToProfile(base, src, _srgb(), outputMode="RGB")
    except (OSError, ValueError, ImageCms.PyCMSError):
        return img
    if ICC_MODES[img.mode] == "L":
        out = out.convert("L")
    if img.mode in ("RGBA", "LA"):
        out = Image.merge(out.mode + "A", [*out.split(), img.getchannel("A")])
    return out


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode to RGB or L ("auto": L for grey modes) without clipping 16-bit data or exposing
    colours under transparency."""
    if mode == "auto":
        mode = "L" if img.mode in GREY_MODES else "RGB"
    if mode == "RGBA":  # transparency kept: hint images (onepunch/hints.py)
        if img.mode in ("RGBA", "LA", "PA", "La", "RGBa", "P"):
            return img.convert("RGBA")
        return to_mode(img, "RGB").convert("RGBA")
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        raise Reject("unsupported_mode", "32-bit float")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode == "1":
        img = img.convert("L")
    if img.mode not in ("RGB", "L"):
        try:
            img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
        except (ValueError, OSError) as e:
            raise Reject("unsupported_mode", f"{img.mode}: {e}") from None
    return img if img.mode == mode else img.convert(mode)


def tune_allocator() -> None:
    """Keep freed image buffers in the heap instead of returning them to the OS after every image.

    glibc serves each multi-MB buffer (decoded image, numpy copy, OpenCV output) with a fresh mmap and unmaps it on
    free, so every image pays its page faults again: 40% of a shards worker's time here (BENCHMARKS.md). Raising the
    mmap and trim thresholds to 64 MiB makes the buffers reusable. No-op where libc is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def encode(img: Image.Image, fmt: str, quality: int) -> bytes:
    """Encode deterministically (no timestamps, no metadata)."""
    buf = io.BytesIO()
    if fmt == "jpg":
        img.save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    else:
        img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()
