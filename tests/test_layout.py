"""The layout's rules, read from the source: no module imports upward, no stage imports another, one module does
distributed."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from onepunch.stages import shards
from tests.conftest import REPO, demo_tables, write_pipeline

PKG = Path(__file__).resolve().parents[1] / "onepunch"
TOP = {"cli.py", "__main__.py"}  # the layer above the stages


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_the_library_never_imports_the_stages_or_the_cli():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "stages" or rel.name in TOP:
            continue
        upward = {m for m in imports(path) if m.split(".")[:2] in (["onepunch", "stages"], ["onepunch", "cli"])}
        assert not upward, f"{rel} imports {sorted(upward)}"


def test_no_stage_imports_another_stage_or_the_cli():
    """A stage finds upstream outputs through onepunch/pipeline.py, never by asking another stage."""
    for path in (PKG / "stages").glob("*.py"):
        found = {m for m in imports(path) if m.split(".")[:2] in (["onepunch", "stages"], ["onepunch", "cli"])}
        assert not found, f"{path.name} imports {sorted(found)}"


def test_the_pipeline_imports_no_stage_and_no_torch():
    found = {m for m in imports(PKG / "pipeline.py") if m.split(".")[:2] == ["onepunch", "stages"] or m.split(".")[0] == "torch"}
    assert not found, found


def test_only_dist_py_imports_torch_distributed():
    users = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if any(
        m.startswith("torch.distributed") for m in imports(p))}
    assert users == {"dist.py"}, users


LOADED = """
import sys
from onepunch import cli
sys.argv = ["onepunch", *sys.argv[1:]]
try:
    cli.main()
except SystemExit:
    pass
print("torch loaded" if "torch._C" in sys.modules else "torch not loaded")
"""


@pytest.mark.slow
def test_status_and_help_answer_without_importing_torch(tmp_path, sample_dir):
    """`onepunch status` reads every stage's state through onepunch/pipeline.py, which imports no stage: on a new
    pipeline and with its shards done none of that needs torch (~3 s to import here), so none of it imports it.
    Timings live in bench/, not here."""
    cfg_path = write_pipeline(tmp_path / "p.toml", demo_tables(tmp_path, sample_dir))
    runs = [["status", "--json", "--pipeline", str(cfg_path)], ["--help"], ["status", "--pipeline", "missing.toml"]]
    for i, args in enumerate([*runs, runs[0]]):
        if i == len(runs):  # last: status again, with the shards built
            from onepunch import config
            shards.run(config.load(cfg_path))
        r = subprocess.run([sys.executable, "-c", LOADED, *args], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
        assert r.stdout.strip().endswith("torch not loaded"), (args, r.stdout[-500:], r.stderr[-2000:])
    assert '"name": "shards", "state": "done"' in r.stdout
