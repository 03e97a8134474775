"""The bad-input corpus, second try: the web app, hints files and images, ONNX export and loading, ICC profiles,
records and temp files (issue "Nothing lost, nothing reachable from outside"). Each test names the fault (the
issue's row) it guards and failed before its fix."""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from onepunch import hints, imageio, pages, serve
from onepunch.errors import UserError
from onepunch.inference import PageColorizer
from onepunch.stages import colorize as stage
from tests.conftest import cli
from tests.test_colorize import cc
from tests.test_colorize import line_page as _line_page
from tests.test_hostile import one_line_error


def line_page(side: int = 64) -> Image.Image:
    """A small page of line art."""
    return Image.fromarray(_line_page(0, side, side), "L")


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def client_for(color_pt, hosts=("testserver",)):
    from fastapi.testclient import TestClient

    return TestClient(serve.make_app(PageColorizer(color_pt, device="cpu"), hosts=hosts))


# ------------------------------------------------------------------------------------------------------- records
def test_a_run_with_other_settings_never_disowns_the_outputs_of_an_earlier_one(tmp_path, color_pt):  # row 1
    for name in ("folder1", "folder2"):
        (tmp_path / name).mkdir()
        line_page(64).save(tmp_path / name / "r06.png")
    (tmp_path / "h.json").write_text('[{"x": 10, "y": 10, "color": "#ff0000"}]')
    out = tmp_path / "O"
    stage.colorize([tmp_path / "folder1"], out, color_pt, cc())
    stage.colorize([tmp_path / "folder2"], out, color_pt, cc(hints=str(tmp_path / "h.json")))
    s = stage.colorize([tmp_path / "folder1"], out, color_pt, cc())  # refused before: "was not written by onepunch"
    assert s.failed == [] and s.done + s.up_to_date == 1
    assert str(out / "folder1" / "r06.png") in pages.ours(out / ".onepunch-colorize.json")


def test_two_runs_into_one_out_at_once_the_second_is_refused(tmp_path, color_pt):  # row 1
    (tmp_path / "in").mkdir()
    line_page(64).save(tmp_path / "in" / "p.png")
    out = tmp_path / "O"
    out.mkdir()
    from onepunch.manifest import exclusive

    with exclusive(out / ".onepunch-colorize.json.lock", "test"):  # a run in progress holds the folder
        with pytest.raises(UserError, match="another onepunch colorize run"):
            stage.colorize([tmp_path / "in"], out, color_pt, cc())
    assert stage.colorize([tmp_path / "in"], out, color_pt, cc()).done == 1


def test_a_killed_chapters_temp_file_is_removed_by_the_next_run(tmp_path, color_pt):  # row 11
    (tmp_path / "in").mkdir()
    with zipfile.ZipFile(tmp_path / "in" / "ch.cbz", "w") as zf:
        zf.writestr("01.png", png_bytes(line_page(64)))
    out = tmp_path / "O"
    (out).mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".ch.cbz.tmp-{dead.stdout.strip()}"  # what kill -9 mid-chapter leaves: its pid is gone
    stale.write_bytes(b"partial")
    stage.colorize([tmp_path / "in" / "ch.cbz"], out, color_pt, cc())
    assert not stale.exists() and (out / "ch.cbz").is_file()
    mine = out / f".other.png.tmp-{os.getpid()}"  # a live writer's temp file is left alone
    mine.write_bytes(b"x")
    from onepunch.manifest import remove_stale

    remove_stale(out / "other.png")
    assert mine.exists()


# --------------------------------------------------------------------------------------------------- hints files
@pytest.mark.parametrize("content, message", [
    ('[{"x": 1' + "0" * 400 + ', "y": 2, "color": "#ff0000"}]', "x must be a number in"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('[{"x": 1e15, "y": 2, "color": "#ff0000"}]', "x must be a number in"),
    ('[{"x": 1, "y": 2, "color": "#ff0000", "radius": 1e12}]', "radius must be a number in"),
    ('[{"line": [[0, 0], [5, 5]], "color": "#ff0000", "width": 1e7}]', "width must be a number in"),
    ('[{"x": 1, "y": 2, "color": "#ff0000", "radius": -3}]', "radius must be a number in"),
])
def test_hints_files_with_absurd_numbers_are_one_line_errors_when_loaded(tmp_path, content, message):  # row 6
    f = tmp_path / "h.json"
    f.write_text(content)
    with pytest.raises(UserError, match=message):
        hints.load_file(f)


def test_absurd_hints_are_a_one_line_error_on_the_command_line(tmp_path, color_pt):  # row 6
    line_page(64).save(tmp_path / "p.png")
    (tmp_path / "h.json").write_text("[" * 100_000 + "]" * 100_000)
    r = cli("colorize", str(tmp_path / "p.png"), "--ckpt", str(color_pt), "--out", str(tmp_path / "o"),
                "--hints", str(tmp_path / "h.json"), "--device", "cpu")
    one_line_error(r, 2, "nested too deeply")


def test_a_hints_file_with_a_byte_order_mark_loads_and_stray_names_are_warned_about(tmp_path, color_pt):  # row 14
    (tmp_path / "in").mkdir()
    line_page(64).save(tmp_path / "in" / "r06.png")
    f = tmp_path / "h.json"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps({"pages": {"r6.png": [{"x": 5, "y": 5, "color": "#00ff00"}]}}).encode())
    assert hints.load_file(f)["r6.png"][0]["color"] == (0, 255, 0)
    r = cli("colorize", str(tmp_path / "in"), "--ckpt", str(color_pt), "--out", str(tmp_path / "o"),
                "--hints", str(f), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "r6.png" in r.stdout + r.stderr and "not among the inputs" in r.stdout + r.stderr


@pytest.mark.slow
def test_a_hint_image_bomb_is_shrunk_once_and_held_to_the_page_limits(tmp_path, monkeypatch):  # row 7
    big = Image.new("RGBA", (6000, 5000), (0, 0, 0, 0))
    big.paste((255, 0, 0, 255), (1000, 1000, 3000, 3000))
    big.save(tmp_path / "strokes.png")
    img = stage.hint_image(str(tmp_path / "strokes.png"))
    assert max(img.size) == stage.HINT_SIDE and img.getpixel((1300, 1300)) == (255, 0, 0, 255)
    assert img.getpixel((100, 100))[3] == 0
    monkeypatch.setattr(pages, "MAX_PIXELS", 1_000_000)  # the pages' limit applies to hint images too
    with pytest.raises(UserError, match="decompression_bomb"):
        stage.hint_image(str(tmp_path / "strokes.png"))


# ---------------------------------------------------------------------------------------------------------- ONNX
def test_export_never_replaces_the_checkpoint_or_a_file_it_did_not_write(tmp_path, color_pt):  # row 8
    copy = tmp_path / "copy.pt"
    copy.write_bytes(color_pt.read_bytes())
    r = cli("export", str(copy), "--onnx", str(copy))
    one_line_error(r, 2, "is the checkpoint being exported")
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("four years of work")
    r = cli("export", str(copy), "--onnx", str(thesis))
    one_line_error(r, 2, "was not written by onepunch export")
    assert thesis.read_text() == "four years of work" and copy.read_bytes() == color_pt.read_bytes()


@pytest.mark.parametrize("opset", ["99", "7"])
def test_an_opset_out_of_range_is_a_one_line_error(tmp_path, color_pt, opset):  # row 9
    r = cli("export", str(color_pt), "--onnx", str(tmp_path / "c.onnx"), "--opset", opset)
    one_line_error(r, 2, "--opset must be 18..")
    assert not (tmp_path / "c.onnx").exists()


def _onnx_with(tmp_path, meta=None, rename=None) -> Path:
    """A small ONNX graph with the given onepunch metadata (a JSON value) and input names."""
    import onnx
    from onnx import TensorProto, helper

    names = rename or ["scan", "hints", "palette"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names]
    out = helper.make_tensor_value_info("color", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Identity", [names[0]], ["color"])], "g", inputs, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if meta is not None:
        model.metadata_props.add(key="onepunch", value=json.dumps(meta))
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("meta, rename, message", [
    ({}, None, "not scan, hints, palette"),  # {} has defaults, but this graph's output is fine: see the names case
    ([1, 2], None, "metadata is a list"),
    ({"io": {"multiple": 0}}, None, "io.multiple must be"),
    ({"io": {"multiple": 32}}, ["image", "hints", "palette"], "not scan, hints, palette"),
])
def test_an_onnx_file_with_bad_metadata_or_names_is_a_one_line_error(tmp_path, meta, rename, message):  # row 10
    path = _onnx_with(tmp_path, meta, rename)
    if meta == {}:  # an empty object is valid metadata: it loads and then fails nowhere
        PageColorizer(path, device="cpu")
        return
    with pytest.raises(UserError, match=message):
        PageColorizer(path, device="cpu")


# ----------------------------------------------------------------------------------------------------- ICC, sizes
def test_a_page_with_a_2_mb_icc_profile_is_kept(tmp_path):  # row 12
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() + os.urandom(2 << 20)
    data = png_bytes(Image.new("RGB", (64, 48), (200, 10, 10)), icc_profile=profile)
    img, _ = imageio.decode(data, mode="RGB", max_side=1 << 30, max_pixels=10**8)  # "truncated" before
    assert img.size == (64, 48) and img.getpixel((0, 0)) == (200, 10, 10)


def test_serve_checks_the_working_size_as_colorize_does(tmp_path, color_pt):  # row 13
    r = cli("serve", "--ckpt", str(color_pt), "--working-size", "-5", "--port", "1")
    one_line_error(r, 2, "--working-size must be 0..16384")  # the command's flag; the library names the key
    with pytest.raises(UserError, match="colorize.working_size must be 0..16384"):
        PageColorizer(color_pt, device="cpu", working_size=100_000)


# ------------------------------------------------------------------------------------------------------- the app
def test_a_foreign_page_or_host_cannot_use_the_app(color_pt):  # row 4
    c = client_for(color_pt)
    page = png_bytes(line_page(64))
    ok = c.post("/api/open", files={"file": ("p.png", page)})
    assert ok.status_code == 200
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Host": "evil.example:7860"},
                    {"Origin": "http://testserver.evil.example"}):
        r = c.post("/api/open", files={"file": ("p.png", page)}, headers=headers)
        assert r.status_code == 403 and "--allow-host" in r.json()["error"], headers
        assert c.get("/api/info", headers=headers).status_code == 403  # DNS rebinding reads nothing either
    assert c.post("/api/open", files={"file": ("p.png", page)},
                  headers={"Origin": "http://testserver"}).status_code == 200  # its own page
    real = client_for(color_pt, hosts=("127.0.0.1:7860", "localhost:7860"))
    assert real.get("/api/info", headers={"Host": "localhost:7860"}).status_code == 200
    assert real.get("/api/info", headers={"Host": "localhost:7861"}).status_code == 403


def test_a_request_too_large_is_refused_while_it_is_read(color_pt, monkeypatch):  # row 3
    import asyncio

    monkeypatch.setattr(serve, "MAX_REQUEST", 1 << 20)
    read, answer = [], []

    async def parser(scope, receive, send):  # reads the whole body, as a multipart parser spooling to /tmp does
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():  # 2 GB in 64 KB pieces, no Content-Length (chunked)
        read.append(1)
        return {"type": "http.request", "body": bytes(64 << 10), "more_body": len(read) < 32768}

    async def send(message):
        answer.append(message)

    scope = {"type": "http", "headers": [(b"host", b"testserver")], "method": "POST", "path": "/api/open"}
    asyncio.run(serve.Guard(parser, ("testserver",))(scope, receive, send))
    assert answer[0]["status"] == 413 and b"larger than" in answer[1]["body"]
    assert len(read) <= 17  # stopped after 1 MB, not after 2 GB
    c = client_for(color_pt)  # through the app: a declared length over the limit, and a body that is longer
    r = c.post("/api/open", files={"file": ("a.png", bytes(2 << 20))})
    assert r.status_code == 413 and "larger than" in r.json()["error"]

    def body():
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
        yield from (bytes(64 << 10) for _ in range(64))

    r = c.post("/api/open", content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]


def test_sessions_hold_at_most_their_pixel_budget(color_pt, monkeypatch):  # row 2
    monkeypatch.setattr(serve, "SESSION_PIXELS", 3_000_000)
    monkeypatch.setattr(serve, "TOTAL_PIXELS", 5_000_000)
    c = client_for(color_pt)
    page = png_bytes(Image.new("1", (2000, 1000), 1))  # 2 MP, a few KB
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            zf.writestr(f"{i}.png", page)
    r = c.post("/api/open", files={"file": ("ch.cbz", buf.getvalue())})
    assert r.status_code == 400 and "megapixels" in r.json()["error"]  # refused at the second page's header
    app = c.app.state.onepunch
    assert app.pixels() == 0
    for _ in range(4):
        assert c.post("/api/open", files={"file": ("p.png", page)}).status_code == 200
        assert app.pixels() <= serve.TOTAL_PIXELS
    assert len(app.sessions) == 2


def test_downloads_of_any_name_are_safe(color_pt):  # row 5
    c = client_for(color_pt)
    for name in ("第1話.png", "evil\r\nSet-Cookie: x=1.png", 'q"uote.png'):
        sid = c.post("/api/open", files={"file": (name, png_bytes(line_page(64)))}).json()["session"]
        assert c.post(f"/api/colorize/{sid}/0", data={"hints": "[]"}).status_code == 200
        r = c.get(f"/api/result/{sid}/0")
        assert r.status_code == 200, name
        header = r.headers["content-disposition"]
        assert "\r" not in header and "\n" not in header and header.isascii()
        assert "filename*=UTF-8''" in header
    assert "%E7%AC%AC1%E8%A9%B1-colored.png" in serve.attachment("第1話-colored.png")
