"""The `onepunch` command: a thin layer that loads a pipeline config, applies a few overrides and calls a stage.

Each command loads its config before importing its stage: a config mistake is answered without importing torch."""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from onepunch import config
from onepunch.errors import Stopped, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="onepunch: line-art and manga colorization, from tag-filtered shards to a trained colorizer.")
DEVICE_HELP = f"{', '.join(config.DEVICES)} (auto: CUDA if available)."
Pipeline = Annotated[Path, typer.Option("--pipeline", "-p", help="Pipeline config (TOML).")]
DEFAULT_PIPELINE = Path("pipelines/demo.toml")


@contextmanager
def as_flags():
    """Library errors name settings as config keys (colorize.tile) or arguments (`max_side`); a command that takes
    them as flags says --tile, --max-side."""
    try:
        yield
    except UserError as e:
        flag = lambda m: "--" + m[1].replace("_", "-")  # noqa: E731
        raise UserError(re.sub(r"`([a-z_]+)`", flag, re.sub(r"\bcolorize\.([a-z_]+)", flag, str(e)))) from None


@app.command()
def shards(
    pipeline: Pipeline = DEFAULT_PIPELINE,
    source: Annotated[str | None, typer.Option(help="Override source.path (dataset root, folder, or HF dataset).")] = None,
    workers: Annotated[int | None, typer.Option(help="Override shards.workers (0: build in this process).")] = None,
    rank: Annotated[int | None, typer.Option(help="This process's rank, without torchrun (with --world-size).")] = None,
    world_size: Annotated[int | None, typer.Option(help="Number of ranks, without torchrun.")] = None,
    force: Annotated[bool, typer.Option(help="Re-check every shard even if the manifest is up to date.")] = False,
):
    """Filter the source by tags into WebDataset shards, one set per domain and split."""
    cfg = config.load(pipeline, {"source.path": source, "shards.workers": workers})
    from onepunch.dist import rank_info
    from onepunch.stages import shards as stage

    stage.run(cfg, rank_info(rank, world_size), force=force)


@app.command("train-scan")
def train_scan(
    pipeline: Pipeline = DEFAULT_PIPELINE,
    steps: Annotated[int | None, typer.Option(help="Override train_scan.steps.")] = None,
    preset: Annotated[str | None, typer.Option(help="Override train_scan.preset (tiny or base).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override train_scan.batch_size.")] = None,
    device: Annotated[str | None, typer.Option(help="Override train_scan.device: " + DEVICE_HELP)] = None,
    workers: Annotated[int | None, typer.Option(help="Override train_scan.workers (data loader processes).")] = None,
):
    """Train the CycleGAN between scans and colors; export its color->scan generator as scan.pt."""
    cfg = config.load(pipeline, {"train_scan.steps": steps, "train_scan.preset": preset,
                                 "train_scan.batch_size": batch_size, "train_scan.device": device,
                                 "train_scan.workers": workers})
    from onepunch.stages import train_scan as stage

    stage.run(cfg)


@app.command("build-pairs")
def build_pairs(
    pipeline: Pipeline = DEFAULT_PIPELINE,
    ckpt: Annotated[str | None, typer.Option(help="Scan generator (scan.pt); default <out_dir>/train-scan/scan.pt.")] = None,
    method: Annotated[str | None, typer.Option(help="ckpt (the generator), xdog (analytic baseline) or folder "
                                                   "(the pairs in --pairs-dir alone).")] = None,
    pairs_dir: Annotated[str | None, typer.Option(help="Aligned pairs you own: a folder with scan/ and color/ of the "
                                                       "same file names (overrides build_pairs.pairs_dir).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override build_pairs.batch_size.")] = None,
    workers: Annotated[int | None, typer.Option(help="Override build_pairs.workers (decode processes).")] = None,
    device: Annotated[str | None, typer.Option(help="Override build_pairs.device: " + DEVICE_HELP)] = None,
    rank: Annotated[int | None, typer.Option(help="This process's rank, without torchrun (with --world-size).")] = None,
    world_size: Annotated[int | None, typer.Option(help="Number of ranks, without torchrun.")] = None,
):
    """Run the scan generator over every color shard; write paired (scan, color) shards."""
    cfg = config.load(pipeline, {"build_pairs.ckpt": ckpt, "build_pairs.method": method, "build_pairs.pairs_dir": pairs_dir,
                                 "build_pairs.batch_size": batch_size, "build_pairs.workers": workers,
                                 "build_pairs.device": device})
    from onepunch.dist import rank_info
    from onepunch.stages import build_pairs as stage

    stage.run(cfg, rank_info(rank, world_size))


@app.command("train-color")
def train_color(
    pipeline: Pipeline = DEFAULT_PIPELINE,
    size: Annotated[int | None, typer.Option(help="Final size; stages double from train_color.start_size.")] = None,
    encoder_weights: Annotated[str | None, typer.Option(help="ResNet50 weights (RF5 danbooru or torchvision).")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps per stage (overrides epochs).")] = None,
    preset: Annotated[str | None, typer.Option(help="Override train_color.preset (tiny or base).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override train_color.batch_size.")] = None,
    device: Annotated[str | None, typer.Option(help="Override train_color.device: " + DEVICE_HELP)] = None,
    workers: Annotated[int | None, typer.Option(help="Override train_color.workers (data loader processes).")] = None,
):
    """Train the colorizer on the paired shards, progressively (64 -> 128 -> ... -> size)."""
    cfg = config.load(pipeline, {"train_color.size": size, "train_color.encoder_weights": encoder_weights,
                                 "train_color.steps": steps, "train_color.preset": preset,
                                 "train_color.batch_size": batch_size, "train_color.device": device,
                                 "train_color.workers": workers})
    from onepunch.stages import train_color as stage

    stage.run(cfg)


@app.command("eval")
def eval_(
    pipeline: Pipeline = DEFAULT_PIPELINE,
    ckpt: Annotated[str | None, typer.Option(help="Colorizer (color.pt); default <out_dir>/train-color/color.pt.")] = None,
    max_images: Annotated[int | None, typer.Option(help="Override eval.max_images.")] = None,
    working_size: Annotated[int | None, typer.Option(help="Override eval.working_size.")] = None,
    device: Annotated[str | None, typer.Option(help="Override eval.device: " + DEVICE_HELP)] = None,
    pairs: Annotated[str | None, typer.Option("--pairs", help="True (scan, color) pairs to measure on: a folder with "
                                                             "scan/ and color/ (overrides eval.real_pairs).")] = None,
):
    """Measure a colorizer on the held-out pairs, next to baselines: metrics.json and report.html."""
    cfg = config.load(pipeline, {"eval.ckpt": ckpt, "eval.max_images": max_images,
                                 "eval.working_size": working_size, "eval.device": device, "eval.real_pairs": pairs})
    from onepunch.stages import evaluate as stage

    stage.run(cfg)


Inputs = Annotated[list[Path], typer.Argument(help="Image files, folders (recursive) and .cbz/.zip chapters.",
                                              show_default=False)]


CC = config.ColorizeConfig()  # the colorize options' defaults and help are the [colorize] table's, stated once
DOC = config.field_docs(config.ColorizeConfig)


@app.command()
def colorize(
    inputs: Inputs,
    ckpt: Annotated[Path, typer.Option(help="The colorizer (color.pt from train-color, or a .onnx from export).")],
    out: Annotated[Path, typer.Option(help="Output folder (inputs are never overwritten).")] = Path("colored"),
    fmt: Annotated[str, typer.Option("--format", help=DOC["format"])] = CC.format,
    backend: Annotated[str, typer.Option(help=DOC["backend"])] = CC.backend,
    quality: Annotated[int, typer.Option(help=DOC["quality"])] = CC.quality,
    working_size: Annotated[int, typer.Option(help=DOC["working_size"])] = CC.working_size,
    transfer: Annotated[str, typer.Option(help=DOC["transfer"])] = CC.transfer,
    chroma: Annotated[str, typer.Option(help=DOC["chroma"])] = CC.chroma,
    lettering: Annotated[str, typer.Option(help=DOC["lettering"])] = CC.lettering,
    descreen: Annotated[str, typer.Option(help=DOC["descreen"])] = CC.descreen,
    regions: Annotated[str, typer.Option(help=DOC["regions"])] = CC.regions,
    hint_fill: Annotated[str, typer.Option(help=DOC["hint_fill"])] = CC.hint_fill,
    memory: Annotated[str, typer.Option(help=DOC["memory"])] = CC.memory,
    tile: Annotated[int, typer.Option(help=DOC["tile"])] = CC.tile,
    overlap: Annotated[int, typer.Option(help=DOC["overlap"])] = CC.overlap,
    tile_passes: Annotated[int, typer.Option(help=DOC["tile_passes"])] = CC.tile_passes,
    batch_size: Annotated[int, typer.Option(help=DOC["batch_size"])] = CC.batch_size,
    force: Annotated[bool, typer.Option(help=DOC["force"])] = CC.force,
    hints: Annotated[str, typer.Option(help=DOC["hints"])] = CC.hints,
    hint_image: Annotated[str, typer.Option(help=DOC["hint_image"])] = CC.hint_image,
    reference: Annotated[str, typer.Option(help=DOC["reference"])] = CC.reference,
    follow: Annotated[list[str] | None, typer.Option(help=DOC["follow"] + " Repeat for several pages.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace files in --out that onepunch did not write.")] = False,
    threshold: Annotated[float, typer.Option(help=DOC["threshold"])] = CC.threshold,
    device: Annotated[str, typer.Option(help=DOC["device"])] = CC.device,
    rank: Annotated[int | None, typer.Option(help="This process's rank, without torchrun (with --world-size).")] = None,
    world_size: Annotated[int | None, typer.Option(help="Number of ranks, without torchrun.")] = None,
):
    """Colorize line art and manga pages at full resolution; chapters stay chapters."""
    given = {"format": fmt, "quality": quality, "working_size": working_size, "transfer": transfer, "chroma": chroma,
             "lettering": lettering, "descreen": descreen, "regions": regions, "hint_fill": hint_fill, "memory": memory, "tile": tile,
             "overlap": overlap, "tile_passes": tile_passes, "batch_size": batch_size, "force": force,
             "threshold": threshold, "device": device, "hints": hints, "hint_image": hint_image,
             "reference": reference, "follow": list(follow or []), "backend": backend}
    from onepunch.dist import rank_info

    with as_flags():
        cc = config.from_dict(config.ColorizeConfig, given, "colorize")
        from onepunch.stages import colorize as stage

        summary = stage.colorize(inputs, out, ckpt, cc, rank=rank_info(rank, world_size), overwrite=overwrite)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def export(
    ckpt: Annotated[Path, typer.Argument(help="The colorizer (color.pt from train-color).", show_default=False)],
    onnx: Annotated[Path, typer.Option("--onnx", help="Write the network as ONNX here (e.g. color.onnx).")],
    opset: Annotated[int, typer.Option(help="ONNX opset (18 and later).")] = 18,
    overwrite: Annotated[bool, typer.Option(help="Replace a file at --onnx that onepunch did not export.")] = False,
):
    """Export the colorizer's network as ONNX (dynamic batch, height and width), checked against torch."""
    from onepunch.export import export_onnx

    r = export_onnx(ckpt, onnx, opset, overwrite=overwrite)
    Console(stderr=True).print(f"[green]exported[/] {r['path']} ({r['bytes'] / 1e6:.1f} MB, opset {r['opset']}; "
                               f"largest difference from torch {r['max_difference']:.1e})")


@app.command()
def serve(
    ckpt: Annotated[Path, typer.Option(help="The colorizer (color.pt from train-color).")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 7860,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    working_size: Annotated[int, typer.Option(help="Longer side the net runs at (0: the checkpoint's).")] = 0,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    allow_host: Annotated[list[str] | None, typer.Option(help="Another name this server answers to and whose pages "
                                                               "may use it (default: 127.0.0.1, localhost).")] = None,
):
    """A local web app: open pages or a chapter, place color hints, set a reference page, colorize, download."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port must be 1..65535, not {port}")
    from onepunch.serve import serve as run_server
    from onepunch.ui import console

    with as_flags():
        run_server(ckpt, host=host, port=port, device=device, working_size=working_size, log=console(),
                   allow_hosts=tuple(allow_host or ()))


@app.command("to-scan")
def to_scan(
    inputs: Inputs,
    ckpt: Annotated[Path | None, typer.Option(help="The scan generator (scan.pt from train-scan).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder (inputs are never overwritten).")] = Path("scans"),
    method: Annotated[str, typer.Option(help="ckpt (the generator) or xdog (no weights).")] = "ckpt",
    fmt: Annotated[str, typer.Option("--format", help=f"Output format: {', '.join(config.FORMATS)}.")] = "png",
    max_side: Annotated[int, typer.Option(help="Downscale so the longer side is at most this (0: full size).")] = 0,
    paper_level: Annotated[int, typer.Option(help="Generator scans: values at or above it become white (255: off).")]
    = config.BuildPairsConfig.paper_level,
    ink_level: Annotated[int, typer.Option(help="Generator scans: values at or below it become black (0: off).")]
    = config.BuildPairsConfig.ink_level,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 4,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace files in --out that onepunch did not write.")] = False,
    rank: Annotated[int | None, typer.Option(help="This process's rank, without torchrun (with --world-size).")] = None,
    world_size: Annotated[int | None, typer.Option(help="Number of ranks, without torchrun.")] = None,
):
    """Turn colored illustrations into line-art scans with the train-scan generator (or XDoG)."""
    from onepunch.dist import rank_info
    from onepunch.scanners import to_scan as run

    with as_flags():
        summary = run(inputs, out, ckpt, method, fmt, device, batch_size, max_side,
                      rank=rank_info(rank, world_size), overwrite=overwrite, levels=(paper_level, ink_level))
    if summary.failed:
        raise typer.Exit(1)


@app.command("run")
def run_all(pipeline: Pipeline = DEFAULT_PIPELINE):
    """Run every stage of the pipeline in order, skipping those already up to date."""
    from onepunch import pipeline as spine

    spine.run(config.load(pipeline))


@app.command()
def status(pipeline: Pipeline = DEFAULT_PIPELINE,
           as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False):
    """Which stages are done, stale (inputs or config changed) or missing."""
    cfg = config.load(pipeline)
    from onepunch import pipeline as spine

    stages = spine.states(cfg)
    if as_json:
        print(json.dumps({"pipeline": cfg.name, "stages": stages}))
        return
    table = Table(title=f"pipeline {cfg.name} ({pipeline})", title_justify="left")
    for col in ("stage", "state", "manifest"):
        table.add_column(col)
    colors = {"done": "green", "stale": "yellow", "missing": "red", "skipped": "dim"}
    for s in stages:
        table.add_row(s["name"], f"[{colors[s['state']]}]{s['state']}[/]", s["manifest"])
    Console().print(table)


@app.command()
def sample(out: Annotated[Path, typer.Option(help="Where to write the sample.")] = Path("data/sample"),
           scans: int = 160, colors: int = 160, seed: int = 0):
    """Write the embedded procedural sample dataset (Danbooru2020 layout plus true line art)."""
    from onepunch import sample as sample_mod

    root = sample_mod.generate(out, scans, colors, seed)
    Console(stderr=True).print(f"sample dataset at {root} (true line art in {out / 'truth'})")


def main() -> None:
    try:
        app()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Stopped as e:
        print(str(e), file=sys.stderr)
        sys.exit(130)
    except OSError as e:  # a full disk, a read-only or vanished folder: the system's word, on one line
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot read or write{where}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)
