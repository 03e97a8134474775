"""Regions of line art: one color per enclosed shape, paper kept paper, and hints that are obeyed whatever the net."""

import cv2
import numpy as np
import pytest
from PIL import Image

from onepunch import clicks, regions
from onepunch.inference import PageColorizer


def rings(size: int = 128) -> np.ndarray:
    """Two inked circles side by side on white paper; uint8 (size, size)."""
    page = np.full((size, size), 255, np.uint8)
    cv2.circle(page, (size // 4, size // 2), size // 6, 0, max(1, size // 64))
    cv2.circle(page, (3 * size // 4, size // 2), size // 6, 0, max(1, size // 64))
    return page


def test_regions_are_the_paper_the_lines_enclose():
    found = regions.find(rings())
    assert found.count == 3  # the paper around, and the inside of each circle
    assert found.edge.sum() == 1 and found.enclosed().sum() == 2
    assert found.labels[64, 32] != found.labels[64, 96] and found.labels[0, 0] != found.labels[64, 32]
    assert found.labels[64, 32 - 128 // 6] == 0  # on the line: ink
    assert found.fillable()[found.labels[64, 32]] and not found.fillable()[found.labels[0, 0]]


def test_pooling_gives_each_shape_one_color_and_keeps_paper_paper():
    page = rings()
    rng = np.random.default_rng(0)
    net = np.full((128, 128, 3), (240, 234, 222), np.uint8)  # a faint tan cast over everything
    found = regions.find(page)
    left = found.labels == found.labels[64, 32]
    net[left] = rng.integers(0, 256, (left.sum(), 3))  # noise in one shape
    net[found.labels == found.labels[64, 96]] = (30, 90, 200)
    out = regions.pool(net, page, found)
    lab = regions.to_lab(out)
    inner = left & regions.interior(found)
    assert lab[inner, 1:].std(0).max() < 0.5  # one chroma over the shape (the net's shading may stay in L*)
    assert np.array_equal(out[found.labels == found.labels[0, 0]], np.full(((found.labels == found.labels[0, 0]).sum(), 3), 255))
    right = found.labels == found.labels[64, 96]
    assert np.abs(out[right & regions.interior(found)].astype(int) - (30, 90, 200)).max() <= 2
    colored = net.copy()
    colored[found.labels == found.labels[0, 0]] = (90, 160, 240)  # a sky: the net meant it
    assert np.abs(regions.pool(colored, page, found)[0, 0].astype(int) - (90, 160, 240)).max() <= 2


def test_a_click_in_a_shape_colors_the_shape_with_any_net(color_pt):
    """hint_fill flat: whatever the net learned (here: random weights), the clicked shape comes out in the click's
    color at the page's full size (its median within CIEDE2000 5), the other shape does not."""
    page = rings(256)
    c = PageColorizer(color_pt, device="cpu")  # trained at 128 px: the page is colorized at half its size
    red = [{"x": 64, "y": 128, "color": [200, 40, 40]}]
    out = np.asarray(c.colorize(Image.fromarray(page, "L"), hints=red))
    points = clicks.clicks(page, np.repeat(page[..., None], 3, 2))
    assert len(points) == 2
    left = [dict(p, color=[200, 40, 40]) for p in points if p["x"] < 128]
    assert clicks.obedience(out, page, left)[0] < clicks.WITHIN
    right = [dict(p, color=[200, 40, 40]) for p in points if p["x"] > 128]
    assert clicks.obedience(out, page, right)[0] > 20


def test_clicks_land_inside_their_regions_with_the_truths_colors():
    page = rings()
    truth = np.full((128, 128, 3), 255, np.uint8)
    found = regions.find(page)
    truth[found.labels == found.labels[64, 32]] = (250, 200, 40)
    points = clicks.clicks(page, truth)
    assert len(points) == 2
    by_x = sorted(points, key=lambda p: p["x"])
    assert by_x[0]["color"] == [250, 200, 40] and by_x[1]["color"] == [255, 255, 255]
    assert abs(by_x[0]["x"] - 32) <= 2 and abs(by_x[0]["y"] - 64) <= 2  # the most interior point: the centre
    assert clicks.obedience(truth, page, points) == [0.0, 0.0]


@pytest.mark.slow
def test_a_net_trained_on_ordinary_data_without_hints_obeys_clicks_in_every_shape(plain_color_pt):
    """The guarantee does not rest on what the net learned: a net never shown a hint (20 steps on the sample's
    illustrations) colors each clicked shape of a page four times its working size in the click's color."""
    from onepunch.sample import draw_color

    color, scan = draw_color(np.random.default_rng(3), 256, 256)
    points = clicks.clicks(scan, color)
    assert len(points) >= 2
    c = PageColorizer(plain_color_pt, device="cpu")
    assert not c.takes_hints and c.accepts_hints
    out = np.asarray(c.colorize(Image.fromarray(scan, "L"), hints=clicks.as_hints(points)))
    de = clicks.obedience(out, scan, points)
    assert max(de) < clicks.WITHIN, de
    auto = np.asarray(c.colorize(Image.fromarray(scan, "L")))
    assert np.mean(clicks.obedience(auto, scan, points)) > 2 * np.mean(de)


def gapped(size: int = 256, gap: int = 4) -> np.ndarray:
    """One inked circle whose outline stops short for `gap` px at the top (a face drawn open at the ears)."""
    page = np.full((size, size), 255, np.uint8)
    cv2.circle(page, (size // 2, size // 2), size // 4, 0, 3)
    page[: size // 2, size // 2 - gap // 2: size // 2 - gap // 2 + gap] = 255  # cut the outline at the top
    return page


def test_a_shape_open_through_a_small_gap_is_a_shape_not_paper():
    page = gapped()
    drawn = regions.find(page, gap=0)
    assert drawn.labels[128, 128] == drawn.labels[0, 0]  # as drawn: the inside is the paper around the drawing
    found = regions.find(page)
    inside = found.labels[128, 128]
    assert inside != found.labels[0, 0] and found.enclosed()[inside] and found.edge[found.labels[0, 0]]
    assert found.labels[128, 80] == inside and found.labels[20, 128] == found.labels[0, 0]
    # A wide opening is no gap: the shape stays the paper it opens onto.
    assert regions.find(gapped(gap=40)).labels[128, 128] == regions.find(gapped(gap=40)).labels[0, 0]
    # Pooling: the shape keeps the net's color, the paper around is bleached, even where the net colored it faintly.
    net = np.full((256, 256, 3), (236, 226, 200), np.uint8)  # a tan cast (chroma ~17)
    net[found.labels == inside] = (30, 90, 200)
    out = regions.pool(net, page)
    assert (out[5, 5] == 255).all()
    assert np.abs(out[128, 128].astype(int) - (30, 90, 200)).max() <= 2
    # A click: its color fills the shape, not the page.
    spots = clicks.spots(page)
    assert [s["region"] for s in spots] == [inside]


def test_a_net_that_keeps_the_lines_gets_the_pages_own_sharp_lines():
    page = rings(256)
    ink = page < regions.PAPER
    page_l = regions.to_lab(np.repeat(page[..., None], 3, 2))[..., 0]
    blurred = cv2.GaussianBlur(cv2.erode(page, np.ones((3, 3), np.uint8)), (0, 0), 1.5)  # dark, thicker, blurred
    out = regions.to_lab(regions.pool(np.repeat(blurred[..., None], 3, 2), page))[..., 0]
    assert np.abs(regions.to_lab(np.repeat(blurred[..., None], 3, 2))[..., 0][ink] - page_l[ink]).mean() > 5
    assert np.abs(out[ink] - page_l[ink]).max() < 1.5
    # A net that lightens the lines (they are colored shapes' edges in its color art) keeps its own lightness there.
    light = np.where(ink[..., None], np.uint8([200, 120, 90]), np.uint8(255)).astype(np.uint8)
    kept = regions.to_lab(regions.pool(light, page))[..., 0]
    assert np.abs(kept[ink] - regions.to_lab(light)[..., 0][ink]).max() < 1.5
