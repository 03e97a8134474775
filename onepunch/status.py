"""The stages of a pipeline, in order: which are done, stale or missing (each stage's manifest compared with the
current config and inputs), and `run_pipeline`, which runs those that are not done."""

from __future__ import annotations

import time

from onepunch.config import PipelineConfig
from onepunch.stages import build_pairs, colorize, evaluate, shards, train_color, train_scan
from onepunch.ui import console

# Stage names are the CLI command names, in pipeline order; colorize is the [colorize] inputs step.
STAGES = {"shards": shards, "train-scan": train_scan, "build-pairs": build_pairs, "train-color": train_color,
          "eval": evaluate, "colorize": colorize}


def stage_states(cfg: PipelineConfig) -> list[dict]:
    return [{"name": name, "state": mod.state(cfg), "manifest": str(mod.manifest_path(cfg))}
            for name, mod in STAGES.items()]


def run_pipeline(cfg: PipelineConfig) -> None:
    """Each stage in order; a stage that is up to date is skipped (its state check is cheap), so a rerun with
    nothing changed takes seconds. A failing stage stops the run (its UserError says what to do)."""
    log = console()
    t0 = time.perf_counter()
    if cfg.source.kind == "sample":  # a no-op when it is there; the demo's colorize step reads its pages
        from onepunch import sample
        sample.generate(cfg.source.path, cfg.source.sample_scans, cfg.source.sample_colors, cfg.source.sample_seed)
    for name, mod in STAGES.items():
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
