"""colorize and to-scan as users run them: every input kind, chapters, failures, skips, no overwriting, reruns."""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from onepunch import PageColorizer, metrics, pages, scanners
from onepunch.config import ColorizeConfig
from onepunch.errors import UserError
from onepunch.inference import _ramp, _starts, colorfulness, luma
from onepunch.sample import draw_color, draw_page
from onepunch.stages import colorize as stage
from onepunch.transfer import transfer_color, transfer_detail
from tests.conftest import REPO, cli
from tests.test_build_pairs import scan_pt


def line_page(seed: int = 0, w: int = 300, h: int = 420) -> np.ndarray:
    return draw_page(np.random.default_rng(seed), w, h, lineart=True)


def png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def write_inputs(folder: Path) -> dict[str, Image.Image]:
    """One page per input kind, odd sizes included; returns what each decodes to."""
    folder.mkdir(parents=True)
    (folder / "sub").mkdir()
    a = line_page(1)
    kinds = {
        "grey.png": Image.fromarray(a),
        "rgb.jpg": Image.fromarray(np.repeat(line_page(2, 203, 77)[..., None], 3, 2)),
        "sub/alpha.png": Image.fromarray(np.dstack([np.repeat(a[..., None], 3, 2), np.where(a < 128, 255, 0)])
                                         .astype(np.uint8), "RGBA"),
        "palette.png": Image.fromarray(a).convert("P"),
        "deep.png": Image.fromarray(a.astype(np.uint16) * 257),
        "page.webp": Image.fromarray(line_page(3, 161, 333)),
    }
    for name, img in kinds.items():
        if name.endswith(".jpg"):
            img.save(folder / name, "JPEG", quality=95)
        elif name.endswith(".webp"):
            img.save(folder / name, "WEBP", lossless=True)
        else:
            img.save(folder / name)
    return kinds


def cc(**kw) -> ColorizeConfig:
    return ColorizeConfig(device="cpu", **kw)


def test_every_input_kind_keeps_its_size_and_its_lines(tmp_path, color_pt):
    kinds = write_inputs(tmp_path / "in")
    s = stage.colorize([tmp_path / "in"], tmp_path / "out", color_pt, cc())
    assert (s.done, s.kept, s.failed) == (len(kinds), 0, [])
    for name, img in kinds.items():
        out = Image.open(tmp_path / "out" / "in" / Path(name).with_suffix(".png"))
        assert out.mode == "RGB" and out.size == img.size, name
        grey = np.asarray(Image.open(tmp_path / "in" / name).convert("L")) if name != "sub/alpha.png" else None
        if grey is not None and name != "deep.png":  # the page's lines are in the output, whatever the net did
            f1 = metrics.line_f1(grey, luma(out))["edge_f1"]
            assert f1 > 0.6, f"{name}: line F1 {f1:.2f}"
    # The transparent page: its hidden pixels are composited on white, not exposed.
    alpha = np.asarray(Image.open(tmp_path / "out" / "in" / "sub" / "alpha.png").convert("L"))
    assert alpha.mean() > 100


def test_a_corrupt_page_is_reported_and_the_rest_continue(tmp_path, color_pt):
    d = tmp_path / "chapter"
    d.mkdir()
    for i in (1, 2, 3):
        Image.fromarray(line_page(i, 96, 128)).save(d / f"p{i}.png")
    (d / "p2.png").write_bytes((d / "p2.png").read_bytes()[:200])  # truncated
    (d / "p4.jpg").write_text("not an image")
    (d / "notes.txt").write_text("ignored: not an image extension")
    r = cli("colorize", str(d), "--ckpt", str(color_pt), "--out", str(tmp_path / "out"), "--device", "cpu",
                env={"COLUMNS": "200"})
    assert r.returncode == 1, r.stderr
    text = r.stdout + r.stderr
    assert "p2.png" in text and "p4.jpg" in text and "2 failed" in text
    assert "Traceback" not in text
    assert sorted(p.name for p in (tmp_path / "out" / "chapter").iterdir()) == ["p1.png", "p3.png"]


def make_cbz(path: Path) -> dict[str, tuple[int, int]]:
    sizes = {}
    with zipfile.ZipFile(path, "w") as z:
        for name, seed in (("vol/10.png", 1), ("vol/2.jpg", 2), ("vol/1.png", 3)):
            img = Image.fromarray(line_page(seed, 100 + seed * 10, 150))
            buf = io.BytesIO()
            img.save(buf, "JPEG" if name.endswith("jpg") else "PNG")
            z.writestr(name, buf.getvalue())
            sizes[name] = img.size
        z.writestr("vol/5.png", b"\x89PNG broken")
        z.writestr("ComicInfo.xml", "<ComicInfo/>")
    return sizes


def test_cbz_round_trip_keeps_page_order_names_and_members(tmp_path, color_pt):
    sizes = make_cbz(tmp_path / "vol1.zip")
    s = stage.colorize([tmp_path / "vol1.zip"], tmp_path / "out", color_pt, cc(format="jpg"))
    assert s.done == 3 and len(s.failed) == 1 and "vol/5.png" in s.failed[0][0]
    with zipfile.ZipFile(tmp_path / "out" / "vol1.cbz") as z:
        assert z.namelist() == ["ComicInfo.xml", "vol/1.jpg", "vol/2.jpg", "vol/5.png", "vol/10.jpg"]
        assert z.read("vol/5.png") == b"\x89PNG broken"  # a failed page is kept as it was, in its place
        assert z.read("ComicInfo.xml") == b"<ComicInfo/>"
        for name, size in sizes.items():
            out = Image.open(io.BytesIO(z.read(str(Path(name).with_suffix(".jpg")))))
            assert out.size == size and out.format == "JPEG"


def test_colored_pages_are_left_alone_unless_forced(tmp_path, color_pt):
    rng = np.random.default_rng(0)
    Image.fromarray(draw_color(rng, 160, 120)[0]).save(tmp_path / "cover.png")
    Image.fromarray(line_page(1, 120, 160)).convert("RGB").save(tmp_path / "lines.png")
    assert colorfulness(Image.open(tmp_path / "cover.png")) > 12 > colorfulness(Image.open(tmp_path / "lines.png"))
    inputs = [tmp_path / "cover.png", tmp_path / "lines.png"]
    s = stage.colorize(inputs, tmp_path / "out", color_pt, cc())
    assert (s.done, s.kept) == (1, 1) and not (tmp_path / "out" / "cover.png").exists()
    s = stage.colorize(inputs, tmp_path / "forced", color_pt, cc(force=True))
    assert (s.done, s.kept) == (2, 0) and (tmp_path / "forced" / "cover.png").exists()


@pytest.mark.slow
def test_inputs_are_never_overwritten(tmp_path, color_pt):
    Image.fromarray(line_page(1, 64, 64)).save(tmp_path / "page.png")
    before = (tmp_path / "page.png").read_bytes()
    r = cli("colorize", str(tmp_path / "page.png"), "--ckpt", str(color_pt), "--out", str(tmp_path))
    assert r.returncode == 2 and "would overwrite an input" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "page.png").read_bytes() == before
    (tmp_path / "b").mkdir()
    Image.fromarray(line_page(2, 64, 64)).save(tmp_path / "b" / "page.jpg")
    with pytest.raises(Exception, match="would both write"):
        pages.discover([tmp_path / "page.png", tmp_path / "b" / "page.jpg"], tmp_path / "out", "png")
    for args, message in (([str(tmp_path / "nope.png")], "input not found"),
                          ([str(tmp_path / "page.png"), "--format", "gif"], "png, jpg, webp"),
                          ([str(tmp_path / "page.png"), "--tile", "100"], "tile must be")):
        r = cli("colorize", *args, "--ckpt", str(color_pt), "--out", str(tmp_path / "o"))
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


@pytest.mark.slow
def test_rerun_does_nothing_and_outputs_are_reproducible(tmp_path, color_pt):
    write_inputs(tmp_path / "in")
    make_cbz(tmp_path / "in" / "vol.cbz")
    out = tmp_path / "out"
    stage.colorize([tmp_path / "in"], out, color_pt, cc())
    first = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}
    record = json.loads((out / ".onepunch-colorize.json").read_text())
    assert sum(not e.get("failed") for e in record["outputs"].values()) == 6  # the chapter with a failed page is retried
    s = stage.colorize([tmp_path / "in"], out, color_pt, cc())
    assert s.up_to_date == 6 and s.done == 3  # only the chapter again
    (out / ".onepunch-colorize.json").unlink()
    for p in first:
        p.unlink()
    stage.colorize([tmp_path / "in"], out, color_pt, cc(batch_size=1))
    assert {p: p.read_bytes() for p in first} == first  # byte-identical, whatever the batch size


def test_api_pages_of_any_size(color_pt):
    c = PageColorizer(color_pt, device="cpu")
    assert c.working_size == 128
    for size in ((37, 1000), (640, 480), (128, 128)):
        out = c.colorize(Image.fromarray(np.full(size[::-1], 255, np.uint8)))
        assert out.size == size and out.mode == "RGB"


def test_pages_of_a_batch_side_by_side_are_what_they_are_alone(color_pt, monkeypatch):
    """The CPU steps of a batch's pages run on threads (inference.PAGE_THREADS): the same bytes as one at a time,
    hints included, in the order given."""
    from onepunch import inference

    rng = np.random.default_rng(3)
    imgs = [Image.fromarray(draw_page(rng, w, h)) for w, h in ((300, 420), (260, 260), (420, 300))]
    clicks = [None, [{"x": 130, "y": 130, "color": [220, 40, 40]}], None]
    c = PageColorizer(color_pt, device="cpu")
    outs = {}
    for threads in (1, 3):
        monkeypatch.setattr(inference, "PAGE_THREADS", threads)
        outs[threads] = [np.asarray(o) for o in c.colorize_many(imgs, force=True, hints=clicks)]
    assert [o.shape[:2] for o in outs[3]] == [(420, 300), (260, 260), (300, 420)]
    assert all(np.array_equal(a, b) for a, b in zip(outs[1], outs[3], strict=True))


def test_tiles_blend_to_the_whole(color_pt):
    """With a pointwise net, tiled inference must equal whole-page inference: the tiles cover every pixel with
    positive weight, and the blend is normalised by the weights' sum."""
    c = PageColorizer(color_pt, device="cpu", working_size=512, tile=96, overlap=32, batch_size=3, tile_passes=0)
    c._run = lambda batch, *control: np.repeat(batch[..., None], 3, 3)  # identity "net": grey in, grey out
    work = np.random.default_rng(0).integers(0, 256, (300, 451), dtype=np.uint8)
    tiled = c._colorize_tiled(work)
    assert tiled.shape == (300, 451, 3) and np.abs(tiled[..., 0].astype(int) - work).max() <= 1
    for n, t, o in ((300, 96, 32), (96, 96, 32), (1000, 128, 16)):
        starts = _starts(n, t, o)
        assert starts[0] == 0 and starts[-1] == n - t if n > t else starts == [0]
        total = np.zeros(n)
        for i, s in enumerate(starts):
            total[s: s + t] += _ramp(t, o, i == 0, i == len(starts) - 1)
        assert total.min() > 0


def test_statistics_gathered_over_parts_are_the_whole_images():
    """The sums behind the shared statistics: an image seen as two parts (each its own half) gathers exactly the
    statistics of the whole image, for InstanceNorm and attention; imposed, they reproduce the whole's output."""
    from onepunch.models.colorizer import InstanceNorm, SelfAttention

    torch.manual_seed(0)
    x = torch.randn(1, 8, 12, 20) * 3 + 1
    for layer in (InstanceNorm(8, affine=True), SelfAttention(8)):
        with torch.no_grad():
            layer.weight.normal_() if isinstance(layer, InstanceNorm) else layer.gamma.fill_(0.7)
            want = layer(x)
        layer.sums, layer.boxes = [], [(0, 1, 0, 0.45), (0, 1, 0.45, 1)]
        layer(x.expand(2, -1, -1, -1))
        layer.stats, layer.sums, layer.boxes = layer.settle(), None, None
        with torch.no_grad():
            assert torch.allclose(layer(x), want, atol=1e-5)


@pytest.mark.slow
def test_tiles_share_the_page_statistics(color_pt):
    """InstanceNorm and attention see a whole image: tiles with their own statistics disagree with the page; tiles
    that gather the page's over passes come much closer to the whole-page output (scripts/tiles.py measures it)."""
    from onepunch.models.colorizer import SelfAttention

    whole = PageColorizer(color_pt, device="cpu", working_size=256)
    with torch.no_grad():
        for m in whole.net.modules():
            if isinstance(m, SelfAttention):
                m.gamma.fill_(0.5)  # a trained net's attention acts; the random one's starts at identity
    work = whole.working_copy(line_page(0, 300, 420))
    ref = whole.color_at_working_size([work])[0].astype(int)
    err = {}
    for passes in (0, 1, 3):
        tiled = PageColorizer(color_pt, device="cpu", working_size=256, tile=128, overlap=32, tile_passes=passes)
        tiled.net = whole.net
        err[passes] = np.abs(tiled.color_at_working_size([work])[0] - ref).mean()
    assert err[3] < err[1] < err[0] and err[3] < 0.5 * err[0], err


def test_transfers_keep_the_page_luminance_and_black_lines():
    rng = np.random.default_rng(0)
    grey = line_page(4, 400, 560)
    toned = (grey * 0.6 + 30).astype(np.uint8)  # a toned page: room for chroma at every luminance
    color = rng.integers(60, 200, (70, 50, 3), dtype=np.uint8)
    out = transfer_color(toned, color)
    assert out.shape == (560, 400, 3)
    lightness = metrics.rgb_to_lab(torch.tensor(out).permute(2, 0, 1)[None] / 255)[0, 0].numpy()
    page = metrics.rgb_to_lab(torch.tensor(toned)[None, None].expand(1, 3, -1, -1) / 255)[0, 0].numpy()
    assert np.abs(lightness - page).mean() < 1.0  # the page's L*, in color
    assert colorfulness(Image.fromarray(out)) > 10
    lines = grey < 40
    assert luma(Image.fromarray(transfer_color(grey, color)))[lines].mean() < 45
    small = np.asarray(Image.fromarray(grey).resize((50, 70), Image.Resampling.BILINEAR))
    flat = np.full((70, 50, 3), (200, 60, 60), np.uint8)
    detail = transfer_detail(grey, small, flat)
    assert luma(Image.fromarray(detail))[lines].mean() < 60  # the page's lines come back at full size
    paper = grey > 240
    assert np.abs(detail[paper].astype(int) - (200, 60, 60)).mean() < 25  # flat regions keep the net's color
    same = transfer_detail(small, small, flat)  # at the working size: the net's output, solid blacks included
    assert np.abs(same.astype(int) - (200, 60, 60)).max() <= 2


@pytest.mark.slow
def test_to_scan_with_the_generator_and_with_xdog(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(draw_color(rng, 150, 110)[0]).save(tmp_path / "color.png")
    ckpt = scan_pt(tmp_path / "scan.pt")
    r = cli("to-scan", str(tmp_path / "color.png"), "--ckpt", str(ckpt), "--out", str(tmp_path / "s"),
                "--device", "cpu")
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path / "s" / "color.png")
    assert out.mode == "L" and out.size == (150, 110)
    s = scanners.to_scan([tmp_path / "color.png"], tmp_path / "x", None, "xdog", "png", "cpu", 2, 64)
    assert s.done == 1 and Image.open(tmp_path / "x" / "color.png").size == (64, 47)
    r = cli("to-scan", str(tmp_path / "color.png"), "--out", str(tmp_path / "s2"))
    assert r.returncode == 2 and "--ckpt" in r.stderr


@pytest.mark.slow
def test_ranks_split_the_inputs_and_write_what_one_process_writes(tmp_path, color_pt):
    write_inputs(tmp_path / "in")
    make_cbz(tmp_path / "in" / "vol.cbz")
    stage.colorize([tmp_path / "in"], tmp_path / "one", color_pt, cc())
    procs = [subprocess.Popen([sys.executable, "-m", "onepunch", "colorize", str(tmp_path / "in"), "--ckpt",
                               str(color_pt), "--out", str(tmp_path / "two"), "--device", "cpu", "--rank", str(r),
                               "--world-size", "2"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "COLUMNS": "300"})
             for r in (0, 1)]
    errors = [p.communicate(timeout=300)[1].decode() for p in procs]
    # The chapter's broken page is reported, and fails the exit status, on the rank that owns the chapter only.
    assert sorted(p.returncode for p in procs) == [0, 1] and sum("vol/5.png" in e for e in errors) == 1
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*")
           if p.is_file() and not p.name.startswith(".")}
    two = {p.relative_to(tmp_path / "two"): p.read_bytes() for p in (tmp_path / "two").rglob("*")
           if p.is_file() and not p.name.startswith(".")}
    assert one == two
    assert sorted(p.name for p in (tmp_path / "two").glob(".onepunch-colorize.rank*.json")) == [
        ".onepunch-colorize.rank0-of-2.json", ".onepunch-colorize.rank1-of-2.json"]


def test_an_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, color_pt):
    d = tmp_path / "chapter"
    d.mkdir()
    Image.fromarray(line_page(1, 96, 128)).save(d / "p1.png")
    for _ in range(2):
        s = stage.colorize([d], d / "colored", color_pt, cc())
    assert s.up_to_date == 1 and s.done == 0
    assert sorted(str(p.relative_to(d)) for p in d.rglob("*.png")) == ["colored/chapter/p1.png", "p1.png"]


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_bytes(tmp_path, color_pt, monkeypatch):
    write_inputs(tmp_path / "in")
    make_cbz(tmp_path / "in" / "vol.cbz")
    stage.colorize([tmp_path / "in"], tmp_path / "clean", color_pt, cc(batch_size=1))
    real, calls = PageColorizer.colorize_many, []

    def dies_in_the_chapter(self, images, force=False, **steer):
        calls.append(1)
        if len(calls) == 8:  # 6 single pages, then the chapter's first page, then Ctrl-C in its second
            raise KeyboardInterrupt
        return real(self, images, force, **steer)

    monkeypatch.setattr(PageColorizer, "colorize_many", dies_in_the_chapter)
    with pytest.raises(KeyboardInterrupt):
        stage.colorize([tmp_path / "in"], tmp_path / "out", color_pt, cc(batch_size=1))
    left = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert ".onepunch-colorize.json" in left and "vol.cbz" not in left
    assert not [n for n in left if ".tmp-" in n]  # no partial chapter or page left behind
    monkeypatch.setattr(PageColorizer, "colorize_many", real)
    s = stage.colorize([tmp_path / "in"], tmp_path / "out", color_pt, cc(batch_size=1))
    assert s.up_to_date == 6 and s.done == 3

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and not p.name.startswith(".")}
    assert files(tmp_path / "out") == files(tmp_path / "clean")


@pytest.mark.slow
def test_a_bad_checkpoint_is_a_one_line_error(tmp_path):
    Image.fromarray(line_page(1, 64, 64)).save(tmp_path / "page.png")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    for ckpt, message in ((tmp_path / "nope.pt", "not found"), (tmp_path / "bad.pt", "not a loadable")):
        r = cli("colorize", str(tmp_path / "page.png"), "--ckpt", str(ckpt), "--out", str(tmp_path / "o"))
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_old_name_still_imports():
    import onepunch

    assert onepunch.Colorizer is PageColorizer  # scripts written before the rename keep working


def _two_regions(side: int = 360, scale: int = 6):
    """A page: white paper with one vertical ink line; the truth: red left of it, blue right; the net's output: the
    truth at 1/scale (the best a net at that size could give, colors mixed across the line)."""
    page = np.full((side, side), 255, np.uint8)
    page[:, side // 2 - 1: side // 2 + 2] = 0
    truth = np.zeros((side, side, 3), np.uint8)
    truth[:, : side // 2] = (220, 40, 40)
    truth[:, side // 2:] = (40, 40, 220)
    truth[page == 0] = 0
    small = (side // scale, side // scale)
    work = np.asarray(Image.fromarray(page).resize(small, Image.BILINEAR))
    net = np.asarray(Image.fromarray(truth).resize(small, Image.BILINEAR))
    return page, truth, work, net


def test_inward_chroma_stops_colors_at_ink_lines():
    page, truth, work, net = _two_regions()
    lab = lambda x: metrics.rgb_to_lab(torch.from_numpy(x).permute(2, 0, 1)[None].double() / 255)[0]  # noqa: E731
    near = np.zeros(page.shape, bool)
    near[:, 180 - 9: 180 - 2] = near[:, 180 + 3: 180 + 10] = True  # 2-8 px beside the line, both sides
    err = {}
    for chroma in ("bilinear", "inward"):
        out = transfer_detail(page, work, net, chroma=chroma)
        err[chroma] = float((lab(out)[1:] - lab(truth)[1:]).norm(dim=0)[torch.from_numpy(near)].mean())
    assert err["inward"] < 0.25 * err["bilinear"], err  # measured 0.94 against 11.7 (a*b* distance)


def test_inward_chroma_keeps_the_color_of_a_solid_black_fill():
    """A large black shape the net colored keeps its color inside (only thin ink is a barrier)."""
    page = np.full((240, 240), 255, np.uint8)
    page[60:180, 60:180] = 0
    net = np.full((40, 40, 3), 230, np.uint8)
    net[10:30, 10:30] = (30, 120, 30)
    work = np.asarray(Image.fromarray(page).resize((40, 40), Image.BILINEAR))
    out = transfer_detail(page, work, net, chroma="inward")
    assert out[120, 120, 1] > out[120, 120, 0] + 40  # still green at the fill's centre


def test_unknown_chroma_is_a_one_line_error(color_pt):
    with pytest.raises(UserError, match="chroma must be inward or bilinear"):
        PageColorizer(color_pt, device="cpu", chroma="guided")


def test_inward_chroma_keeps_the_color_of_screentone():
    """A toned region (dots 4 px apart) has no inside wider than the reach: deeper than reach + 3 px into it, the
    net's color stays (seen on the demo's pages: without the limit its dots took the paper's color)."""
    page = np.full((240, 240), 255, np.uint8)
    page[60:180:4, 60:180:4] = 0
    page[61:180:4, 60:180:4] = 0
    net = np.full((40, 40, 3), 235, np.uint8)
    net[10:30, 10:30] = (240, 150, 60)
    work = np.asarray(Image.fromarray(page).resize((40, 40), Image.BILINEAR))
    out = transfer_detail(page, work, net, chroma="inward").astype(int)
    ref = transfer_detail(page, work, net, chroma="bilinear").astype(int)
    assert out[122, 122, 0] - out[122, 122, 2] > 60  # still orange in the middle of the tone
    assert np.abs(out[100:140, 100:140] - ref[100:140, 100:140]).mean() < 2  # as the net gave it there


@pytest.mark.slow
def test_changed_lettering_descreen_or_tile_passes_redo_the_pages(tmp_path, color_pt):
    """Each of these settings changes the output bytes, so the record holds it: a change redoes the pages, the same
    settings again do nothing."""
    Image.fromarray(line_page(1, 200, 280)).save(tmp_path / "p.png")
    out, first = tmp_path / "out", {"tile": 128, "overlap": 32}
    assert stage.colorize([tmp_path / "p.png"], out, color_pt, cc(**first)).done == 1
    for change in ({"lettering": "off"}, {"descreen": "off"}, {"tile_passes": 0}):
        settings = {**first, **change}
        assert stage.colorize([tmp_path / "p.png"], out, color_pt, cc(**settings)).done == 1, change
        assert stage.colorize([tmp_path / "p.png"], out, color_pt, cc(**settings)).up_to_date == 1, change


@pytest.mark.slow
def test_a_changed_chroma_redoes_the_pages(tmp_path, color_pt):
    """The output bytes depend on the chroma method, so the record holds it: a rerun with the other one redoes every
    page, and a rerun with the same one does nothing."""
    write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    first = stage.colorize([tmp_path / "in"], out, color_pt, cc())
    again = stage.colorize([tmp_path / "in"], out, color_pt, cc(chroma="bilinear"))
    assert again.done == first.done > 0 and again.up_to_date == 0
    assert stage.colorize([tmp_path / "in"], out, color_pt, cc(chroma="bilinear")).done == 0
