"""build-pairs as a user relies on it: paired shards that match their inputs, no-op reruns, resume, bad --ckpt."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from onepunch import checkpoint, config, pipeline
from onepunch.dist import Rank
from onepunch.errors import UserError
from onepunch.models import cyclegan
from onepunch.stages import build_pairs, shards
from tests.conftest import REPO, cli, demo_tables, tree_digest, write_pipeline


def scan_pt(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    g = cyclegan.build("tiny")["c2s"]
    checkpoint.save_generator(g, path, lineage={"test": True})
    return path


@pytest.fixture
def paired(tmp_path, sample_dir):
    """factory(work, **build_pairs overrides) -> config with shards built and a tiny scan.pt at the default place."""
    def make(work="w", **overrides):
        root = tmp_path / work
        root.mkdir(exist_ok=True)
        tables = demo_tables(root, sample_dir)
        tables["build_pairs"] = {"workers": 0, "batch_size": 4, **overrides}
        cfg = config.load(write_pipeline(root / "p.toml", tables))
        if pipeline.state(cfg, "shards") != "done":
            shards.run(cfg)
        if not pipeline.scan_ckpt(cfg).exists():
            scan_pt(pipeline.scan_ckpt(cfg))
        return cfg
    return make


def outputs(cfg) -> dict:
    return {**tree_digest(pipeline.out_dir(cfg, "build-pairs")), "manifest": tree_digest(cfg.manifest_dir)["build-pairs.json"]}


@pytest.mark.slow
def test_pairs_match_their_color_shards(paired):
    cfg = paired()
    m = build_pairs.run(cfg)
    sm = json.loads(pipeline.manifest_path(cfg, "shards").read_text())
    for split in ("train", "val"):
        colors = sm["domains"]["colors"][split]
        assert [s["count"] for s in m["splits"][split]["shards"]] == [s["count"] for s in colors["shards"]]
        for s_in, s_out in zip(colors["shards"], m["splits"][split]["shards"], strict=True):
            with tarfile.open(Path(sm["root"]) / s_in["path"]) as a, tarfile.open(Path(m["root"]) / s_out["path"]) as b:
                names = b.getnames()
                assert len(names) == 3 * s_in["count"]
                for name in a.getnames():
                    key, ext = name.split(".", 1)
                    if ext == "jpg":  # the color image is carried over untouched
                        assert b.extractfile(f"{key}.color.jpg").read() == a.extractfile(name).read()
                        scan = Image.open(b.extractfile(f"{key}.scan.png"))
                        color = Image.open(a.extractfile(name))
                        assert scan.mode == "L" and scan.size == color.size  # full resolution
                        meta = json.loads(b.extractfile(f"{key}.json").read())
                        assert meta["id"] == key and meta["scan"]["ckpt_sha256"] == m["inputs"]["ckpt_sha256"]
    assert m["totals"]["pairs"] == sm["domains"]["colors"]["train"]["count"] + sm["domains"]["colors"]["val"]["count"]
    assert pipeline.state(cfg, "build-pairs") == "done"


def test_rerun_no_op_and_new_checkpoint_rebuilds(paired):
    cfg = paired()
    build_pairs.run(cfg)
    before = outputs(cfg)
    mtimes = {p: p.stat().st_mtime_ns for p in pipeline.out_dir(cfg, "build-pairs").glob("*.tar")}
    build_pairs.run(cfg)
    assert outputs(cfg) == before and mtimes == {p: p.stat().st_mtime_ns for p in mtimes}
    scan_pt(pipeline.scan_ckpt(cfg), seed=1)  # a new scan generator
    assert pipeline.state(cfg, "build-pairs") == "stale"
    build_pairs.run(cfg)
    after = outputs(cfg)
    tars = [k for k in before if k.endswith(".tar")]
    assert all(before[k] != after[k] for k in tars if json.loads(
        (pipeline.out_dir(cfg, "build-pairs") / k.replace(".tar", ".stats.json")).read_text())["count"] > 0)


@pytest.mark.slow
def test_workers_and_ranks_do_not_change_the_bytes(paired):
    clean = paired("clean")
    build_pairs.run(clean)
    other = paired("ranks", workers=2, batch_size=3)
    assert build_pairs.run(other, Rank(1, 2)) is None
    build_pairs.run(other, Rank(0, 2))
    a, b = outputs(clean), outputs(other)
    assert {k: v for k, v in a.items() if k.endswith(".tar")} == {k: v for k, v in b.items() if k.endswith(".tar")}


@pytest.mark.slow
def test_kill_and_resume_is_byte_identical(paired):
    clean = paired("clean")
    build_pairs.run(clean)
    cfg = paired("killed")
    proc = subprocess.Popen([sys.executable, "-m", "onepunch", "build-pairs", "--pipeline", cfg.path], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not any(pipeline.out_dir(cfg, "build-pairs").glob("*.stats.json")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not pipeline.manifest_path(cfg, "build-pairs").exists(), "finished before the kill"
    build_pairs.run(cfg)
    a, b = outputs(clean), outputs(cfg)
    assert {k: v for k, v in a.items() if k != "manifest"} == {k: v for k, v in b.items() if k != "manifest"}


@pytest.mark.slow
def test_bad_checkpoints_are_one_line_errors(paired, tmp_path):
    cfg = paired()
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"kind": "onepunch.train-scan.checkpoint", "step": 1}, tmp_path / "training.pt")
    for ckpt, message in ((tmp_path / "nope.pt", "not found"), (tmp_path / "text.pt", "not a loadable"),
                          (tmp_path / "training.pt", "expected 'onepunch.scan-generator'")):
        r = cli("build-pairs", "--pipeline", cfg.path, "--ckpt", str(ckpt), "--workers", "0")
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_xdog_baseline_needs_no_checkpoint(paired):
    cfg = paired(method="xdog")
    pipeline.scan_ckpt(cfg).unlink()
    m = build_pairs.run(cfg)
    assert m["inputs"]["method"] == "xdog" and "ckpt_sha256" not in m["inputs"]
    with tarfile.open(Path(m["root"]) / m["splits"]["train"]["shards"][0]["path"]) as t:
        scan = next(n for n in t.getnames() if n.endswith(".scan.png"))
        a = np.asarray(Image.open(t.extractfile(scan)))
    assert a.dtype == np.uint8 and np.median(a) > 200 and a.min() < 80  # white paper, dark lines


@pytest.mark.slow
def test_pairs_load_with_webdataset_and_datasets(paired):
    import datasets
    import webdataset as wds
    cfg = paired()
    m = build_pairs.run(cfg)
    urls = [str(Path(m["root"]) / s["path"]) for s in m["splits"]["train"]["shards"] if s["count"]]
    n = sum(1 for _ in wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("scan.png", "color.jpg"))
    assert n == m["splits"]["train"]["count"]
    ds = datasets.load_dataset("webdataset", data_files={"train": urls}, split="train")
    assert len(ds) == n and {"scan.png", "color.jpg", "json"} <= set(ds.column_names)


def test_generated_pairs_record_the_device_that_made_them(paired):
    cfg = paired()
    on = {d: pipeline.settings(dataclasses.replace(cfg, build_pairs=dataclasses.replace(cfg.build_pairs, device=d)),
                               "build-pairs") for d in ("cpu", "cuda")}
    assert on["cpu"]["device"] == "cpu" and on["cpu"] != on["cuda"]  # CUDA scans are not the CPU's bit for bit


def test_scanner_splits_a_batch_that_would_overflow_32_bit_indexing(tmp_path, monkeypatch):
    """256 images at 512 px in one forward made an activation over 2**31 elements ("input tensor must fit into 32-bit
    index math", seen on a GPU); the scanner caps the pixels per forward, and the scans do not depend on the cap."""
    from onepunch import scanners, train

    ckpt = scan_pt(tmp_path / "scan.pt")
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
              for h, w in [(30, 41)] * 5 + [(17, 16)] * 3]
    env = train.setup("cpu")
    whole = scanners.GeneratorScanner(str(ckpt), env, 8)(images)
    calls = []
    monkeypatch.setattr(scanners, "MAX_PIXELS", 2 * 30 * 41)
    small = scanners.GeneratorScanner(str(ckpt), env, 8)
    forward = small.g.forward
    small.g.forward = lambda x: calls.append(len(x)) or forward(x)
    chunked = small(images)
    assert calls == [2, 2, 1, 3]  # 5 big images in 3 forwards; the 3 small ones fit in one
    assert all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(whole, chunked, strict=True))


def test_generator_scans_are_levelled_and_the_levels_are_part_of_the_pairs_settings(tmp_path):
    """Paper at or above paper_level becomes white and ink at or below ink_level black; the rest is the generator's.
    Other levels are other pairs (the settings differ), and XDoG pairs do not depend on them."""
    from onepunch import scanners, train

    ckpt = scan_pt(tmp_path / "scan.pt")
    g = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 40, 52), dtype=torch.uint8, generator=g)]
    env = train.setup("cpu")
    raw = scanners.GeneratorScanner(str(ckpt), env, 8)(images)[0]
    paper, ink = int(np.percentile(raw, 70)), int(np.percentile(raw, 30))
    assert ink < paper
    levelled = scanners.GeneratorScanner(str(ckpt), env, 8, levels=(paper, ink))(images)[0]
    assert (levelled[raw >= paper] == 255).all() and (levelled[raw <= ink] == 0).all()
    middle = (raw > ink) & (raw < paper)
    assert middle.any() and np.array_equal(levelled[middle], raw[middle])

    cfg = config.load(REPO / "pipelines" / "demo.toml")
    other = dataclasses.replace(cfg, build_pairs=dataclasses.replace(cfg.build_pairs, paper_level=250))
    assert pipeline.settings(cfg, "build-pairs")["levels"] == [180, 75] and pipeline.settings(other, "build-pairs") != pipeline.settings(cfg, "build-pairs")
    xdog = [dataclasses.replace(c, build_pairs=dataclasses.replace(c.build_pairs, method="xdog")) for c in (cfg, other)]
    assert pipeline.settings(xdog[0], "build-pairs") == pipeline.settings(xdog[1], "build-pairs")
    with pytest.raises(UserError, match="ink_level"):
        dataclasses.replace(cfg.build_pairs, ink_level=200)
