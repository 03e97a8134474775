"""`onepunch serve`: a local web app to colorize pages by hand: open a page, a folder's pages or a .cbz, place color
hints, set a chapter's reference page, re-colorize, download PNG or .cbz.

    onepunch serve --ckpt color.pt [--port 7860]          # then open http://127.0.0.1:7860

A small FastAPI app with one static page (onepunch/web/index.html, no build step, nothing fetched from the
internet). State lives in memory per browser tab ("session"): the decoded pages, their hints, the reference palette
and the last colorized page. Uploads are decoded as every input is (pages.read_page: bombs, truncation, EXIF;
archives: pages.check_archive); a bad upload is answered with a message and the server keeps running.
"""

from __future__ import annotations

import io
import secrets
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image

from onepunch import hints, imageio, pages
from onepunch.errors import UserError
from onepunch.inference import PageColorizer

MAX_UPLOAD = 512 << 20
"""Bytes one upload may have (a chapter archive included)."""
MAX_SESSIONS = 8
"""Sessions kept in memory; the oldest is dropped beyond this."""
WEB = Path(__file__).parent / "web"


@dataclass
class Session:
    names: list[str]
    images: list[Image.Image]
    palette: object = None  # a (65,) tensor from hints.of_image, or None
    results: dict[int, bytes] = field(default_factory=dict)  # page index -> PNG of its last colorization


class Bad(Exception):
    """A request the app answers with a message (HTTP 400), never a traceback."""


def read_upload(name: str, data: bytes) -> tuple[list[str], list[Image.Image]]:
    """An uploaded page, or a .cbz/.zip chapter -> (page names, images), pages in reading order. Bad: Bad."""
    if not data:
        raise Bad(f"{name}: the file is empty")
    if len(data) > MAX_UPLOAD:
        raise Bad(f"{name}: larger than {MAX_UPLOAD >> 20} MB")
    if Path(name).suffix.lower() in (".cbz", ".zip") or data[:4] == b"PK\x03\x04" or zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                pages.check_archive(zf)
                members = sorted((i.filename for i in zf.infolist() if not i.is_dir() and pages.is_page(i.filename)),
                                 key=pages.natural_key)
                if not members:
                    raise Bad(f"{name}: the archive holds no pages")
                return members, [pages.read_page(pages.read_member(zf, m)) for m in members]
        except imageio.Reject as e:
            raise Bad(f"{name}: {e}") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise Bad(f"{name}: a broken archive ({e})") from None
    try:
        return [name], [pages.read_page(data)]
    except imageio.Reject as e:
        raise Bad(f"{name}: {e}") from None


def png(img: Image.Image) -> bytes:
    return pages.encode_page(img, "png", 95)


def cbz(names: list[str], results: list[bytes]) -> bytes:
    """A chapter of colorized pages, in order, as .cbz bytes."""
    buf = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in zip(names, results, strict=True):
            zf.writestr(zipfile.ZipInfo(pages.unique_name(name, "png", used), pages.ZIP_TIME), data)
    return buf.getvalue()


class App:
    """The app's state and work, apart from HTTP (tested without a server too)."""

    def __init__(self, colorizer: PageColorizer):
        self.colorizer = colorizer
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.lock = threading.Lock()  # one page through the net at a time: PageColorizer is not thread-safe

    def open(self, files: list[tuple[str, bytes]]) -> tuple[str, Session]:
        """One page, one chapter, or several files (a folder's pages, in natural order of their names)."""
        if not files:
            raise Bad("no file given")
        names, images = [], []
        for name, data in sorted(files, key=lambda f: pages.natural_key(f[0])) if len(files) > 1 else files:
            n, im = read_upload(name, data)
            names += n
            images += im
        sid = secrets.token_urlsafe(12)
        self.sessions[sid] = Session(names, images)
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return sid, self.sessions[sid]

    def session(self, sid: str) -> Session:
        if sid not in self.sessions:
            raise Bad("this page's session has expired: open the file again")
        return self.sessions[sid]

    def page(self, sid: str, i: int) -> Image.Image:
        s = self.session(sid)
        if not 0 <= i < len(s.images):
            raise Bad(f"no page {i}")
        return s.images[i]

    def reference(self, sid: str, name: str, data: bytes) -> None:
        s = self.session(sid)
        try:
            img = imageio.decode(data, mode="RGB", max_side=1 << 30, max_pixels=pages.MAX_PIXELS)[0]
        except imageio.Reject as e:
            raise Bad(f"{name}: {e}") from None
        s.palette = hints.of_image(img)

    def clear_reference(self, sid: str) -> None:
        self.session(sid).palette = None

    def colorize(self, sid: str, i: int, page_hints: list) -> bytes:
        s, img = self.session(sid), self.page(sid, i)
        try:
            checked = hints.check(page_hints, "hints") if page_hints else None
            with self.lock:
                out = self.colorizer.colorize(img, hints=checked, palette=s.palette)
        except UserError as e:
            raise Bad(str(e)) from None
        s.results[i] = png(out)
        return s.results[i]

    def chapter(self, sid: str) -> bytes:
        s = self.session(sid)
        missing = [i for i in range(len(s.images)) if i not in s.results]
        if missing:
            raise Bad(f"colorize every page first ({len(missing)} not yet)")
        return cbz(s.names, [s.results[i] for i in range(len(s.images))])


def make_app(colorizer: PageColorizer):
    """The FastAPI application around App."""
    app, state = FastAPI(title="onepunch", docs_url=None, redoc_url=None), App(colorizer)

    @app.exception_handler(Bad)
    async def bad(_: Request, e: Bad):
        return JSONResponse({"error": str(e)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return (WEB / "index.html").read_text(encoding="utf-8")

    @app.get("/api/info")
    def info():
        c = state.colorizer
        return {"working_size": c.working_size, "device": str(c.device), "hints": c.takes_hints,
                "palette": c.takes_palette}

    @app.post("/api/open")
    def open_files(file: list[UploadFile] = File(...)):
        sid, s = state.open([(f.filename or "upload", f.file.read(MAX_UPLOAD + 1)) for f in file])
        return {"session": sid, "pages": [{"name": n, "width": im.width, "height": im.height}
                                          for n, im in zip(s.names, s.images, strict=True)]}

    @app.get("/api/page/{sid}/{i}")
    def page(sid: str, i: int):
        return Response(png(state.page(sid, i)), media_type="image/png")

    @app.post("/api/reference/{sid}")
    def reference(sid: str, file: UploadFile = File(...)):
        state.reference(sid, file.filename or "reference", file.file.read(MAX_UPLOAD + 1))
        return {"ok": True}

    @app.delete("/api/reference/{sid}")
    def clear_reference(sid: str):
        state.clear_reference(sid)
        return {"ok": True}

    @app.post("/api/colorize/{sid}/{i}")
    def colorize(sid: str, i: int, hints_json: str = Form("[]", alias="hints")):
        import json

        try:
            page_hints = json.loads(hints_json)
        except json.JSONDecodeError as e:
            raise Bad(f"hints: not JSON ({e})") from None
        return Response(state.colorize(sid, i, page_hints), media_type="image/png")

    @app.get("/api/result/{sid}/{i}")
    def result(sid: str, i: int):
        s = state.session(sid)
        if i not in s.results:
            raise Bad(f"page {i} is not colorized yet")
        name = Path(s.names[i]).stem + "-colored.png"
        return Response(s.results[i], media_type="image/png",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/chapter/{sid}")
    def chapter(sid: str):
        return Response(state.chapter(sid), media_type="application/vnd.comicbook+zip",
                        headers={"Content-Disposition": 'attachment; filename="colored.cbz"'})

    app.state.onepunch = state
    return app


def serve(ckpt: Path, host: str = "127.0.0.1", port: int = 7860, device: str = "auto", working_size: int = 0,
          log=None) -> None:
    """Load the colorizer and serve the app until interrupted."""
    import socket

    import uvicorn

    with socket.socket() as sock:  # a port in use is a one-line error, before the model loads
        try:
            sock.bind((host, port))
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    c = PageColorizer(ckpt, device=device, working_size=working_size)
    if log:
        log.print(f"onepunch serve: {ckpt} on {c.device}, working size {c.working_size}: http://{host}:{port}")
    uvicorn.run(make_app(c), host=host, port=port, log_level="warning")
