import pytest

from onepunch import config
from onepunch.errors import UserError
from tests.conftest import REPO, cli, run_cli, write_pipeline


@pytest.mark.parametrize("name", ["demo", "danbooru2020"])
def test_shipped_pipelines_load(name):
    cfg = config.load(REPO / "pipelines" / f"{name}.toml")
    assert cfg.name == name and set(cfg.domains) == {"scans", "colors"}
    assert cfg.domains["scans"].mode == "L"


def test_the_real_data_pipelines_load():
    found = sorted((REPO / "pipelines" / "realdata").glob("*.toml"))
    assert len(found) == 12  # four sets: the method, XDoG pairs, the oracle
    for path in found:
        cfg = config.load(path)
        assert cfg.name == path.stem
        assert cfg.eval.real_pairs or cfg.name.endswith(("-xdog", "-oracle"))  # each set's method is measured


def _tables(**extra):
    t = {"": {"name": "x"}, "domains.scans": {"all_of": ["monochrome"]}, "domains.colors": {"none_of": ["monochrome"]}}
    for k, v in extra.items():
        t.setdefault(k, {}).update(v)
    return t


@pytest.mark.parametrize("extra, message", [
    ({"shards": {"max_sidee": 3}}, "unknown key shards.max_sidee"),
    ({"shards": {"max_side": "big"}}, "shards.max_side must be int"),
    ({"shards": {"val_fraction": 1.5}}, "val_fraction"),
    ({"domains.scans": {"all_of": ["long hair"]}}, "underscores"),
    ({"domains.scans": {"ratings": ["x"]}}, "ratings must be among"),
    ({"domains.scans": {"none_of": ["monochrome"]}}, "both required and excluded"),
    ({"domains.colors": {"min_aspect": 2.0, "max_aspect": 1.0}}, "min_aspect"),
    ({"domains.extra": {"all_of": ["a"]}}, "exactly scans and colors"),
    ({"source": {"kind": "s3"}}, "source.kind must be one of"),
])
def test_bad_config_is_a_user_error(tmp_path, extra, message):
    path = write_pipeline(tmp_path / "p.toml", _tables(**extra))
    with pytest.raises(UserError, match=message):
        config.load(path)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(UserError, match="invalid TOML"):
        config.load(bad)
    with pytest.raises(UserError, match="not found"):
        config.load(tmp_path / "nope.toml")


def test_overrides_apply_dotted_keys(tmp_path):
    path = write_pipeline(tmp_path / "p.toml", _tables())
    cfg = config.load(path, {"source.path": "/data/x", "shards.workers": 7, "shards.max_side": None})
    assert cfg.source.path == "/data/x" and cfg.shards.workers == 7 and cfg.shards.max_side == 512
    assert cfg.out_dir == "runs/x"


@pytest.mark.parametrize("args", [
    ["shards", "--pipeline", "does/not/exist.toml"],
    ["status", "--pipeline", "BAD"],
    ["shards", "--rank", "3", "--world-size", "2"],
])
def test_cli_user_errors_are_one_line_exit_2(tmp_path, args):
    if "BAD" in args:
        bad = write_pipeline(tmp_path / "bad.toml", _tables(shards={"workerz": 1}))
        args = [a if a != "BAD" else str(bad) for a in args]
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_missing_source_is_a_user_error(tmp_path):
    t = _tables(source={"kind": "danbooru2020", "path": str(tmp_path / "nothing")},
                **{"": {"name": "x", "out_dir": str(tmp_path / "o"), "manifests": str(tmp_path / "m")}})
    path = write_pipeline(tmp_path / "p.toml", t)
    r = run_cli("shards", "--pipeline", str(path))
    assert r.returncode == 2 and r.stderr.startswith("error: dataset folder not found"), r.stderr


def test_what_enters_a_stage_hash_is_stated_on_the_fields():
    """Fields marked UNHASHED (how a stage runs, or a path whose checksum is an input) never make a stage stale; a
    field added later (`since`) is left out of the hash while it is off, so the runs made before it stay done."""
    import dataclasses

    from onepunch import pipeline

    cfg = config.load(REPO / "pipelines" / "demo.toml")

    def changed(section: str, **kw):
        return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **kw)})
    same = [("shards", "shards", {"workers": 7}), ("train-scan", "train_scan", {"workers": 7, "device": "cpu",
                                                                                "compile": True}),
            ("train-color", "train_color", {"workers": 7, "compile": False, "size": cfg.train_color.size * 2,
                                            "encoder_weights": "w.pth"}),
            ("eval", "eval", {"device": "cpu", "ckpt": "other.pt"})]
    for stage, section, kw in same:
        assert pipeline.settings(changed(section, **kw), stage) == pipeline.settings(cfg, stage), (stage, kw)
    for stage, section, kw in (("shards", "shards", {"max_side": 64}), ("train-scan", "train_scan", {"lr": 1e-3}),
                               ("train-color", "train_color", {"lr_g": 1e-3}), ("eval", "eval", {"max_images": 3})):
        assert pipeline.settings(changed(section, **kw), stage) != pipeline.settings(cfg, stage), (stage, kw)
    off = pipeline.settings(changed("train_scan", cycle_noise=0.0, ink_weight=0.0, base=""), "train-scan")
    assert not {"cycle_noise", "ink_weight", "base"} & set(off)
    assert {"cycle_noise", "ink_weight", "base"} <= set(pipeline.settings(cfg, "train-scan"))


def test_the_colorize_flags_are_documented_where_the_settings_are():
    """`onepunch colorize --help` shows each [colorize] field's own docstring: options, meanings and defaults are
    stated once, in config.py."""
    docs = config.field_docs(config.ColorizeConfig)
    assert docs["regions"].startswith("pool: one color per region") and docs["tile_passes"].startswith("Passes")
    assert set(docs) == {f.name for f in __import__("dataclasses").fields(config.ColorizeConfig)}
    r = cli("colorize", "--help", env={"COLUMNS": "400"})
    assert r.returncode == 0 and docs["hint_fill"] in " ".join(r.stdout.split())
