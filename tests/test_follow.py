"""A chapter follows the pages a person colored (onepunch/follow.py): shape descriptions, the matching, the CLI's
--follow and the web app's "Chapter follows this page", on generated pages of one character."""

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from onepunch import clicks, follow
from tests.conftest import cli

HAT, FACE, BODY = (200, 30, 30), (240, 200, 160), (40, 60, 200)


def character(size: int, cx: int, cy: int, s: int, colored: bool) -> np.ndarray:
    """A page of one character (a hat, a face with two eyes, a body), at (cx, cy) and scale s: its line art (uint8
    (size, size)) or, `colored`, as a person colors it (uint8 (size, size, 3): hat red, face skin, body blue)."""
    img = np.full((size, size, 3), 255, np.uint8)
    hat = np.int32([[cx - 0.3 * s, cy - 0.25 * s], [cx + 0.3 * s, cy - 0.25 * s], [cx, cy - 0.7 * s]])
    body = (int(cx - 0.3 * s), int(cy + 0.35 * s)), (int(cx + 0.3 * s), int(cy + s))
    if colored:
        cv2.fillPoly(img, [hat], HAT)
        cv2.circle(img, (cx, cy), int(0.3 * s), FACE, -1)
        cv2.rectangle(img, *body, BODY, -1)
    t = max(1, round(s / 40))
    cv2.polylines(img, [hat], True, (0, 0, 0), t)
    cv2.circle(img, (cx, cy), int(0.3 * s), (0, 0, 0), t)
    for dx in (-0.1, 0.1):
        cv2.circle(img, (int(cx + dx * s), int(cy - 0.05 * s)), max(1, int(0.04 * s)), (0, 0, 0), -1)
    cv2.rectangle(img, *body, (0, 0, 0), t)
    return img if colored else img[..., 0].copy()


PAGES = [(100, 100, 120), (160, 90, 120), (128, 80, 90), (90, 100, 140)]
"""The character on each page of the chapter: moved and drawn smaller and larger than on the colored first page."""


def delta(out: np.ndarray, scan: np.ndarray, truth: np.ndarray) -> list[float]:
    """CIEDE2000 between the truth's and the output's color of each shape the line art encloses."""
    return clicks.obedience(out, scan, clicks.clicks(scan, truth))


def test_a_description_is_the_mean_of_the_features_upsampled_over_the_shape():
    rng = np.random.default_rng(0)
    work = np.full((96, 64), 255, np.uint8)
    cv2.circle(work, (30, 40), 20, 0, 2)
    cv2.rectangle(work, (10, 70), (50, 90), 0, 2)
    spots = clicks.spots(work)
    assert len(spots) == 2
    feats = [(rng.standard_normal((c, 96 // s, 64 // s)).astype(np.float32), s) for c, s in ((8, 16), (4, 8), (2, 4))]
    got = follow.describe(feats, spots, work.shape)
    levels = []
    for f, _ in feats:
        up = torch.nn.functional.interpolate(torch.from_numpy(f)[None], size=work.shape, mode="bilinear",
                                             align_corners=False)[0].reshape(f.shape[0], -1)
        level = torch.stack([up[:, torch.from_numpy(s["where"])].mean(1) for s in spots])
        levels.append(torch.nn.functional.normalize(level, dim=1))
    want = torch.cat(levels, 1).numpy() / np.sqrt(3)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_a_shape_takes_the_color_of_the_shape_it_matches_and_no_other():
    work = np.full((64, 128), 255, np.uint8)
    cv2.rectangle(work, (8, 8), (56, 56), 0, 2)     # left: described as the reference's shape
    cv2.rectangle(work, (72, 8), (120, 56), 0, 2)   # right: unlike anything in the reference
    spots = clicks.spots(work)
    left = [s["x"] < 64 for s in spots]
    f = np.zeros((2, 4, 8), np.float32)
    f[0, :, :4] = 1  # the left half's features point one way, the right half's the other
    f[1, :, 4:] = 1
    ref = follow.Reference(np.float32([[1, 0]]), np.uint8([[10, 200, 30]]))
    found = follow.points(work, [(f, 16)], ref)
    assert len(found) == 1 and found[0]["x"] < 64 and found[0]["color"] == [10, 200, 30]
    # The person's own hint in the left shape wins: it takes nothing from the reference.
    taken = np.zeros(work.shape, bool)
    taken[30, 30] = True
    assert follow.points(work, [(f, 16)], ref, taken) == []
    assert follow.points(work, [(f, 16)], follow.Reference.empty(2)) == []
    two = follow.Reference.join([ref, follow.Reference(np.float32([[0, 1]]), np.uint8([[1, 2, 3]]))])
    assert sorted(p["color"] for p in follow.points(work, [(f, 16)], two)) == [[1, 2, 3], [10, 200, 30]]
    assert sum(left) == 1


def test_a_loose_match_follows_only_where_the_net_colored_both_shapes_alike():
    work = np.full((64, 128), 255, np.uint8)
    cv2.rectangle(work, (8, 8), (56, 56), 0, 2)     # left: described as the reference's shape
    cv2.rectangle(work, (72, 8), (120, 56), 0, 2)   # right: described loosely alike (cosine 0.8)
    f = np.zeros((2, 4, 8), np.float32)
    f[0, :, :4] = 1
    f[:, :, 4:] = np.float32([0.8, 0.6])[:, None, None]
    tan, blue = [200, 160, 120], [40, 60, 200]
    ref = follow.Reference(np.float32([[1, 0]]), np.uint8([[10, 200, 30]]), np.uint8([tan]))
    net = np.zeros((*work.shape, 3), np.uint8)
    net[:, :64], net[:, 64:] = tan, [204, 163, 118]  # the net colored both shapes as the reference's
    assert follow.LOOSE < 0.8 < follow.SIMILAR
    found = follow.points(work, [(f, 16)], ref, net=net)
    assert sorted(p["x"] < 64 for p in found) == [False, True] and all(p["color"] == [10, 200, 30] for p in found)
    # The net colored the right shape otherwise: only the close match follows. So without the net's colors, on
    # either side, and with loose matches off.
    net[:, 64:] = blue
    for got in (follow.points(work, [(f, 16)], ref, net=net), follow.points(work, [(f, 16)], ref),
                follow.points(work, [(f, 16)], follow.Reference(ref.keys, ref.colors), net=net)):
        assert len(got) == 1 and got[0]["x"] < 64


def test_a_shape_drawn_open_follows_as_the_shape_it_is_and_only_shapes_of_its_kind(monkeypatch):
    work = np.full((64, 256), 255, np.uint8)
    cv2.rectangle(work, (8, 8), (56, 56), 0, 2)
    work[28:34, 54:59] = 255  # a 6 px gap: the paper around the drawing runs into the shape (regions.GAP shuts it)
    cv2.rectangle(work, (136, 8), (184, 56), 0, 2)  # the same shape drawn closed
    f = np.zeros((2, 4, 16), np.float32)  # the left half's features point one way, the right half's the other
    f[0, :, :8], f[1, :, 8:] = 1, 1
    colored = np.full((*work.shape, 3), 255, np.uint8)
    colored[10:55, 10:55] = FACE
    colored[10:55, 138:183] = BODY
    assert [s["x"] > 128 for s in clicks.spots(work, gap=0)] == [True]  # as drawn, the left shape is paper
    ref = follow.reference(work, [(f, 16)], colored, split=True)
    assert ref.drawn.tolist() == [True, False] and ref.colors.tolist() == [list(BODY), list(FACE)]
    # Each shape follows its own; as drawn alone, the open shape is paper and takes nothing.
    found = sorted(follow.points(work, [(f, 16)], ref), key=lambda p: p["x"])
    assert [(p["x"] < 128, p["color"]) for p in found] == [(True, list(FACE)), (False, list(BODY))]
    monkeypatch.setattr(follow, "SPLIT", False)
    assert [p["color"] for p in follow.points(work, [(f, 16)], ref)] == [list(BODY)]
    # Described alike, a shape still takes nothing from the reference's shape of the other kind.
    same = np.ones((1, 4, 16), np.float32)
    both = follow.reference(work, [(same, 16)], colored, split=True)
    closed = follow.Reference(both.keys[:1], both.colors[:1], None, both.drawn[:1])
    alone = follow.Reference(both.keys[1:], both.colors[1:], None, both.drawn[1:])
    monkeypatch.setattr(follow, "SPLIT", True)
    assert [(p["x"] < 128, p["color"]) for p in follow.points(work, [(same, 16)], alone)] == [(True, list(FACE))]
    assert [(p["x"] < 128, p["color"]) for p in follow.points(work, [(same, 16)], closed)] == [(False, list(BODY))]
    joined = follow.Reference.join([follow.Reference(same[:, 0, :1].T, ref.colors[:1]), alone])
    assert joined.drawn.tolist() == [True, False]


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
    """chapter/p1..p4.png (line art), mine/p1.png (the person's colors of p1) and the truths."""
    root = tmp_path_factory.mktemp("chapter")
    (root / "chapter").mkdir()
    (root / "mine").mkdir()
    for k, (cx, cy, s) in enumerate(PAGES, 1):
        Image.fromarray(character(256, cx, cy, s, False), "L").save(root / "chapter" / f"p{k}.png")
    cx, cy, s = PAGES[0]
    Image.fromarray(character(256, cx, cy, s, True)).save(root / "mine" / "p1.png")
    return root


@pytest.mark.slow  # three runs of the CLI; the fast tier keeps the API test below
def test_a_chapter_follows_the_page_a_person_colored(chapter, plain_color_pt):
    """The issue's test: a chapter colorized from one colored page keeps the character's colors on the other pages
    (moved, smaller, larger), with a colorizer trained a few steps on ordinary data; without --follow it does not."""
    base = ["colorize", str(chapter / "chapter"), "--ckpt", str(plain_color_pt), "--working-size", "256",
            "--device", "cpu"]
    r = cli(*base, "--out", str(chapter / "followed"), "--follow", str(chapter / "mine" / "p1.png"))
    assert r.returncode == 0, r.stderr
    assert "colors 3 shape(s)" in r.stdout + r.stderr
    r = cli(*base, "--out", str(chapter / "alone"))
    assert r.returncode == 0, r.stderr
    for k, (cx, cy, s) in enumerate(PAGES, 1):
        scan, truth = character(256, cx, cy, s, False), character(256, cx, cy, s, True)
        followed = np.asarray(Image.open(chapter / "followed" / "chapter" / f"p{k}.png").convert("RGB"))
        alone = np.asarray(Image.open(chapter / "alone" / "chapter" / f"p{k}.png").convert("RGB"))
        assert max(delta(followed, scan, truth)) < 5, (k, delta(followed, scan, truth))
        assert min(delta(alone, scan, truth)) > 10, (k, delta(alone, scan, truth))
    # The record holds what the outputs follow; a rerun with nothing changed does nothing.
    record = json.loads((chapter / "followed" / ".onepunch-colorize.json").read_text())
    assert len(record["settings"]["follow"]) == 1 and len(record["settings"]["follow_pages"]) == 1
    r = cli(*base, "--out", str(chapter / "followed"), "--follow", str(chapter / "mine" / "p1.png"))
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0 and "0 page(s) colored" in said and "4 input(s) up to date" in said, said
    assert "colors 3 shape(s)" not in said  # nothing to do: the colored page is checked, not run through the net


def test_follow_mistakes_are_one_line_errors(chapter, plain_color_pt, color_pt, tmp_path):
    base = ["colorize", str(chapter / "chapter"), "--ckpt", str(plain_color_pt), "--out", str(tmp_path / "o"),
            "--device", "cpu"]
    Image.new("RGB", (64, 64), "red").save(tmp_path / "nobody.png")
    r = cli(*base, "--follow", str(tmp_path / "nobody.png"))
    assert r.returncode == 2 and "no input page named nobody" in r.stderr and "Traceback" not in r.stderr
    Image.new("RGB", (256, 64), "red").save(tmp_path / "p2.png")
    r = cli(*base, "--follow", str(tmp_path / "p2.png"))
    assert r.returncode == 2 and "not a version of" in r.stderr and "Traceback" not in r.stderr
    r = cli(*base, "--follow", str(chapter / "mine" / "p1.png"), "--hint-fill", "net")  # this net takes no hints
    assert r.returncode == 2 and "needs hints" in r.stderr and "Traceback" not in r.stderr
    r = cli(*base, "--follow", str(tmp_path / "missing.png"))
    assert r.returncode == 2 and "--follow" in r.stderr and "Traceback" not in r.stderr


def test_the_web_app_follows_a_colored_page(chapter, plain_color_pt):
    """The API as the page uses it: color page 1 with clicks, let the chapter follow it, colorize page 2 without any."""
    from fastapi.testclient import TestClient

    from onepunch.inference import PageColorizer
    from onepunch.serve import make_app

    client = TestClient(make_app(PageColorizer(plain_color_pt, device="cpu", working_size=256), hosts=("testserver",)))
    files = [("file", (f"p{k}.png", (chapter / "chapter" / f"p{k}.png").read_bytes())) for k in (1, 2)]
    sid = client.post("/api/open", files=files).json()["session"]
    assert client.get("/api/info").json()["follow"] is True
    r = client.post(f"/api/follow/{sid}/0")
    assert r.status_code == 400 and "colorize page 1 first" in r.json()["error"]
    scan1, truth1 = character(256, *PAGES[0], False), character(256, *PAGES[0], True)
    hints = json.dumps(clicks.as_hints(clicks.clicks(scan1, truth1)))
    assert client.post(f"/api/colorize/{sid}/0", data={"hints": hints}).status_code == 200
    assert client.post(f"/api/follow/{sid}/0").json() == {"followed": [0]}
    scan2, truth2 = character(256, *PAGES[1], False), character(256, *PAGES[1], True)
    out = np.asarray(Image.open(io.BytesIO(client.post(f"/api/colorize/{sid}/1", data={"hints": "[]"}).content)))
    assert max(delta(out, scan2, truth2)) < 5, delta(out, scan2, truth2)
    assert client.delete(f"/api/follow/{sid}").status_code == 200
    out = np.asarray(Image.open(io.BytesIO(client.post(f"/api/colorize/{sid}/1", data={"hints": "[]"}).content)))
    assert min(delta(out, scan2, truth2)) > 10


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_the_chapter_follows_a_page_in_a_real_browser(chapter, plain_color_pt, tmp_path):
    """A person opens two pages, clicks a color into each shape of the first, colorizes it, presses "Chapter follows
    this page", goes to the second page and colorizes it without a click: its shapes come out in the first page's
    colors, as the page shows them. Saves a screenshot (ONEPUNCH_FOLLOW_SCREENSHOT)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from scripts.serve_screenshot import chromium, start_server
    from tests.test_serve import MEAN_OF_BOX

    proc, url = start_server(plain_color_pt, "--working-size", "256", stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    d = chromium(1400, 900)
    try:
        wait = WebDriverWait(d, 60)
        d.get(url)
        wait.until(lambda d: "working size" in d.find_element(By.ID, "info").text)
        d.find_element(By.ID, "open").send_keys("\n".join(str(chapter / "chapter" / f"p{k}.png") for k in (1, 2)))
        wait.until(lambda d: d.find_element(By.ID, "stack").is_displayed())
        assert d.find_element(By.ID, "follow").get_attribute("disabled")  # nothing colorized yet
        canvas = d.find_element(By.ID, "hints")
        w, h = canvas.size["width"], canvas.size["height"]
        scan1, truth1 = character(256, *PAGES[0], False), character(256, *PAGES[0], True)
        for p in clicks.clicks(scan1, truth1):
            d.execute_script("const s = document.getElementById('swatch'); s.value = arguments[0];"
                             "s.dispatchEvent(new Event('input'));", "#{:02x}{:02x}{:02x}".format(*p["color"]))
            ActionChains(d).move_to_element_with_offset(canvas, int(w * p["x"] / 256 - w / 2),
                                                        int(h * p["y"] / 256 - h / 2)).click().perform()
        d.find_element(By.ID, "colorize").click()
        wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-ready") == "1")
        d.find_element(By.ID, "follow").click()
        wait.until(lambda d: "Following page 1" in d.find_element(By.ID, "unfollow").text)
        d.find_element(By.ID, "next").click()
        wait.until(lambda d: "page 2 / 2" in d.find_element(By.ID, "pageno").text)
        d.find_element(By.ID, "colorize").click()
        wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-ready") == "1")
        scan2, truth2 = character(256, *PAGES[1], False), character(256, *PAGES[1], True)
        for p in clicks.clicks(scan2, truth2):  # a box around each shape's most interior point, as the page shows it
            x, y = int(p["x"]), int(p["y"])
            shown = d.execute_script(MEAN_OF_BOX, x - 3, y - 3, x + 4, y + 4)
            assert np.abs(np.subtract(shown, p["color"])).max() < 25, (p, shown)
        shot = Path(os.environ.get("ONEPUNCH_FOLLOW_SCREENSHOT", tmp_path / "follow.png"))
        d.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        d.quit()
        proc.terminate()
        proc.wait(10)


def test_a_colored_page_finds_its_drawing_by_name_in_folders_and_chapters(tmp_path):
    """--follow's page: the input of the same name, in a folder or a .cbz; among several, the one in a folder (or
    chapter) of the colored file's folder's name; none or several left: a one-line error."""
    import zipfile

    from onepunch import pages
    from onepunch.errors import UserError
    from onepunch.stages.colorize import _named

    for ch in ("ch1", "ch2"):
        (tmp_path / ch).mkdir()
        (tmp_path / ch / "003.png").write_bytes(f"{ch} page".encode())
    with zipfile.ZipFile(tmp_path / "vol2.cbz", "w") as zf:
        zf.writestr("pages/007.jpg", b"member page")
    jobs = pages.discover([tmp_path / "ch1", tmp_path / "ch2", tmp_path / "vol2.cbz"], tmp_path / "out", "png")
    assert _named(jobs, Path("mine/vol2/007.png")) == (f"{tmp_path / 'vol2.cbz'}:pages/007.jpg", b"member page")
    assert _named(jobs, Path("colored/ch2/003.png"))[1] == b"ch2 page"
    with pytest.raises(UserError, match="2 input pages"):
        _named(jobs, Path("colored/003.png"))
    with pytest.raises(UserError, match="no input page named 004"):
        _named(jobs, Path("004.png"))
