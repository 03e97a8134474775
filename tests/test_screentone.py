"""Screentone: found, shown to the net as the grey it prints, and kept as dots in the output's lightness."""

import cv2
import numpy as np
import pytest
from PIL import Image

from onepunch import PageColorizer, screentone
from onepunch.sample import draw_lettered_page, draw_toned_page


def local_std(x: np.ndarray, k: int = 7) -> np.ndarray:
    x = x.astype(np.float32)
    m = cv2.boxFilter(x, -1, (k, k))
    return np.sqrt(np.maximum(cv2.boxFilter(x * x, -1, (k, k)) - m * m, 0))


def inner(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1,) * 2, np.uint8)) > 0


@pytest.mark.slow
def test_tone_fields_are_found_and_line_art_and_lettering_are_not():
    rng = np.random.default_rng(4)
    for _ in range(3):
        page, fields = draw_toned_page(rng, 700, 980)
        found = screentone.find(page)
        assert (found & fields).sum() >= 0.9 * fields.sum()
        assert (found & inner(~fields, 40)).mean() < 0.01  # beyond the fields' edges: (almost) nothing
    for _ in range(3):
        page, _ = draw_lettered_page(rng, 700, 980, lineart=True)
        assert screentone.find(page).mean() < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("size", [(700, 980), (1600, 2240)])  # the second is analysed on a copy of 2048 px
def test_descreen_gives_the_grey_the_tone_prints_and_leaves_the_rest(size):
    page, fields = draw_toned_page(np.random.default_rng(5), *size)
    flat = screentone.descreen(page)
    deep = inner(fields, 12)
    assert local_std(page)[deep].mean() > 60 and local_std(flat)[deep].mean() < 15  # dots -> an even grey
    n, labels = cv2.connectedComponents(deep.astype(np.uint8))
    for k in range(1, n):  # each field's grey is its dots' mean
        assert abs(float(flat[labels == k].mean()) - float(page[labels == k].mean())) < 8
    away = inner(~fields, 60)
    assert (flat[away] == page[away]).mean() > 0.99
    clean = np.full((300, 200), 255, np.uint8)
    assert screentone.descreen(clean) is clean


@pytest.mark.slow
def test_colorize_shows_the_net_grey_and_keeps_the_dots(color_pt):
    """The net's input is the descreened page; the output's lightness still has every dot (the full-size transfer
    adds the page's detail back), even from a net that draws no dots (random weights; at the page's own size, so
    without descreening the output's lightness is the net's alone)."""
    page, fields = draw_toned_page(np.random.default_rng(6), 500, 700)
    seen = {}
    for mode in ("on", "off"):
        c = PageColorizer(color_pt, device="cpu", working_size=704, descreen=mode)
        run = c.color_at_working_size
        c.color_at_working_size = lambda works, *a, run=run, mode=mode: seen.setdefault(mode, works) and run(works, *a)
        out = np.asarray(c.colorize(Image.fromarray(page)).convert("L"), np.float32)
        deep = inner(fields, 8)
        fine = [x - cv2.GaussianBlur(x, (0, 0), 4) for x in (page.astype(np.float32), out)]
        kept = np.corrcoef(fine[0][deep], fine[1][deep])[0, 1]
        assert kept > 0.85 if mode == "on" else kept < 0.5, (mode, kept)
    assert local_std(seen["on"][0])[inner(fields, 12)].mean() < 0.3 * local_std(seen["off"][0])[inner(fields, 12)].mean()
