"""`onepunch export --onnx` and `colorize --backend onnx`: the exported model colorizes as the color.pt does."""

import json

import numpy as np
import pytest
from PIL import Image

from onepunch import PageColorizer
from onepunch.errors import UserError
from tests.conftest import cli
from tests.test_colorize import line_page

pytest.importorskip("onnxruntime")
# The export takes 15-20 s on 2 cores: the whole module runs in the full suite, not in the fast tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def color_onnx(color_pt, tmp_path_factory):
    """Exported by the command users run."""
    path = tmp_path_factory.mktemp("onnx") / "out" / "color.onnx"
    r = cli("export", str(color_pt), "--onnx", str(path))
    assert r.returncode == 0 and path.is_file() and "opset 18" in r.stderr, r.stderr
    assert "Warning" not in r.stderr and "[torch.onnx]" not in r.stderr  # one line, not the exporter's notes
    return path


def test_the_onnx_model_colorizes_pages_as_torch_does(color_pt, color_onnx):
    """Pages of several sizes (the graph's height and width are dynamic), with hints and a palette: the uint8 pages
    differ by at most one level (float32 kernels that sum in another order)."""
    from onepunch import hints

    torch_c = PageColorizer(color_pt, device="cpu", working_size=160)
    onnx_c = PageColorizer(color_onnx, device="cpu", working_size=160)
    assert onnx_c.backend == "onnx" and onnx_c.working_size == torch_c.working_size
    assert (onnx_c.takes_hints, onnx_c.takes_palette) == (torch_c.takes_hints, torch_c.takes_palette)
    pages = [Image.fromarray(line_page(s, w, h)) for s, (w, h) in enumerate([(300, 420), (161, 333), (500, 90)])]
    marks = [[{"x": 40, "y": 50, "color": "#d02020", "radius": 6}], None, None]
    palette = hints.of_image(Image.fromarray(np.full((32, 32, 3), (30, 90, 200), np.uint8)))
    for kw in ({}, {"hints": marks, "palette": palette}):
        want = torch_c.colorize_many(pages, force=True, **kw)
        got = onnx_c.colorize_many(pages, force=True, **kw)
        for a, b in zip(want, got, strict=True):
            assert a.size == b.size
            assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1


def test_colorize_from_the_command_line(color_pt, color_onnx, tmp_path):
    page = tmp_path / "p1.png"
    Image.fromarray(line_page(1)).save(page)
    out = tmp_path / "out"
    r = cli("colorize", str(page), "--ckpt", str(color_onnx), "--backend", "onnx", "--out", str(out),
                "--device", "cpu")
    assert r.returncode == 0 and "(onnx)" in r.stderr, r.stderr
    want = PageColorizer(color_pt, device="cpu").colorize(Image.open(page))  # the CLI's defaults, on torch
    assert np.abs(np.asarray(Image.open(out / "p1.png"), int) - np.asarray(want, int)).max() <= 1
    record = json.loads((out / ".onepunch-colorize.json").read_text())
    r = cli("colorize", str(page), "--ckpt", str(color_onnx), "--out", str(out), "--device", "cpu")
    assert r.returncode == 0 and "1 input(s) up to date" in r.stderr  # auto: the .onnx runs on onnxruntime
    assert json.loads((out / ".onepunch-colorize.json").read_text()) == record


def test_export_and_backend_mistakes_are_one_line_errors(color_pt, color_onnx, tmp_path):
    from onepunch.export import export_onnx

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    for call, message in (
            (lambda: export_onnx(tmp_path / "missing.pt", tmp_path / "x.onnx"), "checkpoint not found"),
            (lambda: export_onnx(junk, tmp_path / "x.onnx"), "not a loadable onepunch checkpoint"),
            (lambda: PageColorizer(color_pt, device="cpu", backend="onnx"), "colorize.backend onnx runs a .onnx"),
            (lambda: PageColorizer(color_onnx, device="cpu", backend="torch"), "colorize.backend torch runs a"),
            (lambda: PageColorizer(junk, device="cpu"), "not a colorizer exported by"),
            (lambda: PageColorizer(tmp_path / "missing.onnx", device="cpu"), "model not found"),
            (lambda: PageColorizer(color_onnx, device="cpu", tile=128), "colorize.tile needs the torch backend"),
            (lambda: PageColorizer(color_onnx, device="cpu", backend="tensorrt"), "backend must be")):
        with pytest.raises(UserError, match=message):
            call()
    assert not (tmp_path / "x.onnx").exists()
    page = tmp_path / "p.png"
    Image.fromarray(line_page(1)).save(page)
    for args, message in ((["export", str(junk), "--onnx", str(tmp_path / "x.onnx")], "not a loadable"),
                          (["colorize", str(page), "--ckpt", str(junk), "--out", str(tmp_path / "o"), "--device",
                            "cpu"], "not a colorizer exported by")):
        r = cli(*args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
