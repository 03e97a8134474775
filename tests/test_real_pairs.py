"""Pairs a user owns (a folder of scan/ and color/): build-pairs ingests them, alone or mixed with generated pairs;
eval measures on them. Tiny generated folders: no network, no `make realdata`."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onepunch import config, pairs, pipeline
from onepunch.errors import UserError
from onepunch.sample import draw_color
from onepunch.stages import build_pairs, shards
from tests.conftest import demo_tables, write_pipeline


def make_pairs(folder: Path, n: int = 10, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """n true pairs (the sample's colored drawings and their line art), one scan as JPEG, plus one pair whose sizes
    differ and one broken color file."""
    rng = np.random.default_rng(seed)
    out = {}
    for d in ("scan", "color"):
        (folder / d / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        color, line = draw_color(rng, 96, 80)
        name = f"sub/d{i}" if i % 3 == 0 else f"d{i}"
        Image.fromarray(line).save(folder / "scan" / (name + (".jpg" if i == 1 else ".png")), quality=98)
        Image.fromarray(color).save(folder / "color" / f"{name}.png")
        out[name] = (line, color)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "scan" / "small.png")
    Image.fromarray(np.zeros((41, 40, 3), np.uint8)).save(folder / "color" / "small.png")
    (folder / "scan" / "broken.png").write_bytes(b"\x89PNG no")
    (folder / "color" / "broken.png").write_bytes(b"\x89PNG no")
    (folder / "scan" / "only-scan.png").write_bytes(b"x")
    return out


def test_find_lists_names_in_both_and_refuses_what_is_not_a_pairs_folder(tmp_path):
    truth = make_pairs(tmp_path / "p")
    found = pairs.find(tmp_path / "p")
    assert [p.name for p in found] == sorted([*truth, "small", "broken"])
    scan, color = pairs.load(next(p for p in found if p.name == "d1"))  # JPEG scan next to a PNG color
    assert scan.shape == color.shape[:2] == (80, 96)
    for bad in (tmp_path / "nope", tmp_path / "p" / "scan"):
        with pytest.raises(UserError, match="not a pairs folder"):
            pairs.find(bad)


def _cfg(tmp_path, sample_dir, **build):
    tables = demo_tables(tmp_path, sample_dir)
    tables["build_pairs"] = {"workers": 0, "batch_size": 4, **build}
    return config.load(write_pipeline(tmp_path / "p.toml", tables))


def _samples(m: dict) -> dict[str, dict]:
    out = {}
    for split in ("train", "val"):
        for s in m["splits"][split]["shards"]:
            with tarfile.open(Path(m["root"]) / s["path"]) as t:
                for name in t.getnames():
                    key, ext = name.split(".", 1)
                    out.setdefault(key, {"split": split})[ext] = t.extractfile(name).read()
    return out


def test_folder_pairs_alone_need_no_shards_and_skip_bad_pairs(tmp_path, sample_dir):
    truth = make_pairs(tmp_path / "mine")
    cfg = _cfg(tmp_path, sample_dir, method="folder", pairs_dir=str(tmp_path / "mine"))
    m = build_pairs.run(cfg)
    assert m["rejected"] == {"not_an_image": 1, "size_mismatch": 1} and m["totals"]["pairs"] == len(truth)
    got = _samples(m)
    assert {s["split"] for s in got.values()} == {"train", "val"}  # the shards' hash split
    by_name = {json.loads(s["json"])["source"]: s for s in got.values()}
    for name, (line, color) in truth.items():
        s = by_name[f"pairs:{name}"]
        scan = np.asarray(Image.open(io.BytesIO(s["scan.png"])))
        if name != "d1":  # d1's scan went through JPEG
            assert np.array_equal(scan, line)
        got_color = np.asarray(Image.open(io.BytesIO(s["color.jpg"])).convert("RGB"))
        assert got_color.shape == color.shape and np.abs(got_color.astype(int) - color).mean() < 3  # JPEG q95
    assert pipeline.state(cfg, "build-pairs") == "done" and not (tmp_path / "manifests" / "t" / "shards.json").exists()
    first = {p.name: p.read_bytes() for p in pipeline.out_dir(cfg, "build-pairs").glob("*.tar")}
    assert build_pairs.run(cfg)["totals"] == m["totals"]  # a rerun does nothing
    assert {p.name: p.read_bytes() for p in pipeline.out_dir(cfg, "build-pairs").glob("*.tar")} == first
    (tmp_path / "mine" / "color" / "d2.png").unlink()  # the folder changed: stale, rebuilt
    assert pipeline.state(cfg, "build-pairs") == "stale"
    assert build_pairs.run(cfg)["totals"]["pairs"] == len(truth) - 1


def test_folder_pairs_mix_with_generated_ones(tmp_path, sample_dir):
    truth = make_pairs(tmp_path / "mine")
    cfg = _cfg(tmp_path, sample_dir, method="xdog", pairs_dir=str(tmp_path / "mine"))
    shards.run(cfg)
    m = build_pairs.run(cfg)
    sm = json.loads(pipeline.manifest_path(cfg, "shards").read_text())
    colors = sum(sm["domains"]["colors"][s]["count"] for s in ("train", "val"))
    assert m["totals"]["pairs"] == colors + len(truth)
    methods = [json.loads(s["json"])["scan"]["method"] for s in _samples(m).values()]
    assert methods.count("folder") == len(truth) and methods.count("xdog") == colors


def test_method_folder_needs_a_pairs_dir(tmp_path, sample_dir):
    with pytest.raises(UserError, match="needs build_pairs.pairs_dir"):
        _cfg(tmp_path, sample_dir, method="folder")
