"""The full-size transfer (onepunch/transfer.py) made faster must stay the transfer it was: the same output however
the page is cut into strips, and the pre-2026-12-07 whole-page computation (below, kept as the reference) to within
rounding."""

import cv2
import numpy as np
import pytest

from onepunch import transfer
from onepunch.sample import draw_page


def reference(grey, work, color, chroma, detail):
    """The transfer as it was computed before the strips were made faster, for the whole page at once: warpAffine
    upsampling, Lab of every pixel, inward chroma from the nearest inner pixel, then the detail (or luminance) and
    the chroma scaled by min(1, L_out / L_net)."""
    h, w = grey.shape

    def up(a):
        sy, sx = a.shape[0] / h, a.shape[1] / w
        m = np.float32([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
        return cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    lab = cv2.cvtColor(up(color).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    if chroma == "inward":
        reach = int(np.ceil(max(h / color.shape[0], w / color.shape[1]))) + 1
        ink = (grey < transfer.INK).astype(np.uint8)
        inner = (cv2.distanceTransform(1 - ink, cv2.DIST_L2, 3) > reach) | (cv2.distanceTransform(ink, cv2.DIST_L2, 3)
                                                                            > reach)
        dist, label = cv2.distanceTransformWithLabels((~inner).astype(np.uint8), cv2.DIST_L2, 3,
                                                      labelType=cv2.DIST_LABEL_PIXEL)
        ys, xs = np.nonzero(inner)
        outer = ~inner & (dist <= reach + 3)
        src = label[outer] - 1
        lab[outer, 1:] = lab[ys[src], xs[src], 1:]
    page_l = transfer._L_OF_GREY[grey]
    light = np.clip(lab[..., 0] + page_l - up(transfer._L_OF_GREY[work]), 0, 100) if detail else page_l
    lab[..., 1:] *= np.minimum(1.0, light / np.maximum(lab[..., 0], 1.0))[..., None]
    lab[..., 0] = light
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)


def page(h, w, seed=0):
    """A line-art page, its working copy (longer side 256) and a smooth random 'net output' at that size."""
    rng = np.random.default_rng(seed)
    grey = draw_page(rng, w, h)
    grey = grey if grey.ndim == 2 else cv2.cvtColor(grey, cv2.COLOR_RGB2GRAY)
    size = (max(1, w * 256 // max(h, w)), max(1, h * 256 // max(h, w)))
    work = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    color = cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), (0, 0), 3)
    return grey, work, color


def run(grey, work, color, chroma, detail):
    return (transfer.transfer_detail(grey, work, color, chroma) if detail
            else transfer.transfer_color(grey, color, chroma))


@pytest.mark.parametrize("chroma", ["inward", "bilinear"])
@pytest.mark.parametrize("detail", [True, False])
def test_strips_and_threads_do_not_change_the_page(monkeypatch, chroma, detail):
    grey, work, color = page(700, 500)
    outs = []
    for pixels, threads in [(1 << 30, 1), (500 * 7, 1), (500 * 23, 3), (1 << 18, 8)]:
        monkeypatch.setattr(transfer, "STRIP_PIXELS", pixels)
        monkeypatch.setattr(transfer, "TRANSFER_THREADS", threads)
        outs.append(run(grey, work, color, chroma, detail))
    assert all(np.array_equal(o, outs[0]) for o in outs[1:])


@pytest.mark.parametrize("chroma", ["inward", "bilinear"])
@pytest.mark.parametrize("detail", [True, False])
@pytest.mark.parametrize("shape", [(700, 500), (300, 1800)])
def test_the_same_transfer_as_before_to_within_rounding(chroma, detail, shape):
    """Upsampling by remap (exact source positions) instead of warpAffine moves a few upsampled values by one
    level, which the Lab round trip can make two in the output: never more, and in under 0.1% of values."""
    grey, work, color = page(*shape, seed=1)
    out = run(grey, work, color, chroma, detail).astype(int)
    ref = reference(grey, work, color, chroma, detail).astype(int)
    diff = np.abs(out - ref)
    assert diff.max() <= 2
    assert (diff > 0).mean() < 1e-3
