"""The standing bad-input corpus: what a careless or hostile user does, run through shards, colorize and to-scan.
Each test names the fault it guards (issue "Nothing lost, nothing blown up"); each asserts the one-line error or the
reject reason, and that nothing else changed."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from onepunch import config, pages, pipeline, sample, scanners
from onepunch import transfer as full_size
from onepunch.errors import UserError
from onepunch.manifest import AtomicFile, atomic_write
from onepunch.shardwork import ShardOut
from onepunch.stages import colorize as stage
from onepunch.train import save_atomic
from tests.conftest import REPO, cli, demo_tables, run_cli, write_pipeline
from tests.test_colorize import cc, line_page, png


def one_line_error(r: subprocess.CompletedProcess, code: int, message: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines and lines[-1].startswith("error: ") and message in lines[-1], r.stderr


def leftovers(root: Path) -> list[Path]:
    """Temp files a failed writer left behind."""
    return [p for p in root.rglob("*") if ".tmp-" in p.name]


# ------------------------------------------------------------------------------------------------- the corpus
@pytest.fixture(scope="session")
def bomb_cbz(tmp_path_factory) -> Path:
    """Under 3 MB on disk, two members of 288 MiB of zeros (over pages.MAX_MEMBER_BYTES) declared in its directory;
    deflated at level 1, a second to write where 2 GiB at the default level took 13 s."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.cbz"
    zero = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name in ("01.png", "02.png"):
            with zf.open(name, "w", force_zip64=True) as f:
                for _ in range(288):
                    f.write(zero)
    assert path.stat().st_size < 3 << 20
    return path


@pytest.mark.slow
def test_an_archive_bomb_is_rejected_before_anything_is_read(tmp_path, bomb_cbz, color_pt):  # fault 1
    tracemalloc.start()
    try:
        s = stage.colorize([bomb_cbz], tmp_path / "out", color_pt, cc())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert s.done == 0 and len(s.failed) == 1 and "archive_bomb" in s.failed[0][1]
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB traced while rejecting a 3 MB archive"
    assert not (tmp_path / "out" / "bomb.cbz").exists() and not leftovers(tmp_path)


def test_archive_limits_count_members_sizes_and_ratio(tmp_path):
    def zf_with(members):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members:
                z.writestr(name, data)
        return zipfile.ZipFile(buf)

    pages.check_archive(zf_with([("a.png", b"x" * 1000)]))  # fine
    with pytest.raises(Exception, match="compressed"):
        pages.check_archive(zf_with([("a.bmp", bytes(pages.RATIO_FROM + 1))]))
    old = pages.MAX_MEMBERS
    pages.MAX_MEMBERS = 3
    try:
        with pytest.raises(Exception, match="4 members"):
            pages.check_archive(zf_with([(f"{i}.png", b"x") for i in range(4)]))
    finally:
        pages.MAX_MEMBERS = old


def test_output_chapter_names_are_safe_and_unique(tmp_path, color_pt):  # fault 8
    a, b = Image.fromarray(line_page(1, 80, 100)), Image.fromarray(line_page(2, 90, 100))
    with zipfile.ZipFile(tmp_path / "ch.cbz", "w") as z:
        z.writestr("01.png", png(a))
        jpg = io.BytesIO()
        b.save(jpg, "JPEG")
        z.writestr("01.jpg", jpg.getvalue())
        z.writestr("../evil.png", png(a))
        z.writestr("/abs/top.png", png(b))
        z.writestr("..\\win.xml", b"<x/>")
    s = stage.colorize([tmp_path / "ch.cbz"], tmp_path / "out", color_pt, cc())
    assert s.done == 4 and not s.failed
    with zipfile.ZipFile(tmp_path / "out" / "ch.cbz") as z:
        names = z.namelist()
    assert len(names) == len(set(names)) == 5
    assert all(not n.startswith("/") and ".." not in n.split("/") and "\\" not in n for n in names), names
    assert {"01.png", "01-png.png", "evil.png", "abs/top.png", "win.xml"} == set(names)  # 01.jpg sorts first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ch.cbz", "out"]  # nothing written outside --out


def test_to_scan_over_the_corpus_rejects_what_is_bad_and_converts_the_rest(tmp_path, bomb_cbz):  # faults 1, 8
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bomb.cbz").symlink_to(bomb_cbz)
    Image.fromarray(line_page(1, 90, 70)).convert("RGB").save(corpus / "good.png")
    (corpus / "text.png").write_text("not an image")
    (corpus / "cut.png").write_bytes(png(Image.fromarray(line_page(2, 90, 70)))[:200])
    with zipfile.ZipFile(corpus / "names.cbz", "w") as z:
        z.writestr("../up.png", png(Image.fromarray(line_page(3, 50, 40)).convert("RGB")))
        z.writestr("/root.png", png(Image.fromarray(line_page(4, 50, 40)).convert("RGB")))
    s = scanners.to_scan([corpus], tmp_path / "out", None, "xdog", "png", "cpu", 2, 0)
    reasons = {Path(p.split(":")[0]).name: r.split(":")[0] for p, r in s.failed}
    assert reasons == {"bomb.cbz": "archive_bomb", "text.png": "not_an_image", "cut.png": "truncated"}, reasons
    assert s.done == 3
    out = tmp_path / "out" / "corpus"
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "names.cbz"]
    with zipfile.ZipFile(out / "names.cbz") as z:
        assert sorted(z.namelist()) == ["root.png", "up.png"]


@pytest.mark.slow
def test_a_file_in_out_that_onepunch_did_not_write_is_never_replaced(tmp_path, color_pt):  # fault 2
    same = tmp_path / "same"
    same.mkdir()
    Image.fromarray(line_page(1, 64, 64)).convert("RGB").save(same / "a.jpg")
    (same / "a.png").write_bytes(b"the user's own file")
    r = cli("colorize", str(same / "a.jpg"), "--ckpt", str(color_pt), "--out", str(same), "--device", "cpu")
    one_line_error(r, 2, "was not written by onepunch")
    assert (same / "a.png").read_bytes() == b"the user's own file"
    s = stage.colorize([same / "a.jpg"], same, color_pt, cc(), overwrite=True)
    assert s.done == 1 and Image.open(same / "a.png").size == (64, 64)
    (same / "a.jpg").write_bytes(png(Image.fromarray(line_page(2, 64, 64))))  # a changed input: ours to replace
    assert stage.colorize([same / "a.jpg"], same, color_pt, cc()).done == 1


@pytest.mark.slow
def test_out_holding_the_inputs_or_a_file_or_no_pages_is_an_error(tmp_path, color_pt):  # faults 6, 7
    folder = tmp_path / "pages"
    folder.mkdir()
    Image.fromarray(line_page(1, 64, 64)).save(folder / "p.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("x")
    for inputs, out, message in (([folder], folder, "holds the input folder"),
                                 ([folder], tmp_path, "holds the input folder"),
                                 ([folder], tmp_path / "afile", "is a file"),
                                 ([tmp_path / "empty"], tmp_path / "o", "no pages in")):
        with pytest.raises(UserError, match=message):
            stage.colorize(inputs, out, color_pt, cc())
    r = cli("colorize", str(folder), "--ckpt", str(color_pt), "--out", str(folder))  # was: 0 inputs, exit 0
    one_line_error(r, 2, "holds the input folder")
    assert sorted(p.name for p in folder.iterdir()) == ["p.png"]


@pytest.mark.slow
def test_to_scan_and_colorize_options_are_validated(tmp_path, color_pt):  # fault 8
    Image.fromarray(line_page(1, 64, 64)).convert("RGB").save(tmp_path / "c.png")
    r = cli("to-scan", str(tmp_path / "c.png"), "--method", "xdog", "--max-side", "-5", "--out", str(tmp_path / "o"))
    one_line_error(r, 2, "--max-side")
    r = cli("to-scan", str(tmp_path / "c.png"), "--method", "xdog", "--ink-level", "200", "--out", str(tmp_path / "o"))
    one_line_error(r, 2, "--ink-level must be below --paper-level")
    r = cli("colorize", str(tmp_path / "c.png"), "--ckpt", str(color_pt), "--quality", "0", "--out",
                str(tmp_path / "o"))
    one_line_error(r, 2, "--quality must be 1..100")
    for option, value, message in (("--lettering", "erase", "--lettering must be keep or off"),
                                   ("--descreen", "maybe", "--descreen must be on or off"),
                                   ("--backend", "tensorrt", "--backend must be auto, torch, onnx"),
                                   ("--tile-passes", "9", "--tile-passes must be 0..8")):
        r = cli("colorize", str(tmp_path / "c.png"), "--ckpt", str(color_pt), option, value, "--out",
                    str(tmp_path / "o"))
        one_line_error(r, 2, message)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_checkpoint_of_the_right_kind_with_bad_contents_is_a_one_line_error(tmp_path, color_pt):  # fault 7
    Image.fromarray(line_page(1, 64, 64)).save(tmp_path / "p.png")
    ck = torch.load(color_pt, weights_only=True)
    bad_keys = {**ck, "state_dict": {"nope": torch.zeros(1)}}
    bad_config = {**ck, "config": {**ck["config"], "not_a_field": 1}}
    for name, obj in (("keys.pt", bad_keys), ("config.pt", bad_config)):
        torch.save(obj, tmp_path / name)
        with pytest.raises(UserError, match="contents do not make a model"):
            stage.colorize([tmp_path / "p.png"], tmp_path / "o", tmp_path / name, cc())
    r = cli("colorize", str(tmp_path / "p.png"), "--ckpt", str(tmp_path / "keys.pt"), "--out", str(tmp_path / "o"))
    one_line_error(r, 2, "contents do not make a model")


# ------------------------------------------------------------------------------------------------ configs
def _pipeline(tmp_path, sample_dir, **sections) -> Path:
    tables = demo_tables(tmp_path, sample_dir)
    for k, v in sections.items():
        tables.setdefault(k, {}).update(v)
    return write_pipeline(tmp_path / "p.toml", tables)


@pytest.mark.parametrize("section, values, message", [
    ("train_color", {"steps": -5}, "train_color.steps must be >= 0"),  # fault 3
    ("train_color", {"val_images": 0}, "train_color.val_images must be >= 1"),  # fault 7
    ("train_scan", {"val_images": 0}, "train_scan.val_images must be >= 1"),
    ("train_color", {"workers": -1}, "train_color.workers must be 0..256"),
    ("train_scan", {"workers": -1}, "train_scan.workers must be 0..256"),
    ("train_scan", {"steps": 0}, "train_scan.steps must be >= 1"),
    ("shards", {"workers": -2}, "shards.workers must be 0..256"),
    ("shards", {"max_pixels": 0}, "shards.max_pixels must be >= 1"),
    ("build_pairs", {"xdog_sigma": -1.0}, "build_pairs.xdog_sigma must be"),
    ("eval", {"working_size": -3}, "eval.working_size must be"),
    ("colorize", {"overlap": -1}, "colorize.overlap must be >= 0"),
    ("train_color", {"lr_g": float("nan")}, "train_color.lr_g must be"),
])
def test_every_numeric_field_is_validated_before_any_work(tmp_path, sample_dir, section, values, message):
    path = _pipeline(tmp_path, sample_dir, **{section: values})
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        config.load(path)


def test_a_negative_step_count_on_the_command_line_changes_nothing(tmp_path, sample_dir):  # fault 3
    path = _pipeline(tmp_path, sample_dir)
    r = cli("train-color", "--pipeline", str(path), "--steps", "-5")
    one_line_error(r, 2, "train_color.steps must be >= 0")
    assert not (tmp_path / "manifests").exists() and not (tmp_path / "runs").exists()


def test_a_toml_that_is_not_utf8_is_a_one_line_error(tmp_path):  # fault 7
    (tmp_path / "p.toml").write_bytes(b'name = "caf\xe9"\n')
    r = run_cli("status", "--pipeline", str(tmp_path / "p.toml"))
    one_line_error(r, 2, "not UTF-8")


# ------------------------------------------------------------------------------------------------- shards
@pytest.mark.slow
def test_an_empty_source_or_one_matching_nothing_is_an_error(tmp_path, sample_dir):  # fault 11
    (tmp_path / "empty").mkdir()
    t = demo_tables(tmp_path, sample_dir)
    t["source"] = {"kind": "folder", "path": str(tmp_path / "empty")}
    r = run_cli("shards", "--pipeline", str(write_pipeline(tmp_path / "e.toml", t)))
    one_line_error(r, 2, "no samples: 0 record(s) read")
    t = demo_tables(tmp_path, sample_dir)
    t["domains.scans"]["all_of"] = ["no_such_tag"]
    t["domains.colors"]["all_of"] = ["no_such_tag"]
    r = run_cli("shards", "--pipeline", str(write_pipeline(tmp_path / "n.toml", t)))
    one_line_error(r, 2, "[domains.scans] filtered")
    assert not (tmp_path / "manifests" / "t" / "shards.json").exists()


@pytest.mark.slow
def test_a_domain_with_no_samples_is_warned_about(tmp_path, sample_dir):  # fault 11
    t = demo_tables(tmp_path, sample_dir)
    t["domains.scans"]["all_of"] = ["no_such_tag"]
    r = run_cli("shards", "--pipeline", str(write_pipeline(tmp_path / "p.toml", t)), env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "warning: domain scans has no train samples" in " ".join((r.stdout + r.stderr).split())


def _session_pids(sid: int) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
                pids.append(int(d.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_shards_leaves_no_worker_running(tmp_path, sample_dir):  # fault 4
    path = _pipeline(tmp_path, sample_dir, shards={"workers": 2})
    proc = subprocess.Popen([sys.executable, "-m", "onepunch", "shards", "--pipeline", str(path)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while len(_session_pids(proc.pid)) < 4 and time.time() < deadline:  # main, forkserver, 2 workers
            time.sleep(0.02)
        assert len(_session_pids(proc.pid)) >= 4, "the worker pool never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 15
        while _session_pids(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert _session_pids(proc.pid) == [], "workers outlived the killed run"
    finally:
        for pid in _session_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_two_runs_at_once_generate_the_sample_once(tmp_path, monkeypatch):  # fault 9
    calls, real = [], sample._generate

    def slow_generate(*a):
        calls.append(1)
        time.sleep(0.5)  # the other run arrives meanwhile
        real(*a)

    monkeypatch.setattr(sample, "_generate", slow_generate)
    errors = []

    def one():
        try:
            sample.generate(tmp_path / "s", 4, 4, 0)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1
    assert json.loads((tmp_path / "s" / "sample.json").read_text())["scans"] == 4


# ------------------------------------------------------------------------------------------------ big pages
@pytest.mark.slow
def test_the_full_size_transfer_works_in_bounded_memory():  # fault 10
    grey = np.full((3000, 4000), 255, np.uint8)
    grey[::50] = 0
    work = np.asarray(Image.fromarray(grey).resize((512, 384), Image.BILINEAR))
    color = np.random.default_rng(0).integers(0, 256, (384, 512, 3), dtype=np.uint8)
    for transfer in (lambda: full_size.transfer_detail(grey, work, color), lambda: full_size.transfer_color(grey, color)):
        tracemalloc.start()
        try:
            out = transfer()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert out.shape == (3000, 4000, 3)
        # The output is 36 MB; the whole-page float temporaries were ~600 MB (detail) and ~340 MB (luminance). Now
        # only the strips in flight: under 100 bytes a pixel each, one a thread, whatever the page's size.
        strips = min(full_size.TRANSFER_THREADS, -(-3000 // (full_size.STRIP_PIXELS // 4000)))
        assert peak < out.nbytes + 100 * strips * full_size.STRIP_PIXELS, f"{peak / 2**20:.0f} MiB"
        del out


# -------------------------------------------------------------------------------------- full disks (ENOSPC)
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only; CI runs as root), and a 'filler' that takes all but `room` bytes of it."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}): needs root")

    def fill(room: int) -> Path:
        st = os.statvfs(mnt)
        filler = mnt / "filler"
        filler.write_bytes(bytes(max(0, st.f_bavail * st.f_frsize - room)))
        return filler

    try:
        yield mnt, fill
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_writers_leave_nothing_behind_on_a_full_disk(small_disk):  # fault 5, each stage's writer
    mnt, fill = small_disk
    fill(8 << 10)
    big = os.urandom(64 << 10)
    with pytest.raises(OSError) as e:
        atomic_write(mnt / "a.json", big)  # manifests, stats, eval outputs, single pages
    assert e.value.errno == 28
    with pytest.raises(OSError):
        with ShardOut(mnt / "s.tar") as out:  # shards and build-pairs
            out.add("k.bin", big)
    with pytest.raises(OSError):
        save_atomic({"w": torch.from_numpy(np.frombuffer(big, np.uint8).copy())}, mnt / "c.pt")  # checkpoints
    with pytest.raises(OSError):
        with AtomicFile(mnt / "r.jsonl", "w") as f:  # rejects list
            f.write("x" * (64 << 10))
    assert sorted(p.name for p in mnt.iterdir()) == ["filler"]


@pytest.mark.slow
def test_colorize_on_a_full_disk_says_so_and_the_rerun_completes(tmp_path, small_disk, color_pt):  # fault 5
    mnt, fill = small_disk
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (300, 300), dtype=np.uint8)).save(src / f"{i}.png")
    filler = fill(150 << 10)  # room for about one noisy 300 x 300 RGB page
    r = cli("colorize", str(src), "--ckpt", str(color_pt), "--out", str(mnt / "out"), "--device", "cpu")
    one_line_error(r, 1, "No space left on device")
    assert not leftovers(mnt)
    for p in (mnt / "out").rglob("*.png"):  # whatever is under a final name is whole
        Image.open(p).load()
    filler.unlink()
    r = cli("colorize", str(src), "--ckpt", str(color_pt), "--out", str(mnt / "out"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (mnt / "out" / "in").iterdir()) == ["0.png", "1.png", "2.png"]


@pytest.mark.slow
def test_shards_on_a_full_disk_says_so_and_the_rerun_completes(tmp_path, sample_dir, small_disk):  # fault 5
    mnt, fill = small_disk
    t = demo_tables(tmp_path, sample_dir)
    t[""]["out_dir"] = str(mnt / "runs")
    path = write_pipeline(tmp_path / "p.toml", t)
    filler = fill(100 << 10)
    r = run_cli("shards", "--pipeline", str(path))
    one_line_error(r, 1, "No space left on device")
    assert not leftovers(mnt) and not (tmp_path / "manifests" / "t" / "shards.json").exists()
    filler.unlink()
    r = run_cli("shards", "--pipeline", str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "manifests" / "t" / "shards.json").read_text())["totals"]["written"] > 0


# ------------------------------------------------------------------------------------------------ overrides
@pytest.mark.slow
def test_an_override_upstream_is_what_downstream_stages_read(tmp_path, sample_dir):  # fault 12
    path = _pipeline(tmp_path, sample_dir)
    for args in (("shards",), ("build-pairs", "--method", "xdog")):
        r = run_cli(*args, "--pipeline", str(path))
        assert r.returncode == 0, r.stderr
    cfg = config.load(path)  # the file still says method = ckpt
    inputs = pipeline.inputs(cfg, "train-color")  # before: "the build-pairs stage is stale: run `onepunch build-pairs` first"
    assert inputs["pairs_manifest"].endswith("build-pairs.json")
    r = run_cli("status", "--pipeline", str(path), "--json")
    states = {s["name"]: s["state"] for s in json.loads(r.stdout)["stages"]}
    assert states["build-pairs"] == "stale"  # honest: the file asks for another method than the one on disk
