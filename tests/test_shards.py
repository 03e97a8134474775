"""The shards stage as a user relies on it: correct manifest, no-op reruns, resume after kill, ranks, reuse."""

import dataclasses
import io
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
from PIL import Image

from onepunch import pipeline
from onepunch.dist import Rank
from onepunch.errors import UserError
from onepunch.manifest import exclusive, sha256_file
from onepunch.stages import shards
from tests.conftest import REPO, demo_tables, run_cli, tree_digest


def outputs(cfg):
    """Every output byte of a shards run: the shard tree and the manifest."""
    return {**tree_digest(Path(cfg.out_dir)), "manifest": sha256_file(pipeline.manifest_path(cfg, "shards"))}


@pytest.fixture
def built(make_cfg):
    cfg = make_cfg()
    return cfg, shards.run(cfg)


def test_manifest_matches_the_shards(built, sample_dir):
    cfg, m = built
    root = Path(m["root"])
    seen_ids = set()
    for domain, splits in m["domains"].items():
        mode = cfg.domains[domain].mode
        for split, entry in splits.items():
            assert entry["count"] == sum(s["count"] for s in entry["shards"]) > 0
            for s in entry["shards"]:
                path = root / s["path"]
                assert sha256_file(path) == s["sha256"] and path.stat().st_size == s["bytes"]
                with tarfile.open(path) as tar:
                    names = tar.getnames()
                    assert len(names) == 2 * s["count"]
                    for name in names[::2]:
                        key = name.split(".")[0]
                        assert names[names.index(name) + 1] == f"{key}.json"  # members of a sample are contiguous
                        img = Image.open(io.BytesIO(tar.extractfile(name).read()))
                        meta = json.loads(tar.extractfile(f"{key}.json").read())
                        assert img.mode == mode and max(img.size) <= cfg.shards.max_side
                        assert meta["id"] == key and meta["source"].startswith("danbooru2020:original/")
                        assert set(meta) == {"id", "tags", "rating", "width", "height", "md5", "source"}
                        assert pipeline.split_of(cfg, key) == split and key not in seen_ids
                        seen_ids.add(key)
    t = m["totals"]
    assert t["written"] == len(seen_ids) and t["records"] == t["written"] + t["rejected"] + t["filtered"]
    # The sample's broken files are each counted by reason; the awkward-but-valid ones are converted and written.
    assert m["rejected"] == {"animated": 1, "decompression_bomb": 1, "duplicate_md5": 1, "empty_file": 1,
                             "missing_file": 1, "not_an_image": 1, "truncated": 1}
    assert m["reader"] == {"duplicate_id": 1}
    rejects = [json.loads(line) for line in open(m["rejects_file"])]
    assert len(rejects) == 7 and {r["reason"] for r in rejects} == set(m["rejected"])
    assert m["filtered"]["colors"]["min_side"] == 1  # the tiny image
    assert m["config_hash"] and m["source_fingerprint"] and m["versions"]["pillow"]


def test_rerun_is_a_no_op(built):
    cfg, _ = built
    before = outputs(cfg)
    mtimes = {p: p.stat().st_mtime_ns for p in Path(cfg.out_dir).rglob("*") if p.is_file()}
    shards.run(cfg)
    assert outputs(cfg) == before
    assert mtimes == {p: p.stat().st_mtime_ns for p in Path(cfg.out_dir).rglob("*") if p.is_file()}
    shards.run(cfg, force=True)  # re-plans, finds every shard done, rewrites nothing but an identical manifest
    assert outputs(cfg) == before
    assert mtimes == {p: p.stat().st_mtime_ns for p in Path(cfg.out_dir).rglob("*") if p.is_file()
                      and p.suffix == ".tar"} | {p: t for p, t in mtimes.items() if p.suffix != ".tar"}


@pytest.mark.slow
def test_workers_do_not_change_the_bytes(built, make_cfg, tmp_path):
    cfg, _ = built
    clean = outputs(cfg)
    other = dataclasses.replace(cfg, shards=dataclasses.replace(cfg.shards, workers=2))
    for p in Path(cfg.out_dir).rglob("*.tar"):
        p.unlink()
    pipeline.manifest_path(cfg, "shards").unlink()
    shards.run(other)
    assert outputs(other) == clean


def _kill_when(cfg, condition, timeout=60.0) -> bool:
    """Start `onepunch shards`, SIGKILL it (workers too) as soon as condition(out_dir) holds; True if killed mid-run."""
    out = Path(cfg.out_dir)
    proc = subprocess.Popen([sys.executable, "-m", "onepunch", "shards", "--pipeline", cfg.path, "--workers", "2"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline and not condition(out):
        time.sleep(0.0005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    gone_by = time.time() + 10
    while time.time() < gone_by:  # orphaned workers hold the lock until they are gone, as they should
        try:
            os.killpg(proc.pid, 0)
            time.sleep(0.01)
        except ProcessLookupError:
            break
    return not pipeline.manifest_path(cfg, "shards").exists()


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["first temp file", "first shard done", "half the shards done"])
def test_kill_and_resume_is_byte_identical(built, moment):
    cfg, m = built
    clean = outputs(cfg)
    n = sum(len(e["shards"]) for d in m["domains"].values() for e in d.values())
    conditions = {
        "first temp file": lambda out: any(out.rglob(".*.tmp-*")),
        "first shard done": lambda out: any(out.rglob("*.stats.json")),
        "half the shards done": lambda out: len(list(out.rglob("*.stats.json"))) >= n // 2,
    }
    for p in list(Path(cfg.out_dir).rglob("*")):
        if p.is_file():
            p.unlink()
    pipeline.manifest_path(cfg, "shards").unlink()
    assert _kill_when(cfg, conditions[moment]), "the run finished before it could be killed"
    shards.run(cfg)
    assert outputs(cfg) == clean, f"resume after a kill at '{moment}' differs from a clean run"


def test_config_change_rebuilds_what_it_affects(built, make_cfg, tmp_path, sample_dir):
    cfg, _ = built
    root = Path(cfg.out_dir) / "shards"
    scans_before = {p: p.stat().st_mtime_ns for p in (root / "scans").glob("*.tar")}
    colors_before = tree_digest(root / "colors")
    tables = demo_tables(tmp_path, sample_dir)
    tables["domains.colors"]["min_side"] = 200  # only the colors query changes
    changed = make_cfg(tables=tables)
    assert pipeline.state(changed, "shards") == "stale"
    m = shards.run(changed)
    assert scans_before == {p: p.stat().st_mtime_ns for p in (root / "scans").glob("*.tar")}
    assert tree_digest(root / "colors") != colors_before
    # No shard of the old plan is left behind for a glob to pick up.
    listed = {s["path"] for d in m["domains"].values() for e in d.values() for s in e["shards"]}
    assert {str(p.relative_to(root)) for p in root.glob("*/*.tar")} == listed
    assert pipeline.state(changed, "shards") == "done"


@pytest.mark.slow
def test_a_second_run_on_the_same_outputs_is_refused(make_cfg):
    cfg = make_cfg()
    with exclusive(Path(cfg.out_dir) / "shards" / ".lock", "test"):
        with pytest.raises(UserError, match="another onepunch shards run"):
            shards.run(cfg)
        r = run_cli("shards", "--pipeline", cfg.path)
        assert r.returncode == 2 and r.stderr.startswith("error: another onepunch shards run"), r.stderr


def test_ranks_build_disjoint_shards_and_one_manifest(built, make_cfg, tmp_path, sample_dir):
    cfg, m = built
    single = outputs(cfg)
    tables = demo_tables(tmp_path / "dist", sample_dir)
    dist = make_cfg(name="dist.toml", tables=tables)
    assert shards.run(dist, Rank(1, 2)) is None  # rank 1 alone: its half is built, the manifest waits
    built_by_1 = set(Path(dist.out_dir).rglob("*.tar"))
    assert built_by_1 and not pipeline.manifest_path(dist, "shards").exists()
    m2 = shards.run(dist, Rank(0, 2))  # the last rank to finish writes the manifest
    built_all = set(Path(dist.out_dir).rglob("*.tar"))
    assert len(built_all) == sum(len(e["shards"]) for d in m["domains"].values() for e in d.values())
    assert m2["domains"] == m["domains"] and m2["totals"] == m["totals"]
    assert {k.removeprefix("shards/"): v for k, v in single.items() if k.startswith("shards/")} == \
        tree_digest(Path(dist.out_dir) / "shards")


@pytest.mark.slow
def test_torchrun_style_ranks_run_together(make_cfg, tmp_path):
    cfg = make_cfg()
    procs = [subprocess.Popen([sys.executable, "-m", "onepunch", "shards", "--pipeline", cfg.path],
                              cwd=REPO, env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (1, 0)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert pipeline.state(cfg, "shards") == "done"
    assert results[0][1] == "" or "rank 1" not in results[1][1]  # only rank 0 talks


def test_shards_load_with_webdataset_and_datasets(built):
    import datasets
    import webdataset as wds
    cfg, m = built
    root = Path(m["root"])
    urls = [str(root / s["path"]) for s in m["domains"]["colors"]["train"]["shards"]]
    n = 0
    for img, meta in wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("jpg", "json"):
        assert img.mode == "RGB" and meta["id"] and isinstance(meta["tags"], list)
        n += 1
    assert n == m["domains"]["colors"]["train"]["count"]
    ds = datasets.load_dataset("webdataset", data_files={"train": urls}, split="train")
    assert len(ds) == n and {"jpg", "json"} <= set(ds.column_names)
    assert np.asarray(ds[0]["jpg"]).ndim == 3


def test_folder_source_end_to_end(tmp_path, make_cfg):
    src = tmp_path / "pics"
    for sub, color in (("lineart", "white"), ("colored", "red")):
        (src / sub).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (300 + 10 * i, 200), color).save(src / sub / f"{i}.png")
    (src / "colored" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    tables = {
        "": {"name": "f", "out_dir": str(tmp_path / "o"), "manifests": str(tmp_path / "m")},
        "source": {"kind": "folder", "path": str(src)},
        "domains.scans": {"all_of": ["lineart"], "mode": "L"},
        "domains.colors": {"all_of": ["colored"], "min_aspect": 1.0},
        "shards": {"max_side": 128, "samples_per_shard": 100, "val_fraction": 0.0, "workers": 0},
    }
    m = shards.run(make_cfg(tables=tables))
    assert m["domains"]["scans"]["train"]["count"] == 3 and m["domains"]["colors"]["train"]["count"] == 3
    # Identical red images are duplicates by md5: only the size differs, so none here; the broken file is counted.
    assert m["rejected"] == {"truncated": 1} or m["rejected"] == {"not_an_image": 1}
