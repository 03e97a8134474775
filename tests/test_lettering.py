"""Lettering: speech bubbles and their text are found, and colorize leaves them black on white."""

import numpy as np
import pytest
from PIL import Image

from onepunch import PageColorizer, lettering
from onepunch.errors import UserError
from onepunch.sample import draw_lettered_page, draw_page

NEAR = 3  # px: the found mask may include the bubble's outline and the glyphs' antialiased edges


def outside(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * NEAR + 1,) * 2, np.uint8)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("size", [(700, 980), (1600, 2240)])  # the second is found on a copy of at most 2048 px
def test_bubbles_and_their_text_are_found(size):
    rng = np.random.default_rng(1)
    for i in range(4):
        page, bubbles = draw_lettered_page(rng, *size, lineart=i % 2 == 0)
        found = lettering.find(page)
        assert found.shape == page.shape
        assert (found & bubbles).sum() >= 0.95 * bubbles.sum(), i
        assert (found & outside(bubbles)).mean() < 0.002, i


def test_pages_without_lettering_keep_almost_nothing():
    """Line art, screentone, hatching and solid blacks are not text (the sample's pages, both kinds)."""
    rng = np.random.default_rng(2)
    shares = [lettering.find(draw_page(rng, 700, 980, lineart=i % 2 == 0)).mean() for i in range(8)]
    assert max(shares) < 0.005, shares


def test_colorize_keeps_lettering_black_on_white(color_pt):
    page, bubbles = draw_lettered_page(np.random.default_rng(3), 600, 840)
    inside = bubbles & outside(~bubbles)  # the bubbles' insides, away from their outlines
    out = {m: np.asarray(PageColorizer(color_pt, device="cpu", working_size=256, lettering=m)
                         .colorize(Image.fromarray(page)), int) for m in ("keep", "off")}
    assert (out["keep"][inside] == page[inside][:, None]).all()  # exactly the page: grey, untouched
    assert np.abs(out["off"][inside] - page[inside][:, None]).mean() > 5  # the random net tints them
    with pytest.raises(UserError, match="lettering must be"):
        PageColorizer(color_pt, device="cpu", lettering="erase")
