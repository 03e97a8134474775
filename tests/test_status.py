import json
from pathlib import Path

import pytest

from onepunch import pipeline
from onepunch.stages import shards
from tests.conftest import demo_tables, run_cli, write_pipeline
from tests.test_real_pairs import make_pairs


def status_json(path) -> dict:
    r = run_cli("status", "--json", "--pipeline", str(path))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
def test_status_missing_done_stale(tmp_path, sample_dir, make_cfg):
    cfg = make_cfg()
    s = status_json(cfg.path)
    assert s["pipeline"] == "t" and [x["name"] for x in s["stages"]] == list(pipeline.STAGES)
    assert s["stages"][0] == {"name": "shards", "state": "missing", "manifest": str(pipeline.manifest_path(cfg, "shards")),
                              "needs": []}
    assert s["stages"][1]["needs"] == ["shards"]
    shards.run(cfg)
    assert status_json(cfg.path)["stages"][0]["state"] == "done"
    # A config change makes the stage stale...
    tables = demo_tables(tmp_path, sample_dir, max_side=96)
    write_pipeline(Path(cfg.path), tables)
    assert status_json(cfg.path)["stages"][0]["state"] == "stale"
    write_pipeline(Path(cfg.path), demo_tables(tmp_path, sample_dir))
    assert status_json(cfg.path)["stages"][0]["state"] == "done"
    # ...and so does a lost shard.
    next(Path(cfg.out_dir).rglob("*.tar")).unlink()
    assert status_json(cfg.path)["stages"][0]["state"] == "stale"
    r = run_cli("status", "--pipeline", cfg.path)
    assert r.returncode == 0 and "shards" in r.stdout and "stale" in r.stdout


def test_the_stage_graph_names_every_upstream_a_stage_reads_and_is_in_order(tmp_path, monkeypatch, sample_dir):
    """Every upstream output a stage's inputs or settings ask the pipeline for is one of its `needs`, and every stage
    comes after what it needs; each names a module under onepunch/stages/ with a run(cfg)."""
    from tests.test_layout import PKG

    tables = demo_tables(tmp_path, sample_dir)
    make_pairs(tmp_path / "real")
    tables["eval"] = {"real_pairs": str(tmp_path / "real")}
    cfg = pipeline_config(tmp_path, tables)
    stub, asked = tmp_path / "stub.json", []
    stub.write_text("{}")

    def record(cfg, stage, *args):
        asked.append(stage)
        return stub
    monkeypatch.setattr(pipeline, "ready", record)
    monkeypatch.setattr(pipeline, "output", record)
    seen = set()
    for s in pipeline.GRAPH:
        asked.clear()
        pipeline.settings(cfg, s.name)
        if s.name not in ("shards", "colorize"):
            pipeline.inputs(cfg, s.name)
        assert set(asked) <= set(s.needs), (s.name, set(asked) - set(s.needs))
        assert set(s.needs) <= seen, (s.name, set(s.needs) - seen)
        assert "def run(cfg" in (PKG / "stages" / f"{s.module}.py").read_text(), s.module
        seen.add(s.name)
    assert asked == ["train-color"]  # colorize reads color.pt


def pipeline_config(tmp_path, tables):
    from onepunch import config
    return config.load(write_pipeline(tmp_path / "p.toml", tables))
