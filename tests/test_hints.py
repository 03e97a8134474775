"""Color hints and palettes: the formats users write, what training samples, old checkpoints, and that a trained net
follows them."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from onepunch import checkpoint, clicks, hints
from onepunch.errors import UserError
from onepunch.inference import PageColorizer
from tests.conftest import cli


def test_sampled_hints_hold_the_truths_colors_and_a_larger_count_adds_to_a_smaller_one():
    color = torch.ones(2, 3, 32, 32)
    color[:, :, 8:24, 8:24] = torch.tensor([0.6, -0.8, -0.2]).view(1, 3, 1, 1)  # a red square on white paper
    maps = [hints.sample(color, torch.tensor([n, n]), torch.Generator().manual_seed(1), draws=20) for n in (1, 5, 20)]
    for m in maps:
        mask = m[:, 3] > 0
        assert mask.any(dim=(1, 2)).all()
        assert not mask[:, :6].any() and not mask[:, 26:].any() and not mask[:, :, :6].any()  # off the paper
        assert not mask[:, :, 26:].any()
    red = hints.sample(color[:, :, 8:24, 8:24], torch.tensor([5, 5]), torch.Generator().manual_seed(1))
    mask = red[:, 3] > 0  # each square holds the truth's mean color over it
    assert torch.allclose(red[:, :3].permute(0, 2, 3, 1)[mask], torch.tensor([0.6, -0.8, -0.2]), atol=1e-5)
    assert ((maps[0][:, 3] > 0) <= (maps[1][:, 3] > 0)).all() and ((maps[1][:, 3] > 0) <= (maps[2][:, 3] > 0)).all()
    none = hints.sample(color, torch.tensor([0, 0]), torch.Generator().manual_seed(1))
    assert not none.any()


def test_hint_counts_follow_the_rate_and_the_cap():
    n = hints.counts(4000, 0.5, 32, torch.Generator().manual_seed(0))
    assert 0.45 < (n == 0).float().mean() < 0.55 and n.max() <= 32 and n[n > 0].min() == 1
    assert 7 < n[n > 0].float().mean() < 10  # 1 + geometric(1/8), capped


def test_palette_puts_a_pictures_colors_in_their_bins():
    red = Image.new("RGB", (300, 200), (230, 20, 20))
    p = hints.of_image(red)
    assert p.shape == (hints.PALETTE_DIM,) and p[-1] == 1
    assert p[:-1].argmax() == (3 * 4 + 0) * 4 + 0 and torch.isclose(p[:-1].norm(), torch.tensor(1.0))


def test_user_hints_land_where_the_page_says_at_the_working_size():
    pts = [{"x": 1000, "y": 500, "color": "#ff0000", "radius": 0},
           {"line": [[0, 1500], [1999, 1500]], "color": [0, 0, 255], "width": 20}]
    m = hints.render(hints.check(pts, "t"), (2000, 2000), (256, 256))
    assert m.shape == (256, 256, 4)
    assert m[64, 128, 3] == 1 and np.allclose(m[64, 128, :3], [1, -1, -1])
    assert m[192, :, 3].all() and np.allclose(m[192, 5, :3], [-1, -1, 1])
    assert m[..., 3].sum() < 256 * 6  # a point and a 3 px stroke, nothing else
    assert hints.render([], (10, 10), (10, 10)) is None


def test_a_hint_image_is_its_opaque_strokes_stretched_to_the_page():
    img = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    img.paste((0, 255, 0, 255), (100, 100, 200, 200))
    m = hints.from_image(img, (64, 64))
    assert m[24, 24, 3] == 1 and np.allclose(m[24, 24, :3], [-1, 1, -1]) and m[5, 5, 3] == 0
    assert hints.from_image(Image.new("RGBA", (40, 40)), (8, 8)) is None


@pytest.mark.parametrize("content, message", [
    ("not json", "not a JSON hints file"),
    ('[{"x": 1, "y": 2}]', "color must be"),
    ('[{"x": 1, "color": "#ff0000"}]', "needs x and y"),
    ('{"pages": []}', "maps page file names"),
    ('{"every": []}', "a list of hints or an object"),
    ('[{"line": [[1]], "color": "#ff0000"}]', r"list of \[x, y\] points"),
    ('[{"x": "a", "y": 1, "color": "#ff0000"}]', "x must be a number"),
])
def test_bad_hints_files_are_one_line_errors(tmp_path, content, message):
    f = tmp_path / "h.json"
    f.write_text(content)
    with pytest.raises(UserError, match=message):
        hints.load_file(f)


def test_a_hints_file_gives_each_page_the_chapters_hints_and_its_own(tmp_path):
    f = tmp_path / "h.json"
    f.write_text(json.dumps({"all": [{"x": 1, "y": 1, "color": "#ff0000"}],
                             "pages": {"002.png": [{"x": 5, "y": 5, "color": "#00ff00"}]}}))
    table = hints.load_file(f)
    assert len(hints.for_page(table, "001.png")) == 1 and len(hints.for_page(table, "002.png")) == 2
    assert len(hints.for_page(table, "ch1/002.png")) == 2  # a chapter member by its base name


def test_a_colorizer_made_before_hints_loads_and_colorizes_as_it_did(tmp_path, color_pt):
    ck = torch.load(color_pt, weights_only=True)
    ck["state_dict"] = {k: v for k, v in ck["state_dict"].items() if not k.startswith("control.")}
    old = tmp_path / "old.pt"
    torch.save(ck, old)
    g_old, meta = checkpoint.load_colorizer(old)
    g_new, _ = checkpoint.load_colorizer(color_pt)
    assert meta["absent"] == ["control."]
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    assert torch.equal(g_old(x), g_new(x))
    page = Image.new("L", (80, 60), 255)
    c = PageColorizer(old, device="cpu")
    assert np.array_equal(np.asarray(c.colorize(page)), np.asarray(PageColorizer(color_pt, device="cpu").colorize(page)))
    # Its net takes no hints, but a hinted shape still takes the hint's color (hint_fill flat, the default) ...
    drawn = Image.new("L", (80, 60), 255)
    ImageDraw.Draw(drawn).ellipse((20, 10, 60, 50), outline=0, width=2)
    out = np.asarray(c.colorize(drawn, hints=[{"x": 40, "y": 30, "color": "#dc1e1e"}]))
    point = [p for p in clicks.clicks(np.asarray(drawn), np.asarray(drawn.convert("RGB"))) if abs(p["x"] - 40) < 5]
    assert clicks.obedience(out, np.asarray(drawn), [dict(point[0], color=[220, 30, 30])])[0] < clicks.WITHIN
    # ... and asked to let the net follow hints, it says it cannot.
    with pytest.raises(UserError, match="takes no hints"):
        PageColorizer(old, device="cpu", hint_fill="net").colorize(page, hints=[{"x": 1, "y": 1, "color": "#ff0000"}])
    with pytest.raises(UserError, match="takes no palette"):
        c.colorize(page, palette=hints.of_image(page))


def test_hints_and_the_palette_reach_the_net(tmp_path, color_pt):
    """With hint_fill net the net alone decides: its hint and palette inputs change what it paints (Control's last
    layers set non-zero here, as training makes them); a hint image and a hint list of the same strokes agree."""
    from tests.conftest import shapes_page

    ck = torch.load(color_pt, weights_only=True)
    gen = torch.Generator().manual_seed(0)
    for k, v in ck["state_dict"].items():
        if k.startswith(("control.hints.", "control.palette.2.")):
            ck["state_dict"][k] = torch.randn(v.shape, generator=gen) * 0.5
    steered = tmp_path / "steered.pt"
    torch.save(ck, steered)
    scan, color = shapes_page(np.random.default_rng(5), 128)
    page = Image.fromarray(scan, "L")
    c = PageColorizer(steered, device="cpu", hint_fill="net", regions="off")
    plain = np.asarray(c.colorize(page)).astype(float)
    red = np.asarray(c.colorize(page, hints=[{"x": 32, "y": 32, "color": "#dc1e1e", "radius": 4}])).astype(float)
    assert np.abs(red - plain)[20:44, 20:44].mean() > 5  # the hinted disc changed
    drawn = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    ImageDraw.Draw(drawn).ellipse((28, 28, 36, 36), fill=(220, 30, 30, 255))
    from_image = np.asarray(c.colorize(page, hints=drawn)).astype(float)
    assert np.abs(from_image - red).mean() < np.abs(red - plain).mean()
    palette = np.asarray(c.colorize(page, palette=hints.of_image(Image.fromarray(color)))).astype(float)
    assert np.abs(palette - plain).mean() > 1


def test_colorize_cli_takes_hints_a_hint_image_and_a_reference(tmp_path, color_pt):
    """Any colorizer (here: untrained) colors a hinted shape in the hint's color (hint_fill flat, the default)."""
    from tests.conftest import shapes_page

    scan, color = shapes_page(np.random.default_rng(5), 256)
    (tmp_path / "in").mkdir()
    Image.fromarray(scan, "L").save(tmp_path / "in" / "p1.png")
    Image.fromarray(scan, "L").save(tmp_path / "in" / "p2.png")
    (tmp_path / "h.json").write_text(json.dumps({"pages": {"p1.png": [{"x": 64, "y": 64, "color": "#dc1e1e",
                                                                       "radius": 8}]}}))
    strokes = Image.new("RGBA", (512, 512), (0, 0, 0, 0))  # twice the page's size: stretched over it
    strokes.paste((30, 60, 220, 255), (100, 100, 150, 150))
    strokes.save(tmp_path / "strokes.png")
    Image.fromarray(color).save(tmp_path / "ref.png")
    out = tmp_path / "out"
    args = ["colorize", str(tmp_path / "in"), "--ckpt", str(color_pt), "--out", str(out), "--device", "cpu"]
    r = cli(*args, "--hints", str(tmp_path / "h.json"))
    assert r.returncode == 0, r.stderr
    p1, p2 = (np.asarray(Image.open(out / "in" / f"{n}.png")).astype(float) for n in ("p1", "p2"))
    assert p1[40:88, 40:88, 0].mean() - p1[40:88, 40:88, 2].mean() > 40  # p1 hinted red, p2 not
    assert abs(p2[40:88, 40:88, 0].mean() - p1[40:88, 40:88, 0].mean()) > 20
    r = cli(*args, "--hint-image", str(tmp_path / "strokes.png"), "--reference", str(tmp_path / "ref.png"))
    assert r.returncode == 0, r.stderr
    p1 = np.asarray(Image.open(out / "in" / "p1.png")).astype(float)
    assert p1[40:88, 40:88, 2].mean() - p1[40:88, 40:88, 0].mean() > 40  # now blue, from the hint image
    (tmp_path / "bad.json").write_text("[{]")
    r = cli(*args, "--hints", str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "not a JSON hints file" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.png").write_bytes(b"not an image")
    r = cli(*args, "--reference", str(tmp_path / "bad.png"))
    assert r.returncode == 2 and "--reference" in r.stderr and "Traceback" not in r.stderr


def test_a_hint_fills_the_region_its_lines_enclose_and_nothing_else():
    scan = np.full((64, 64), 255, np.uint8)
    scan[10:30, 10] = scan[10:30, 29] = scan[10, 10:30] = scan[29, 10:30] = 0  # a closed box
    scan[40:60, 40] = scan[40:60, 59] = scan[40, 40:60] = scan[59, 40:60] = 0  # another one
    hint = np.zeros((64, 64, 4), np.float32)
    hint[15, 15] = [1, -1, -1, 1]  # red in the first box
    hint[45, 45] = [-1, -1, 1, 1]  # blue and green in the second: each pixel takes its nearest
    hint[55, 55] = [-1, 1, -1, 1]
    hint[5, 5] = [1, 1, -1, 1]  # yellow on the paper around them: too large a region to fill
    out = hints.fill(scan, hint)
    assert (out[11:29, 11:29, 3] == 1).all() and np.allclose(out[11:29, 11:29, :3], [1, -1, -1])
    assert np.allclose(out[42, 42, :3], [-1, -1, 1]) and np.allclose(out[57, 57, :3], [-1, 1, -1])
    assert out[10, 10:30, 3].sum() == 0  # the lines are the net's to color
    assert out[..., 3].sum() == 18 * 18 * 2 + 1  # the boxes' insides and the one paper hint
    assert out[5, 5, 3] == 1 and out[35, 5, 3] == 0
    assert hints.fill(scan, np.zeros((64, 64, 4), np.float32)).sum() == 0


def test_sampled_hints_equal_the_per_pixel_reference():
    """sample works per hint; this is the per-pixel definition (box means by pooling, squares painted by pooling)."""
    import torch.nn.functional as F

    color = torch.rand(3, 3, 40, 48, generator=torch.Generator().manual_seed(2)) * 2 - 1
    counts = torch.tensor([0, 7, 30])
    got = hints.sample(color, counts, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)  # the same draws, in the same order
    where = torch.multinomial((color.amin(1).flatten(1) < 0.8).float() + 1e-6, 30, replacement=True, generator=gen)
    half = torch.randint(0, 3, (3, 30), generator=gen)
    live = torch.arange(30)[None] < counts[:, None]
    num, den = torch.zeros(3, 3, 40, 48), torch.zeros(3, 1, 40, 48)
    for k, r in enumerate(hints.HALF_SIDES):
        centers = torch.zeros(3, 40 * 48).scatter_add_(1, where, (live & (half == k)).float()).clamp(max=1)
        centers = centers.view(3, 1, 40, 48)
        mean = F.avg_pool2d(color, 2 * r + 1, 1, r, count_include_pad=False)
        num += F.avg_pool2d(centers * mean, 2 * r + 1, 1, r, divisor_override=1)
        den += F.avg_pool2d(centers, 2 * r + 1, 1, r, divisor_override=1)
    mask = (den > 0).float()
    assert torch.equal(got[:, 3:], mask) and not got[0].any()
    assert torch.allclose(got[:, :3], num / den.clamp_min(1) * mask, atol=1e-5)


def test_a_changed_hints_file_redoes_the_pages_and_an_unchanged_one_does_nothing(tmp_path, color_pt):
    from onepunch.stages import colorize as stage
    from tests.test_colorize import cc

    (tmp_path / "in").mkdir()
    Image.new("L", (64, 48), 255).save(tmp_path / "in" / "p.png")
    f = tmp_path / "h.json"
    f.write_text('[{"x": 10, "y": 10, "color": "#ff0000"}]')
    run = lambda: stage.colorize([tmp_path / "in"], tmp_path / "out", color_pt, cc(hints=str(f)))  # noqa: E731
    assert run().done == 1
    assert run().up_to_date == 1
    f.write_text('[{"x": 20, "y": 10, "color": "#00ff00"}]')
    assert run().done == 1
