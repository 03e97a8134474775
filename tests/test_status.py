import json
from pathlib import Path

import pytest

from onepunch.stages import shards
from onepunch.status import STAGES
from tests.conftest import demo_tables, run_cli, write_pipeline


def status_json(path) -> dict:
    r = run_cli("status", "--json", "--pipeline", str(path))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
def test_status_missing_done_stale(tmp_path, sample_dir, pipeline):
    cfg = pipeline()
    s = status_json(cfg.path)
    assert s["pipeline"] == "t" and [x["name"] for x in s["stages"]] == list(STAGES)
    assert s["stages"][0] == {"name": "shards", "state": "missing", "manifest": str(shards.manifest_path(cfg)),
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


def test_the_stage_graph_names_every_upstream_a_stage_reads_and_is_in_order():
    from onepunch.status import GRAPH
    from tests.test_layout import PKG, imports

    name_of = {s.module.__name__: s.name for s in GRAPH}
    seen = set()
    for s in GRAPH:
        mods = imports(PKG / "stages" / f"{s.module.__name__.rsplit('.', 1)[1]}.py")
        read = {name_of[m] for m in mods if m in name_of} | {
            name_of[f"onepunch.stages.{m.rsplit('.', 1)[1]}"] for m in mods
            if m.startswith("onepunch.stages.") and f"onepunch.stages.{m.rsplit('.', 1)[1]}" in name_of}
        read.discard(s.name)
        assert read <= set(s.needs), (s.name, read - set(s.needs))
        assert set(s.needs) <= seen, (s.name, set(s.needs) - seen)  # every stage after what it needs
        seen.add(s.name)
