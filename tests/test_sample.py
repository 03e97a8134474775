import json

import pytest

from onepunch import sample
from tests.conftest import SAMPLE_COUNTS, tree_digest


@pytest.mark.slow
def test_sample_is_deterministic_and_danbooru_shaped(tmp_path, sample_dir):
    again = tmp_path / "again"
    sample.generate(again, SAMPLE_COUNTS["sample_scans"], SAMPLE_COUNTS["sample_colors"], SAMPLE_COUNTS["sample_seed"])
    assert tree_digest(again) == tree_digest(sample_dir)

    root = sample_dir / "danbooru2020"
    records = [json.loads(line) for f in sorted((root / "metadata" / "2020").iterdir()) for line in f.open()]
    assert len({r["id"] for r in records}) == len(records) - 1  # one duplicated record, as in real dumps
    for r in records:
        assert all(isinstance(r[k], str) for k in ("id", "md5", "rating", "image_width", "file_size", "file_ext"))
        assert isinstance(r["is_deleted"], bool) and r["rating"] in "sqe"
        assert all(set(t) == {"id", "name", "category"} for t in r["tags"])
    names = [{t["name"] for t in r["tags"]} for r in records]
    scans = [r for r, n in zip(records, names, strict=True) if "monochrome" in n]
    colors = [r for r, n in zip(records, names, strict=True) if "simple_background" in n and "monochrome" not in n]
    assert len(scans) >= SAMPLE_COUNTS["sample_scans"] and len(colors) >= SAMPLE_COUNTS["sample_colors"]
    missing = [r["id"] for r in records
               if not (root / "original" / f"{int(r['id']) % 1000:04d}" / f"{r['id']}.{r['file_ext']}").exists()]
    assert len(missing) == 1  # the one record whose file is deliberately absent
    # Every regular colored image has its true line art, outside the Danbooru tree.
    truth = {p.stem for p in (sample_dir / "truth").glob("*.png")}
    assert len(truth) == SAMPLE_COUNTS["sample_colors"] and truth <= {r["id"] for r in colors}
    exts = {r["file_ext"] for r in records}
    assert {"jpg", "png", "gif", "webm", "zip"} <= exts


def test_generate_is_a_no_op_when_present(sample_dir):
    before = {p: p.stat().st_mtime_ns for p in sample_dir.rglob("*") if p.is_file()}
    sample.generate(sample_dir, SAMPLE_COUNTS["sample_scans"], SAMPLE_COUNTS["sample_colors"], SAMPLE_COUNTS["sample_seed"])
    assert before == {p: p.stat().st_mtime_ns for p in sample_dir.rglob("*") if p.is_file()}
