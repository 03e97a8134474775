import hashlib

import pytest
from PIL import Image

from onepunch import sources
from onepunch.config import SourceConfig
from onepunch.errors import UserError


def test_danbooru_reader_dedupes_ids_and_reads_only_2020(sample_dir):
    cfg = SourceConfig(kind="danbooru2020", path=str(sample_dir / "danbooru2020"))
    records, stats = sources.open_source(cfg)
    records = list(records)
    assert stats == {"duplicate_id": 1}
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids))
    r = records[0]
    assert r.path.endswith(f"original/{int(r.id) % 1000:04d}/{r.id}.{r.ext}") and r.md5 and r.width and r.tags


def test_danbooru_512px_layout(sample_dir):
    cfg = SourceConfig(kind="danbooru2020", path=str(sample_dir / "danbooru2020"), images="512px")
    r = next(iter(sources.open_source(cfg)[0]))
    assert r.path.endswith(f"512px/{int(r.id) % 1000:04d}/{r.id}.jpg") and r.ext == "jpg"


def test_folder_source_tags_from_folders_and_sidecars(tmp_path):
    (tmp_path / "Line Art" / "ink").mkdir(parents=True)
    Image.new("RGB", (64, 64), "white").save(tmp_path / "Line Art" / "ink" / "a.png")
    (tmp_path / "Line Art" / "ink" / "a.txt").write_text("monochrome, long hair ,  1girl")
    Image.new("RGB", (64, 64), "red").save(tmp_path / "b.JPG")
    (tmp_path / "notes.md").write_text("not an image")
    records = list(sources.open_source(SourceConfig(kind="folder", path=str(tmp_path)))[0])
    assert [r.source for r in records] == ["folder:b.JPG", "folder:Line Art/ink/a.png"]  # a folder's files first
    assert records[1].tags == ("line_art", "ink", "monochrome", "long_hair", "1girl")
    assert records[0].tags == () and records[0].ext == "jpg" and records[0].rating is None
    assert "." not in records[1].id and len({r.id for r in records}) == 2


@pytest.fixture
def hf_rows(tmp_path):
    import io
    rows = []
    for i, color in enumerate(["white", "black", "red"]):
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), color).save(buf, "PNG")
        rows.append({"image": {"bytes": buf.getvalue(), "path": None}, "tags": f"tag{i} solo", "post_id": 100 + i,
                     "rating": "s"})
    return rows


def test_hf_saved_dataset_and_parquet(tmp_path, hf_rows):
    import datasets
    features = datasets.Features({"image": datasets.Image(), "tags": datasets.Value("string"),
                                  "post_id": datasets.Value("int64"), "rating": datasets.Value("string")})
    ds = datasets.Dataset.from_list(hf_rows, features=features)
    ds.save_to_disk(str(tmp_path / "saved"))
    ds.to_parquet(str(tmp_path / "pq" / "data.parquet"))
    for path in ("saved", "pq"):
        cfg = SourceConfig(kind="hf", path=str(tmp_path / path), id_column="post_id", rating_column="rating")
        records = list(sources.open_source(cfg)[0])
        assert [r.id for r in records] == ["100", "101", "102"]
        assert records[2].tags == ("tag2", "solo") and records[2].rating == "s"
        assert records[0].md5 == hashlib.md5(hf_rows[0]["image"]["bytes"]).hexdigest()
        assert records[0].data == hf_rows[0]["image"]["bytes"]
    with pytest.raises(UserError, match="no column 'caption'"):
        sources.open_source(SourceConfig(kind="hf", path=str(tmp_path / "saved"), tags_column="caption"))


def test_fingerprint_changes_with_the_source(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    cfg = SourceConfig(kind="folder", path=str(tmp_path))
    before = sources.fingerprint(cfg)
    assert sources.fingerprint(cfg) == before
    Image.new("RGB", (64, 64)).save(tmp_path / "b.png")
    assert sources.fingerprint(cfg) != before
