"""The layout's rules, read from the source: no module imports upward, one module does distributed."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from onepunch.stages import shards
from tests.conftest import REPO, demo_tables, write_pipeline

PKG = Path(__file__).resolve().parents[1] / "onepunch"
TOP = {"cli.py", "status.py", "__main__.py"}  # the layer above the stages


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy" and node.args
              and isinstance(node.args[0], ast.Constant)):  # onepunch.lazy.lazy("module"): an import all the same
            out.add(node.args[0].value)
    return out


def test_the_library_never_imports_the_stages_or_the_cli():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "stages" or rel.name in TOP:
            continue
        upward = {m for m in imports(path) if m.split(".")[:2] in (["onepunch", "stages"], ["onepunch", "cli"],
                                                                  ["onepunch", "status"])}
        assert not upward, f"{rel} imports {sorted(upward)}"


def test_the_stages_never_import_the_cli():
    for path in (PKG / "stages").glob("*.py"):
        assert not {m for m in imports(path) if m in ("onepunch.cli", "onepunch.status")
                    or m.startswith(("onepunch.cli.", "onepunch.status."))}, path.name


def test_only_dist_py_imports_torch_distributed():
    users = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if any(
        m.startswith("torch.distributed") for m in imports(p))}
    assert users == {"dist.py"}, users


def test_lazy_imports_are_seen_by_these_rules():
    assert "onepunch.models.colorizer" in imports(PKG / "stages" / "train_color.py")


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
    """`onepunch status` reads every stage's state: on a new pipeline and with its shards done, none of that needs
    torch (~3 s to import here), so none of it imports it. Timings live in bench/, not here."""
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
