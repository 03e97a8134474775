"""Shared fixtures: one small embedded sample per test session, and pipeline files pointing at it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from onepunch import config, sample

REPO = Path(__file__).resolve().parents[1]
SAMPLE_COUNTS = {"sample_scans": 24, "sample_colors": 24, "sample_seed": 1}


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    sample.generate(out, SAMPLE_COUNTS["sample_scans"], SAMPLE_COUNTS["sample_colors"], SAMPLE_COUNTS["sample_seed"])
    return out


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def write_pipeline(path: Path, tables: dict) -> Path:
    """Write a pipeline TOML from {"": {top-level keys}, "source": {...}, "domains.scans": {...}, ...}."""
    lines = [f"{k} = {toml_value(v)}" for k, v in tables.get("", {}).items()]
    for name, table in tables.items():
        if name:
            lines.append(f"\n[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def demo_tables(work: Path, sample_dir: Path, **shards) -> dict:
    """The demo pipeline's queries, on the test sample, writing under `work`."""
    return {
        "": {"name": "t", "out_dir": str(work / "runs"), "manifests": str(work / "manifests")},
        "source": {"kind": "sample", "path": str(sample_dir), **SAMPLE_COUNTS},
        "domains.scans": {"all_of": ["monochrome"], "any_of": ["lineart", "comic", "sketch", "screentone"],
                          "ratings": ["s"], "min_side": 128, "mode": "L"},
        "domains.colors": {"all_of": ["simple_background"], "none_of": ["monochrome", "animated"],
                           "ratings": ["s"], "min_side": 128},
        "shards": {"max_side": 128, "samples_per_shard": 8, "val_fraction": 0.2, "workers": 0, **shards},
    }


@pytest.fixture(scope="session")
def color_pt(tmp_path_factory) -> Path:
    """A tiny colorizer with random weights: enough to test the plumbing around it."""
    import torch

    from onepunch.checkpoint import save_colorizer
    from onepunch.models import colorizer

    torch.manual_seed(0)
    g, _ = colorizer.build("tiny", frozen_encoder=False)
    path = tmp_path_factory.mktemp("ckpt") / "color.pt"
    save_colorizer(g.eval(), path, working_size=128)
    return path


@pytest.fixture
def pipeline(tmp_path, sample_dir):
    """A factory: pipeline(**shards_overrides) -> loaded PipelineConfig writing under tmp_path."""
    def make(name="pipeline.toml", tables=None, **shards):
        path = write_pipeline(tmp_path / name, tables or demo_tables(tmp_path, sample_dir, **shards))
        return config.load(path)
    return make


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file below root (temp and lock files excluded), keyed by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(*args, env=None, cwd=REPO, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "onepunch", *args], capture_output=True, text=True, cwd=cwd,
                          env=full_env, **kw)
