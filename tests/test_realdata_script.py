"""scripts/realdata.py's bookkeeping (no network: the build itself needs npm and is run by `make realdata`)."""

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("realdata", Path(__file__).parents[1] / "scripts" / "realdata.py")
realdata = importlib.util.module_from_spec(spec)
spec.loader.exec_module(realdata)


@pytest.mark.parametrize("key,name,expected", [
    ("openmoji", "1F385-1F3FD", ("1F385", 2)),
    ("openmoji", "1F468-1F3FF-200D-1F373", ("1F468-200D-1F373", 4)),
    ("openmoji", "1F9D1-1F3FB-200D-1F91D-200D-1F9D1-1F3FC", None),  # two people in two tones
    ("openmoji", "1F385", None),
    ("fluent", "waving-hand-medium-light", ("waving-hand", 1)),
    ("fluent", "waving-hand-light", ("waving-hand", 0)),
    ("fluent", "waving-hand-dark", ("waving-hand", 4)),
    ("fluent", "waving-hand", None),
    ("emojione", "waving-hand-medium-dark-skin-tone", ("waving-hand", 3)),
    ("emojione", "waving-hand-light", None),
])
def test_tone_of_reads_each_sets_names(key, name, expected):
    assert realdata.tone_of(key, name) == expected


def test_a_record_read_back_equals_the_settings_so_a_rerun_is_up_to_date():
    args = argparse.Namespace(size=256, big=1024, big_count=200, test_fraction=0.3, seed=0)
    for key in realdata.SETS:
        settings = realdata.settings_of(key, args)
        assert json.loads(json.dumps(settings)) == settings


def test_fresh_empties_the_folder_and_records_each_files_sha256(tmp_path):
    (tmp_path / "tones" / "old.png").parent.mkdir(parents=True)
    (tmp_path / "tones" / "old.png").write_bytes(b"stale")
    files, put = realdata.fresh(tmp_path / "tones", "tones/")
    put("scan/a.png", b"ink")
    assert sorted(p.name for p in (tmp_path / "tones").rglob("*.png")) == ["a.png"]
    assert files == {"tones/scan/a.png": realdata.hashlib.sha256(b"ink").hexdigest()}


def test_a_rerun_with_nothing_changed_builds_nothing_and_a_killed_one_builds_again(tmp_path, monkeypatch):
    """make_set with the builds stubbed (the real ones need npm): the set and its tones are built once; a rerun finds
    both up to date; a record left half-written (a killed run) or made with other settings means build again."""
    built = []

    def build_set(key, spec, drawings, out, args, render):
        built.append("set")
        return {"counts": {}}

    def build_tones(key, spec, drawings, out, args, render):
        built.append("tones")
        return {"designs": 0}

    monkeypatch.setattr(realdata, "build_set", build_set)
    monkeypatch.setattr(realdata, "build_tones", build_tones)
    args = argparse.Namespace(out=tmp_path, size=256, big=1024, big_count=200, test_fraction=0.3, seed=0)
    (tmp_path / "openmoji").mkdir()
    realdata.make_set("openmoji", args, render=None)
    realdata.make_set("openmoji", args, render=None)
    assert built == ["set", "tones"]
    (tmp_path / "openmoji" / "tones.json").write_text('{"settings": {"ver')  # killed while writing
    realdata.make_set("openmoji", args, render=None)
    assert built == ["set", "tones", "tones"]
    realdata.make_set("openmoji", argparse.Namespace(**{**vars(args), "seed": 1}), render=None)
    assert built == ["set", "tones", "tones", "set", "tones"]
