"""`onepunch serve`: a local web app to colorize pages by hand: open a page, a folder's pages or a .cbz, place color
hints, set a chapter's reference page, re-colorize, let the chapter follow the pages colored so far, download PNG or .cbz.

    onepunch serve --ckpt color.pt [--port 7860]          # then open http://127.0.0.1:7860

A small FastAPI app with one static page (onepunch/web/index.html, no build step, nothing fetched from the
internet). State lives in memory per browser tab ("session"): the decoded pages, their hints, the reference palette
and the last colorized page. Uploads are decoded as every input is (pages.read_page: bombs, truncation, EXIF;
archives: pages.check_archive); a bad upload is answered with a message and the server keeps running.

A local tool listening on a port is reachable by every web page its user visits, so `Guard` answers only requests
addressed to this server by name (Host: DNS rebinding) and sent by its own page (Origin: cross-site posts), and
stops reading a request body beyond MAX_REQUEST; what the sessions hold is bounded in pixels and bytes (BUDGET).
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

from onepunch import follow, hints, imageio, pages
from onepunch.errors import UserError
from onepunch.inference import PageColorizer

MAX_UPLOAD = 512 << 20
"""Bytes one upload may have (a chapter archive included)."""
MAX_REQUEST = MAX_UPLOAD + (1 << 20)
"""Bytes of one request body (its files together, and the form around them), counted while it is read."""
MAX_SESSIONS = 8
"""Sessions kept in memory; the oldest is dropped beyond this."""
SESSION_PIXELS = 256_000_000
"""Decoded page pixels one session may hold (one page at colorize's limit, or a chapter of smaller ones)."""
TOTAL_PIXELS = 512_000_000
"""Decoded page pixels all sessions together may hold; the oldest sessions are dropped to make room (about 0.5 GB for
greyscale pages, 1.5 GB for color)."""
SESSION_RESULT_BYTES = 256 << 20
"""Bytes of colorized PNGs one session may keep for download."""
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
WEB = Path(__file__).parent / "web"


@dataclass
class Session:
    names: list[str]
    images: list[Image.Image]
    palette: object = None  # a (65,) tensor from hints.of_image, or None
    results: dict[int, bytes] = field(default_factory=dict)  # page index -> PNG of its last colorization
    followed: dict[int, follow.Reference] = field(default_factory=dict)  # page index -> what its colors lead

    @property
    def pixels(self) -> int:
        return sum(im.width * im.height for im in self.images)


class Bad(Exception):
    """A request the app answers with a message (HTTP 400), never a traceback."""


class Budget:
    """Decoded pixels an upload may still add: a page is refused from its header (before decoding) when it would
    take the upload past `pixels`."""

    def __init__(self, pixels: int):
        self.left = pixels

    def page(self, name: str, data: bytes) -> Image.Image:
        limit = min(pages.MAX_PIXELS, self.left)
        try:
            img, _ = imageio.decode(data, mode="auto", max_side=1 << 30, max_pixels=max(1, limit))
        except imageio.Reject as e:
            if e.reason == "decompression_bomb" and limit < pages.MAX_PIXELS:
                raise Bad(f"{name}: the pages of this upload come to more than {SESSION_PIXELS // 1_000_000} "
                          "megapixels, this server's limit per session: open fewer or smaller pages") from None
            raise
        self.left -= img.width * img.height
        return img


def read_upload(name: str, data: bytes, budget: Budget | None = None) -> tuple[list[str], list[Image.Image]]:
    """An uploaded page, or a .cbz/.zip chapter -> (page names, images), pages in reading order. Bad: Bad."""
    budget = budget or Budget(SESSION_PIXELS)
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
                return members, [budget.page(f"{name}:{m}", pages.read_member(zf, m)) for m in members]
        except imageio.Reject as e:
            raise Bad(f"{name}: {e}") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise Bad(f"{name}: a broken archive ({e})") from None
    try:
        return [name], [budget.page(name, data)]
    except imageio.Reject as e:
        raise Bad(f"{name}: {e}") from None


def attachment(name: str) -> str:
    """A Content-Disposition header for a download named `name`: any characters, made safe (no path, no control
    characters, no quotes), as RFC 6266 / 5987 ask: an ASCII fallback and the UTF-8 name."""
    from urllib.parse import quote

    base = Path(name.replace("\\", "/")).name
    safe = "".join(c for c in base if c.isprintable() and c not in '"\\/') or "page"
    ascii_name = "".join(c if c.isascii() else "_" for c in safe)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(safe, safe='')}"


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
        self.sessions_lock = threading.Lock()

    def open(self, files: list[tuple[str, bytes]]) -> tuple[str, Session]:
        """One page, one chapter, or several files (a folder's pages, in natural order of their names)."""
        if not files:
            raise Bad("no file given")
        names, images, budget = [], [], Budget(SESSION_PIXELS)
        for name, data in sorted(files, key=lambda f: pages.natural_key(f[0])) if len(files) > 1 else files:
            n, im = read_upload(name, data, budget)
            names += n
            images += im
        sid = secrets.token_urlsafe(12)
        with self.sessions_lock:  # requests run on a thread pool: one change of the sessions at a time
            self.sessions[sid] = session = Session(names, images)
            # Room for the new session: the oldest go first, past the session count or the pixels all may hold.
            while len(self.sessions) > MAX_SESSIONS or (len(self.sessions) > 1 and self.pixels() > TOTAL_PIXELS):
                self.sessions.popitem(last=False)
        return sid, session

    def pixels(self) -> int:
        """Decoded pixels every session holds together."""
        return sum(s.pixels for s in self.sessions.values())

    def session(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            raise Bad("this page's session has expired: open the file again")
        return s

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

    def follow(self, sid: str, i: int) -> list[int]:
        """The chapter follows page i as it was last colorized (its hints and all): every page colorized from now
        on takes its colors where their shapes look alike (onepunch/follow.py). -> the pages followed."""
        s, img = self.session(sid), self.page(sid, i)
        if i not in s.results:
            raise Bad(f"colorize page {i + 1} first: the chapter follows its colors")
        colored = Image.open(io.BytesIO(s.results[i]))
        try:
            with self.lock:
                s.followed[i] = self.colorizer.reference(img, colored)
        except UserError as e:
            raise Bad(str(e)) from None
        return sorted(s.followed)

    def unfollow(self, sid: str) -> None:
        self.session(sid).followed.clear()

    def colorize(self, sid: str, i: int, page_hints: list) -> bytes:
        s, img = self.session(sid), self.page(sid, i)
        try:
            checked = hints.check(page_hints, "hints") if page_hints else None
            with self.lock:
                led = follow.Reference.join(list(s.followed.values())) if s.followed else None
                out = self.colorizer.colorize(img, hints=checked, palette=s.palette, follow=led)
        except UserError as e:
            raise Bad(str(e)) from None
        data = png(out)
        s.results.pop(i, None)
        if sum(map(len, s.results.values())) + len(data) > SESSION_RESULT_BYTES:
            raise Bad(f"this session keeps {SESSION_RESULT_BYTES >> 20} MB of colorized pages at most: download the "
                      "chapter so far, or open fewer pages")
        s.results[i] = data
        return data

    def chapter(self, sid: str) -> bytes:
        s = self.session(sid)
        missing = [i for i in range(len(s.images)) if i not in s.results]
        if missing:
            raise Bad(f"colorize every page first ({len(missing)} not yet)")
        return cbz(s.names, [s.results[i] for i in range(len(s.images))])


class TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: answers only requests whose Host is one of `hosts` (names, with any port, or name:port) and
    whose Origin, when a browser sends one, is this server's own page; reads at most MAX_REQUEST body bytes."""

    def __init__(self, app, hosts: tuple[str, ...]):
        self.app, self.hosts = app, {h.lower() for h in hosts}

    def host_ok(self, host: str) -> bool:
        host = host.lower()
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") and "]:" in host else host
        return host in self.hosts or name in self.hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host, origin = headers.get("host", ""), headers.get("origin")
        if not self.host_ok(host):
            return await _refuse(send, 403, f"requests for host {host!r} are refused: this server answers as "
                                            f"{', '.join(sorted(self.hosts))} (start it with --allow-host NAME to add one)")
        if origin is not None and not (origin.lower().startswith(("http://", "https://"))
                                       and self.host_ok(origin.split("://", 1)[1])):
            return await _refuse(send, 403, f"requests from the page at {origin!r} are refused: only this server's own "
                                            "page may use it (start it with --allow-host NAME to trust another)")
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_REQUEST:
            return await _refuse(send, 413, f"request larger than {MAX_REQUEST >> 20} MB")
        seen, too_large, answered = 0, False, False
        refusal = f"request larger than {MAX_REQUEST >> 20} MB"

        async def limited():
            nonlocal seen, too_large
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_REQUEST:  # stop reading: the app's body parser fails on this, and its answer is replaced
                too_large = True
                raise TooLarge
            return message

        async def replying(message):
            nonlocal answered
            if too_large:  # whatever the app made of the cut-off body (FastAPI: a 400), the answer is a 413
                if not answered:
                    answered = True
                    await _refuse(send, 413, refusal)
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, replying)
        except TooLarge:
            pass
        if too_large and not answered:
            await _refuse(send, 413, refusal)


async def _refuse(send, status: int, message: str) -> None:
    import json

    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def make_app(colorizer: PageColorizer, hosts: tuple[str, ...] = LOCAL_NAMES):
    """The FastAPI application around App, behind Guard answering as `hosts` (names or name:port)."""
    app, state = FastAPI(title="onepunch", docs_url=None, redoc_url=None), App(colorizer)
    app.add_middleware(Guard, hosts=tuple(hosts))

    @app.exception_handler(Bad)
    async def bad(_: Request, e: Bad):
        return JSONResponse({"error": str(e)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return (WEB / "index.html").read_text(encoding="utf-8")

    @app.get("/api/info")
    def info():
        c = state.colorizer
        return {"working_size": c.working_size, "device": str(c.device), "hints": c.accepts_hints,
                "palette": c.takes_palette, "follow": c.accepts_hints and c.backend == "torch"}

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

    @app.post("/api/follow/{sid}/{i}")
    def follow_page(sid: str, i: int):
        return {"followed": state.follow(sid, i)}

    @app.delete("/api/follow/{sid}")
    def unfollow(sid: str):
        state.unfollow(sid)
        return {"ok": True}

    @app.post("/api/colorize/{sid}/{i}")
    def colorize(sid: str, i: int, hints_json: str = Form("[]", alias="hints")):
        try:
            page_hints = hints.parse(hints_json, "hints")
        except UserError as e:
            raise Bad(str(e)) from None
        return Response(state.colorize(sid, i, page_hints), media_type="image/png")

    @app.get("/api/result/{sid}/{i}")
    def result(sid: str, i: int):
        s = state.session(sid)
        if i not in s.results:
            raise Bad(f"page {i} is not colorized yet")
        return Response(s.results[i], media_type="image/png",
                        headers={"Content-Disposition": attachment(Path(s.names[i]).stem + "-colored.png")})

    @app.get("/api/chapter/{sid}")
    def chapter(sid: str):
        return Response(state.chapter(sid), media_type="application/vnd.comicbook+zip",
                        headers={"Content-Disposition": attachment("colored.cbz")})

    app.state.onepunch = state
    return app


def serve(ckpt: Path, host: str = "127.0.0.1", port: int = 7860, device: str = "auto", working_size: int = 0,
          log=None, allow_hosts: tuple[str, ...] = ()) -> None:
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
    names = {*LOCAL_NAMES, *allow_hosts, *([] if host in ("0.0.0.0", "::") else [host])}
    uvicorn.run(make_app(c, tuple(f"{n}:{port}" for n in names)), host=host, port=port, log_level="warning")
