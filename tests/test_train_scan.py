"""train-scan as a user relies on it: a scan.pt that loads safely, resume == continuous, signals, DDP, staleness."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from onepunch import checkpoint, config, pipeline, train
from onepunch.errors import UserError
from onepunch.stages import shards, train_scan
from tests.conftest import REPO, cli, demo_tables, write_pipeline

TINY = {"preset": "tiny", "size": 32, "batch_size": 2, "steps": 6, "sample_every": 2, "val_every": 3,
        "ckpt_every": 2, "val_images": 2, "workers": 0, "pool_size": 3}


def write(work: Path, sample_dir, name="p.toml", **train_overrides) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    tables = demo_tables(work, sample_dir)
    tables["train_scan"] = {**TINY, **train_overrides}
    return write_pipeline(work / name, tables)


@pytest.fixture
def trainable(tmp_path, sample_dir):
    """factory(**train_scan overrides) -> config whose shards are built; `work` names its own output folder."""
    def make(work="w", **overrides):
        cfg = config.load(write(tmp_path / work, sample_dir, **overrides))
        if pipeline.state(cfg, "shards") != "done":
            shards.run(cfg)
        return cfg
    return make


def model_tensors(path: Path) -> dict:
    ck = torch.load(path, weights_only=True)
    return {f"{k}.{n}": t for k, sd in ck["models"].items() for n, t in sd.items()}


def losses(log: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(ln).items() if k != "pairs_per_s"} for ln in log.read_text().splitlines()]


def test_trains_and_exports_a_safe_self_describing_scan_pt(trainable):
    cfg = trainable()
    m = train_scan.run(cfg)
    out = pipeline.out_dir(cfg, "train-scan")
    ck = torch.load(out / "scan.pt", weights_only=True)  # no unpickling of code
    assert ck["kind"] == checkpoint.SCAN_KIND and ck["config"]["in_ch"] == 3 and ck["config"]["out_ch"] == 1
    assert ck["lineage"]["shards_manifest_sha256"] == m["inputs"]["shards_manifest_sha256"]
    g, meta = checkpoint.load_generator(out / "scan.pt")
    y = g(torch.zeros(1, 3, 36, 44))  # fully convolutional: any size that divides by 4
    assert y.shape == (1, 1, 36, 44) and y.abs().max() <= 1
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [f"step-{s:08d}.png" for s in (2, 4, 6)]
    assert sorted(p.name for p in (out / "ckpt").glob("*.pt")) == [f"step-{s:08d}.pt" for s in (2, 4, 6)]
    assert {"val_cycle_l1", "val_psnr", "baseline_grey_psnr"} <= set(m["metrics"])
    assert pipeline.state(cfg, "train-scan") == "done"
    # A rerun with nothing changed does nothing.
    before = (out / "scan.pt").stat().st_mtime_ns
    assert train_scan.run(cfg) == m and (out / "scan.pt").stat().st_mtime_ns == before


@pytest.mark.slow
def test_resume_equals_continuous_training(trainable):
    straight = trainable("straight")
    train_scan.run(straight)
    cfg = trainable("resumed")
    with pytest.raises(train.Stopped):
        train_scan.run(cfg, stop_after=3)  # stops between checkpoints: the stop itself saves
    assert train.Checkpoints(pipeline.out_dir(cfg, "train-scan") / "ckpt", 3).latest().name == "step-00000003.pt"
    train_scan.run(cfg)
    a = model_tensors(pipeline.out_dir(straight, "train-scan") / "ckpt" / "step-00000006.pt")
    b = model_tensors(pipeline.out_dir(cfg, "train-scan") / "ckpt" / "step-00000006.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert losses(pipeline.out_dir(straight, "train-scan") / "log.jsonl") == losses(pipeline.out_dir(cfg, "train-scan") / "log.jsonl")


@pytest.mark.slow
def test_sigterm_saves_then_a_rerun_resumes(trainable):
    # 80 steps: the signal comes once step 10 is logged, about 10 s before the end on 2 cores (200 steps made the
    # rerun 25 s longer).
    cfg = trainable(steps=80, ckpt_every=1000, sample_every=1000, val_every=1000)
    log = pipeline.out_dir(cfg, "train-scan") / "log.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "onepunch", "train-scan", "--pipeline", cfg.path], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().strip()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped at step" in err and "resume" in err
    saved = train.Checkpoints(pipeline.out_dir(cfg, "train-scan") / "ckpt", 3).latest()
    step = torch.load(saved, weights_only=True)["step"]
    assert 10 <= step < 80
    r = cli("train-scan", "--pipeline", cfg.path, "--steps", "80", env={"COLUMNS": "200"})
    assert r.returncode == 0 and f"resuming from {saved}" in r.stderr.replace("\n", ""), r.stderr


@pytest.mark.slow
def test_two_ranks_with_gloo(trainable):
    cfg = trainable(steps=4)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "onepunch",
                        "train-scan", "--pipeline", cfg.path], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(pipeline.manifest_path(cfg, "train-scan").read_text())
    assert m["world_size"] == 2  # and the run checked that both ranks ended with identical weights
    ck = torch.load(train.Checkpoints(pipeline.out_dir(cfg, "train-scan") / "ckpt", 3).latest(), weights_only=True)
    assert len(ck["pools"]["scan"]) == 2  # each rank's image pool is saved


@pytest.mark.slow
def test_config_change_makes_it_stale_and_retrains(trainable, capsys):
    cfg = trainable()
    train_scan.run(cfg)
    changed = trainable(lambda_identity=2.0)
    assert pipeline.state(changed, "train-scan") == "stale"
    train_scan.run(changed)
    assert "another config" in capsys.readouterr().err
    assert pipeline.state(changed, "train-scan") == "done" and pipeline.state(cfg, "train-scan") == "stale"


@pytest.mark.slow
def test_user_errors(tmp_path, sample_dir, trainable):
    path = write(tmp_path, sample_dir)
    r = cli("train-scan", "--pipeline", str(path))
    assert r.returncode == 2 and "run `onepunch shards" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    r = cli("train-scan", "--pipeline", str(path), "--preset", "huge")
    assert r.returncode == 2 and "preset must be tiny or base" in r.stderr, r.stderr


def test_checkpoint_loading_is_safe(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"kind": checkpoint.SCAN_KIND, "x": Evil()}))
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"kind": "something.else"}, tmp_path / "other.pt")
    for name, message in (("evil.pt", "not a loadable"), ("text.pt", "not a loadable"), ("other.pt", "expected"),
                          ("missing.pt", "not found")):
        with pytest.raises(UserError, match=message):
            checkpoint.load_generator(tmp_path / name)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_generated_scans_beat_the_greyscale_baseline(trainable):
    """The method's first promise: after a short CPU run, generated scans are closer to the true line art (PSNR)
    than the greyscale conversion of the colored image."""
    cfg = trainable(size=48, batch_size=4, steps=60, val_every=60, sample_every=60, ckpt_every=60, val_images=8)
    m = train_scan.run(cfg)
    assert m["metrics"]["val_psnr"] > m["metrics"]["baseline_grey_psnr"] + 1.0, m["metrics"]


def test_pool_size_zero_shows_the_new_fakes_detached(trainable):
    fakes = torch.zeros(2, 1, 8, 8, requires_grad=True) * 1.0
    out = train.ImagePool(0).query(fakes, torch.Generator().manual_seed(0))
    assert torch.equal(out, fakes) and not out.requires_grad  # the D loss must not reach the generators
    train_scan.run(trainable(pool_size=0, steps=2, ckpt_every=2, val_every=2, sample_every=2))


def test_a_checkpoint_of_another_world_size_is_an_error_not_a_restart(trainable):
    cfg = trainable()
    with pytest.raises(train.Stopped):
        train_scan.run(cfg, stop_after=2)
    latest = train.Checkpoints(pipeline.out_dir(cfg, "train-scan") / "ckpt", 3).latest()
    ck = torch.load(latest, weights_only=True)
    torch.save({**ck, "world_size": 2}, latest)  # as if two ranks had saved it
    with pytest.raises(UserError, match="2 rank"):
        train_scan.run(cfg)
    assert latest.is_file()  # the progress is kept


def test_cycle_noise_and_ink_prior_train_and_only_change_the_hash_when_on(trainable):
    cfg = trainable(cycle_noise=0.2, ink_weight=1.0, steps=2, ckpt_every=2, val_every=2, sample_every=2)
    train_scan.run(cfg)
    log = [json.loads(ln) for ln in (pipeline.out_dir(cfg, "train-scan") / "log.jsonl").read_text().splitlines()]
    assert any("g_ink" in entry for entry in log)
    inputs = {"shards_manifest": "m", "shards_manifest_sha256": "s"}
    off = trainable("off", cycle_noise=0.0, ink_weight=0.0)
    before = off.section("train_scan")  # what the hash covered before the options existed
    for k in ("workers", "device", "compile", "cycle_noise", "ink_weight"):
        before.pop(k)
    assert pipeline.config_hash(off, "train-scan", inputs) == config.digest({"train_scan": before, "inputs": inputs})
    assert pipeline.config_hash(trainable("on"), "train-scan", inputs) != pipeline.config_hash(off, "train-scan", inputs)
