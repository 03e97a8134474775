"""`onepunch serve`: the API as the page uses it, hostile uploads, and the real page driven in headless Chromium."""

import io
import os
import shutil
import socket
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onepunch.sample import _png_bomb
from scripts.serve_screenshot import chromium, free_port, start_server
from tests.conftest import cli, shapes_page

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def app_client(ckpt):
    from fastapi.testclient import TestClient

    from onepunch.inference import PageColorizer
    from onepunch.serve import make_app

    return TestClient(make_app(PageColorizer(ckpt, device="cpu"), hosts=("testserver",)))


@pytest.fixture(scope="module")
def client(color_pt):
    """The app around an untrained tiny colorizer: enough for everything but following hints."""
    return app_client(color_pt)


def open_page(client, name, data):
    return client.post("/api/open", files={"file": (name, data)})


def test_a_page_is_opened_hinted_colorized_and_downloaded(client):
    scan, color = shapes_page(np.random.default_rng(5), 256)
    r = open_page(client, "p.png", png_bytes(Image.fromarray(scan, "L")))
    assert r.status_code == 200, r.text
    sid = r.json()["session"]
    assert r.json()["pages"] == [{"name": "p.png", "width": 256, "height": 256}]
    assert Image.open(io.BytesIO(client.get(f"/api/page/{sid}/0").content)).size == (256, 256)
    hint = '[{"x": 64, "y": 64, "color": "#dc1e1e", "radius": 8}]'
    out = np.asarray(Image.open(io.BytesIO(client.post(f"/api/colorize/{sid}/0", data={"hints": hint}).content)))
    assert out.shape == (256, 256, 3) and out[40:88, 40:88, 0].mean() - out[40:88, 40:88, 2].mean() > 40
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(client.get(f"/api/result/{sid}/0").content))), out)
    r = client.post(f"/api/reference/{sid}", files={"file": ("ref.png", png_bytes(Image.fromarray(color)))})
    assert r.status_code == 200
    assert client.post(f"/api/colorize/{sid}/0", data={"hints": "[]"}).status_code == 200


def test_a_chapter_is_colorized_page_by_page_and_downloaded_as_cbz(client):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ("p10.png", "p2.png", "notes.txt"):
            zf.writestr(name, b"notes" if name.endswith(".txt") else
                        png_bytes(Image.fromarray(shapes_page(np.random.default_rng(1), 128)[0], "L")))
    r = open_page(client, "ch.cbz", buf.getvalue())
    sid, listed = r.json()["session"], r.json()["pages"]
    assert [p["name"] for p in listed] == ["p2.png", "p10.png"]  # reading order
    assert client.get(f"/api/chapter/{sid}").status_code == 400  # not all colorized yet: a message
    for i in range(2):
        assert client.post(f"/api/colorize/{sid}/{i}", data={"hints": "[]"}).status_code == 200
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/chapter/{sid}").content)) as zf:
        assert zf.namelist() == ["p2.png", "p10.png"]


def test_several_pages_open_as_one_chapter_in_natural_order(client):
    page = png_bytes(Image.new("L", (40, 30), 255))
    r = client.post("/api/open", files=[("file", ("p10.png", page)), ("file", ("p9.png", page)),
                                        ("file", ("p1.png", page))])
    assert [p["name"] for p in r.json()["pages"]] == ["p1.png", "p9.png", "p10.png"]
    r = client.post("/api/open", files=[("file", ("a.png", page)), ("file", ("b.png", b"junk"))])
    assert r.status_code == 400 and "b.png: not_an_image" in r.json()["error"]


@pytest.mark.parametrize("name, data, message", [
    ("x.png", b"", "empty"),
    ("x.png", b"this is not an image", "not_an_image"),
    ("bomb.png", None, "decompression_bomb"),
    ("bomb.cbz", None, "archive_bomb"),
    ("x.cbz", b"PK\x03\x04broken", "broken archive"),
    ("x.cbz", None, "broken archive"),
])
def test_bad_uploads_get_a_message_and_the_server_goes_on(client, name, data, message):
    if data is None and name == "bomb.png":  # a 30,000 x 30,000 PNG in 60 bytes: 900 MP, over the page budget
        data = _png_bomb(30000, 30000)
    elif data is None and name == "bomb.cbz":  # 64 MB of zeros in ~64 KB
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("p.png", bytes(64 << 20))
        data = buf.getvalue()
    elif data is None:  # a zip whose central directory is cut off
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("p.png", png_bytes(Image.new("L", (40, 40), 255)))
        data = buf.getvalue()[:-10]
    r = open_page(client, name, data)
    assert r.status_code == 400 and message in r.json()["error"], r.text
    assert open_page(client, "ok.png", png_bytes(Image.new("L", (40, 40), 255))).status_code == 200
    assert client.post("/api/colorize/nosuch/0", data={"hints": "[]"}).json()["error"].startswith("this page's session")


def test_bad_hints_are_a_message(client):
    sid = open_page(client, "ok.png", png_bytes(Image.new("L", (40, 40), 255))).json()["session"]
    r = client.post(f"/api/colorize/{sid}/0", data={"hints": '[{"x": 1, "color": "red"}]'})
    assert r.status_code == 400 and "color must be" in r.json()["error"]


def test_serve_user_errors_are_one_line(tmp_path, color_pt):
    r = cli("serve", "--ckpt", str(tmp_path / "none.pt"), "--port", str(free_port()))
    assert r.returncode == 2 and "checkpoint not found" in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = cli("serve", "--ckpt", str(color_pt), "--port", str(s.getsockname()[1]))
    assert r.returncode == 2 and "cannot listen" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def server(color_pt):
    proc, url = start_server(color_pt, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield url
    proc.terminate()
    proc.wait(10)


# Mean RGB of a box of the shown result, read in the page itself (the image as the person sees it).
MEAN_OF_BOX = """
const img = document.getElementById('result'), [x0, y0, x1, y1] = arguments;
const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d'); g.drawImage(img, 0, 0);
const d = g.getImageData(x0, y0, x1 - x0, y1 - y0).data; const s = [0, 0, 0];
for (let i = 0; i < d.length; i += 4) { s[0] += d[i]; s[1] += d[i + 1]; s[2] += d[i + 2]; }
return s.map((v) => v / (d.length / 4));
"""


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; .ci/run installs them)")
def test_the_page_in_a_real_browser(tmp_path, server):
    """Upload line art, pick a color, click a hint, colorize: the result shows, colored, the hinted disc in the
    hint's hue; a bad upload shows a message and the app keeps working. Saves a screenshot (ONEPUNCH_SCREENSHOT)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    scan, _ = shapes_page(np.random.default_rng(5), 256)
    Image.fromarray(scan, "L").save(tmp_path / "lineart.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    d = chromium(1400, 900)
    try:
        wait = WebDriverWait(d, 60)
        d.get(server)
        wait.until(lambda d: "working size" in d.find_element(By.ID, "info").text)
        d.find_element(By.ID, "open").send_keys(str(tmp_path / "broken.png"))
        err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
        assert "broken.png" in err.text
        d.find_element(By.ID, "open").send_keys(str(tmp_path / "lineart.png"))
        wait.until(lambda d: d.find_element(By.ID, "stack").is_displayed())
        assert not d.find_element(By.ID, "error").is_displayed()
        d.execute_script("const s = document.getElementById('swatch'); s.value = '#dc1e1e';"
                         "s.dispatchEvent(new Event('input'));")
        canvas = d.find_element(By.ID, "hints")
        w, h = canvas.size["width"], canvas.size["height"]
        # Click at page pixel (64, 64): the centre of the upper-left disc. Offsets are from the element's centre.
        ActionChains(d).move_to_element_with_offset(canvas, int(w * 64 / 256 - w / 2), int(h * 64 / 256 - h / 2)) \
            .click().perform()
        wait.until(lambda d: d.find_element(By.ID, "undo").is_enabled())
        d.find_element(By.ID, "colorize").click()
        wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-ready") == "1")
        hinted = d.execute_script(MEAN_OF_BOX, 40, 40, 88, 88)
        page = d.execute_script(MEAN_OF_BOX, 0, 0, 256, 256)
        assert hinted[0] - hinted[2] > 40 and hinted[0] - hinted[1] > 40, hinted  # red, as hinted
        assert max(page) - min(page) > 3 or hinted[0] - hinted[2] > 40  # the page came back colored
        assert "colorized in" in d.find_element(By.ID, "status").text
        shot = Path(os.environ.get("ONEPUNCH_SCREENSHOT", tmp_path / "serve.png"))
        d.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        d.quit()
