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


def icc_profile(space: str, gamma: float, description: str = "linear test profile") -> bytes:
    """A minimal ICC v2 display profile: sRGB's primaries (D50-adapted) or a grey, with a pure gamma curve; enough
    for LittleCMS, and built here so no profile file is needed."""
    import struct

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x, y, z) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    text = description.encode() + b"\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    desc += bytes(-len(desc) % 4)
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"cprt", b"text" + bytes(4) + b"none\0\0\0\0")]
    if space == "RGB ":
        tags += [(b"rXYZ", xyz(0.4361, 0.2225, 0.0139)), (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
                 (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    else:
        tags += [(b"kTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntr" + space.encode()
              + b"XYZ " + bytes(12) + b"acsp" + bytes(4) + bytes(4) + bytes(4) + bytes(4) + bytes(8) + bytes(4)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(4) + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + table + data


def test_embedded_icc_profiles_are_converted_to_srgb():
    """A page tagged with a linear-light profile: its mid grey 128 is sRGB 188 (linear 0.5). RGB, RGBA (alpha kept)
    and grey with a grey profile; a profile that does not fit or cannot be read leaves the pixels as they are."""
    def png(img, icc):
        buf = io.BytesIO()
        img.save(buf, "PNG", icc_profile=icc)
        return buf.getvalue()

    rgb_icc, grey_icc = icc_profile("RGB ", 1.0), icc_profile("GRAY", 1.0)
    cases = [(Image.new("RGB", (8, 8), (128, 128, 128)), rgb_icc, "RGB"),
             (Image.new("RGBA", (8, 8), (128, 128, 128, 255)), rgb_icc, "RGB"),
             (Image.new("L", (8, 8), 128), grey_icc, "L")]
    for img, icc, mode in cases:
        out, _ = decode(png(img, icc), mode=mode)
        assert np.abs(np.asarray(out, int) - 188).max() <= 2, (img.mode, np.asarray(out)[0, 0])
    for icc in (grey_icc, b"not a profile", icc_profile("RGB ", 1.0, "sRGB IEC61966-2.1")):
        out, _ = decode(png(Image.new("RGB", (8, 8), (128, 128, 128)), icc))
        assert (np.asarray(out) == 128).all()
    rgba = Image.new("RGBA", (8, 8), (128, 128, 128, 100))
    assert imageio.to_srgb(Image.open(io.BytesIO(png(rgba, rgb_icc)))).getchannel("A").getextrema() == (100, 100)
