"""The layout's rules, read from the source: no module imports upward, one module does distributed."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "onepunch"
TOP = {"cli.py", "status.py", "__main__.py"}  # the layer above the stages


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
        upward = {m for m in imports(path) if m.startswith(("onepunch.stages", "onepunch.cli", "onepunch.status"))}
        assert not upward, f"{rel} imports {sorted(upward)}"


def test_the_stages_never_import_the_cli():
    for path in (PKG / "stages").glob("*.py"):
        assert not {m for m in imports(path) if m.startswith(("onepunch.cli", "onepunch.status"))}, path.name


def test_only_dist_py_imports_torch_distributed():
    users = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if any(
        m.startswith("torch.distributed") for m in imports(p))}
    assert users == {"dist.py"}, users
