"""The stages of a pipeline, in order: which are done, stale or missing (each stage's manifest compared with the
current config and inputs), and `run_pipeline`, which runs those that are not done."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType

from onepunch.config import PipelineConfig
from onepunch.stages import build_pairs, colorize, evaluate, shards, train_color, train_scan
from onepunch.ui import console


@dataclass(frozen=True)
class Stage:
    name: str
    """The CLI command."""
    module: ModuleType
    """Its stage module: run(cfg), state(cfg), manifest_path(cfg)."""
    needs: tuple[str, ...]
    """The stages whose outputs it reads (through their manifests); tests/test_status.py checks these against the
    modules' imports, so a new stage is one module plus one line here."""


GRAPH = (
    Stage("shards", shards, ()),
    Stage("train-scan", train_scan, ("shards",)),
    Stage("build-pairs", build_pairs, ("shards", "train-scan")),  # train-scan's scan.pt (or XDoG, or your pairs)
    Stage("train-color", train_color, ("build-pairs",)),
    Stage("eval", evaluate, ("train-color", "build-pairs", "train-scan")),
    Stage("colorize", colorize, ("train-color",)),  # the [colorize] inputs step
)
STAGES = {s.name: s.module for s in GRAPH}
"""Stage names in pipeline order (every stage after those it needs)."""


def stage_states(cfg: PipelineConfig) -> list[dict]:
    """Each stage's state, in order, with what it needs: a stage whose upstream is not done is done only while its
    manifest still matches what that upstream left on disk (`onepunch run` reruns the upstream, then it)."""
    return [{"name": s.name, "state": s.module.state(cfg), "manifest": str(s.module.manifest_path(cfg)),
             "needs": list(s.needs)} for s in GRAPH]


def run_pipeline(cfg: PipelineConfig) -> None:
    """Each stage in order; a stage that is up to date is skipped (its state check is cheap), so a rerun with
    nothing changed takes seconds. A failing stage stops the run (its UserError says what to do)."""
    log = console()
    t0 = time.perf_counter()
    if cfg.source.kind == "sample":  # a no-op when it is there; the demo's colorize step reads its pages
        from onepunch import sample
        sample.generate(cfg.source.path, cfg.source.sample_scans, cfg.source.sample_colors, cfg.source.sample_seed)
    for stage in GRAPH:
        name, mod = stage.name, stage.module
        st = mod.state(cfg)
        if st in ("done", "skipped"):
            log.print(f"[green]✓[/] {name}: {'up to date' if st == 'done' else 'nothing to do'}")
            continue
        log.rule(f"{name} ({st})")
        mod.run(cfg)
    log.print(f"[green]pipeline {cfg.name} done[/] in {time.perf_counter() - t0:.1f} s")
    report = evaluate.run_dir(cfg) / "report.html"
    if report.is_file():
        log.print(f"report: {report.resolve()}")
