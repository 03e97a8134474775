"""The bad-input corpus: every awkward file is rejected with a reason or converted correctly, never grey-filled."""

import io

import numpy as np
import pytest
from PIL import Image

from onepunch import imageio
from onepunch.imageio import Reject
from onepunch.sample import _png_bomb, draw_color


def enc(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def decode(data, mode="RGB", max_side=512, min_side=1):
    return imageio.decode(data, mode=mode, max_side=max_side, max_pixels=50_000_000, min_side=min_side)


@pytest.fixture(scope="module")
def art():
    arr, _ = draw_color(np.random.default_rng(3), 300, 200)
    return Image.fromarray(arr)


def reason(data, **kw):
    with pytest.raises(Reject) as e:
        decode(data, **kw)
    return e.value.reason


def test_rejects_with_reason_codes(art):
    jpg = enc(art, "JPEG", quality=90)
    assert reason(b"") == "empty_file"
    assert reason(jpg[: len(jpg) // 2]) == "truncated"
    assert reason(b"<html>not an image</html>" * 10) == "not_an_image"
    assert reason(_png_bomb(9000, 9000)) == "decompression_bomb"  # 81 MP: only a warning in Pillow by default
    assert reason(_png_bomb(40000, 40000)) == "decompression_bomb"
    frames = [art.convert("P"), art.rotate(10).convert("P")]
    gif = enc(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert reason(gif) == "animated"
    assert reason(jpg, min_side=500) == "too_small"
    assert reason(enc(Image.new("F", (40, 40)), "TIFF")) == "unsupported_mode"


def test_resize_keeps_aspect_and_never_upscales(art):
    img, size = decode(enc(art, "JPEG", quality=90), max_side=150)
    assert size == (300, 200) and img.size == (150, 100) and img.mode == "RGB"
    img, _ = decode(enc(art, "PNG"), max_side=1000)
    assert img.size == (300, 200)


def test_sixteen_bit_is_scaled_not_clipped():
    ramp = (np.linspace(0, 65535, 256)[None, :].repeat(32, 0)).astype(np.uint16)
    img, _ = decode(enc(Image.fromarray(ramp), "PNG"), mode="L")
    out = np.asarray(img).astype(int)
    assert out.min() == 0 and out.max() == 255
    assert abs(out.mean() - 127.5) < 2  # clipping would push most pixels to 255


def test_alpha_is_composited_on_white():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (255, 0, 255)  # garbage colour hidden under transparent pixels
    rgba[20:, :, :3] = (10, 20, 30)
    rgba[20:, :, 3] = 255
    img, _ = decode(enc(Image.fromarray(rgba, "RGBA"), "PNG"))
    a = np.asarray(img)
    assert (a[:20] == 255).all() and (a[20:] == (10, 20, 30)).all()


def test_palette_with_transparency(art):
    pal = art.quantize(16)
    img, _ = decode(enc(pal, "PNG", transparency=0))
    a = np.asarray(img)
    idx = np.asarray(pal) == 0
    assert idx.any() and (a[idx] == 255).all()
    assert (a[~idx] == np.asarray(pal.convert("RGB"))[~idx]).all()


def test_cmyk_and_greyscale_and_bilevel(art):
    img, _ = decode(enc(art.convert("CMYK"), "JPEG", quality=95))
    assert img.mode == "RGB"
    assert np.abs(np.asarray(img).astype(int) - np.asarray(art).astype(int)).mean() < 12
    img, _ = decode(enc(art.convert("L"), "PNG"), mode="RGB")
    assert img.mode == "RGB"
    img, _ = decode(enc(art.convert("1"), "PNG"), mode="L")
    assert img.mode == "L" and set(np.unique(np.asarray(img))) <= {0, 255}


def test_exif_orientation_is_applied(art):
    exif = art.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    stored = art.rotate(90, expand=True)  # what the camera wrote: 200x300
    img, size = decode(enc(stored, "JPEG", quality=95, exif=exif.tobytes()), max_side=150)
    assert size == (300, 200) and img.size == (150, 100)
    small = np.asarray(art.resize((150, 100))).astype(int)
    assert np.abs(np.asarray(img).astype(int) - small).mean() < 12


def test_encode_is_deterministic(art):
    assert imageio.encode(art, "jpg", 95) == imageio.encode(art.copy(), "jpg", 95)
    assert imageio.encode(art, "png", 95) == imageio.encode(art.copy(), "png", 95)
