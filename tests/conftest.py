"""Shared fixtures: one small embedded sample per test session, and pipeline files pointing at it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def shapes_page(rng, size: int, layout: bool = False) -> tuple:
    """(scan uint8 (size, size), color uint8 (size, size, 3)): two inked discs filled with random colors on white
    paper, at the quarter points (or, with `layout`, at random places and sizes)."""
    import cv2

    scan = np.full((size, size), 255, np.uint8)
    color = np.full((size, size, 3), 255, np.uint8)
    for k in range(2):
        if layout:
            r = int(rng.integers(size // 10, size // 4))
            c = tuple(int(v) for v in rng.integers(r, size - r, 2))
        else:
            r, c = size * 5 // 32, (size // 4, size // 4) if k == 0 else (size * 3 // 4, size * 3 // 4)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(color, c, r, fill, -1)
        cv2.circle(color, c, r, (0, 0, 0), max(1, size // 64))
        cv2.circle(scan, c, r, 0, max(1, size // 64))
    return scan, color


@pytest.fixture(scope="session")
def plain_color_pt(tmp_path_factory) -> Path:
    """A tiny colorizer trained for a few steps on ordinary data (the sample's illustrations from their line art),
    never shown a hint: what hint_fill flat must make obey hints all the same."""
    import torch

    from onepunch.checkpoint import save_colorizer
    from onepunch.models import colorizer
    from onepunch.sample import draw_color

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    g, _ = colorizer.build("tiny", frozen_encoder=False)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    for _ in range(20):
        pairs = [draw_color(rng, 64, 64) for _ in range(8)]
        color = torch.from_numpy(np.stack([c for c, _ in pairs])).permute(0, 3, 1, 2).float() / 127.5 - 1
        scan = torch.from_numpy(np.stack([s for _, s in pairs]))[:, None].float() / 127.5 - 1
        loss = (g(scan) - color).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("ckpt") / "plain.pt"
    save_colorizer(g.eval(), path, working_size=64, train_config={"hint_p": 0.0, "palette_p": 0.0})
    return path


@pytest.fixture
def make_cfg(tmp_path, sample_dir):
    """A factory: make_cfg(**shards_overrides) -> loaded PipelineConfig writing under tmp_path."""
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


def cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI's main() run in this process (no interpreter start, torch already loaded: seconds less than run_cli
    per call), with its exit code, stdout and stderr; for one-line-error checks that need no process of their own.
    `env`: variables set for the call (COLUMNS: the width rich lays tables out in)."""
    import contextlib
    import io

    from onepunch import cli as entry

    out, err, argv, code, saved = io.StringIO(), io.StringIO(), sys.argv, 0, dict(os.environ)
    try:
        os.environ.update(env or {})
        sys.argv = ["onepunch", *map(str, args)]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                entry.main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def run_cli(*args, env=None, cwd=REPO, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "onepunch", *args], capture_output=True, text=True, cwd=cwd,
                          env=full_env, **kw)
