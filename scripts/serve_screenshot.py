"""A screenshot of `onepunch serve` in use, for the README: a page opened, hints clicked, colorized.

    .venv/bin/python scripts/serve_screenshot.py --ckpt color.pt --page lineart.png \
        --hint 120,80,#d23c3c --hint 60,150,#3c64d2 --out docs/serve.png

Drives the real page in headless Chromium (Debian's chromium and chromium-driver), as tests/test_serve.py does.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: str, *args: str, **popen) -> tuple[subprocess.Popen, str]:
    """`onepunch serve --ckpt ckpt [args]` on a free port, on the CPU -> (process, its URL once it answers)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "onepunch", "serve", "--ckpt", str(ckpt), "--port", str(port),
                             "--device", "cpu", *args], cwd=REPO, **popen)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/api/info", timeout=1)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"onepunch serve exited with {proc.returncode}") from None
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("onepunch serve did not answer in a minute")


def chromium(width: int = 1280, height: int = 720):
    """Debian's headless Chromium through its ChromeDriver; the flags keep it off the (closed) network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={width},{height}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def main() -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--page", required=True)
    ap.add_argument("--hint", action="append", default=[], help="x,y,#rrggbb in page pixels")
    ap.add_argument("--brush", type=int, default=4)
    ap.add_argument("--out", default="docs/serve.png")
    args = ap.parse_args()
    server, url = start_server(args.ckpt)
    d = chromium()
    try:
        wait = WebDriverWait(d, 60)
        d.get(url)
        wait.until(lambda d: "working size" in d.find_element(By.ID, "info").text)
        d.find_element(By.ID, "open").send_keys(str(Path(args.page).resolve()))
        wait.until(lambda d: d.find_element(By.ID, "stack").is_displayed())
        d.execute_script(f"document.getElementById('brush').value = {args.brush};")
        canvas = d.find_element(By.ID, "hints")
        natural = d.execute_script("const i = document.getElementById('art'); return [i.naturalWidth, i.naturalHeight];")
        w, h = canvas.size["width"], canvas.size["height"]
        for hint in args.hint:
            x, y, color = hint.split(",")
            d.execute_script(f"document.getElementById('swatch').value = '{color}';")
            ActionChains(d).move_to_element_with_offset(canvas, int(int(x) * w / natural[0] - w / 2),
                                                        int(int(y) * h / natural[1] - h / 2)).click().perform()
        d.find_element(By.ID, "colorize").click()
        wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-ready") == "1")
        d.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        d.quit()
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
