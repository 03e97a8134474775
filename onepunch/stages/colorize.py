"""`onepunch colorize` and `onepunch to-scan` over files, folders and chapters; and the pipeline's last step, which
colorizes the pages listed in [colorize] inputs (the demo's sample pages).

    onepunch colorize page.png chapter/ vol1.cbz --ckpt color.pt --out colored/
    onepunch to-scan illustration.jpg --ckpt scan.pt --out scans/

The record of what was written (settings, per input its sha256 and its output's) is <out>/.onepunch-colorize.json
(.onepunch-to-scan.json), or the pipeline manifest manifests/<pipeline>/colorize.json for the pipeline step.
Under torchrun (or --rank/--world-size) each rank takes every world-th input, with its own GPU and its own record:

    torchrun --nproc_per_node 8 -m onepunch colorize volumes/ --ckpt color.pt --out colored/
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from onepunch import imageio, pages
from onepunch.config import ColorizeConfig, PipelineConfig
from onepunch.dist import Rank
from onepunch.errors import UserError
from onepunch.lazy import lazy
from onepunch.manifest import read_json, sha256_file
from onepunch.ui import console

torch, train = lazy("torch"), lazy("onepunch.train")  # at first use: `onepunch status` needs neither

NAME = "colorize"


def _settings(cc: ColorizeConfig, ckpt: Path) -> dict:
    """What the output bytes depend on (not batch size, device or the input list). working_size 0 means the
    checkpoint's own, which its sha256 pins; hints, hint image and reference count by their contents."""
    steer = {k: sha256_file(p) for k in ("hints", "hint_image", "reference") if (p := getattr(cc, k)) and Path(p).is_file()}
    # Tiles share the page's statistics since 2026-12 (tile_passes): a record of tiles without it is redone.
    tiles = {"tile": cc.tile, "overlap": cc.overlap, "tile_passes": cc.tile_passes} if cc.tile else {"tile": 0, "overlap": 0}
    return {"ckpt_sha256": sha256_file(ckpt), "working_size": cc.working_size, "transfer": cc.transfer, "chroma": cc.chroma, **tiles,
            "lettering": cc.lettering, "descreen": cc.descreen, "regions": cc.regions, "hint_fill": cc.hint_fill,
            "threshold": cc.threshold, "force": cc.force,
            "format": cc.format, "quality": cc.quality, **steer}


def _image(path: str, what: str, mode: str) -> Image.Image:
    """A hint image or reference, decoded safely (imageio.decode); UserError if it is not a usable image."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"{what} {path}: {e.strerror or e}") from None
    try:
        return imageio.decode(data, mode=mode, max_side=1 << 30, max_pixels=pages.MAX_PIXELS)[0]
    except imageio.Reject as e:
        raise UserError(f"{what} {path}: {e}") from None


HINT_SIDE = 4096
"""A hint image is kept at most this long a side (it is stretched over each page and brought to the working size,
which needs no more): decoded and shrunk once per run, not once per page."""


def hint_image(path: str) -> Image.Image:
    """A hint image (pages' pixel limits), shrunk once to at most HINT_SIDE, alpha premultiplied while shrinking so
    transparent pixels lend no color to the strokes' edges."""
    img = _image(path, "--hint-image", "RGBA")
    if max(img.size) > HINT_SIDE:
        scale = HINT_SIDE / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.convert("RGBa").resize(size, Image.Resampling.BOX).convert("RGBA")
    return img


def steering(cc: ColorizeConfig) -> tuple:
    """(hints per page name, or None: name -> hints for colorize_many; palette or None) from the settings."""
    from onepunch import hints

    table = hints.load_file(cc.hints) if cc.hints else None
    drawn = hint_image(cc.hint_image) if cc.hint_image else None
    palette = hints.of_image(_image(cc.reference, "--reference", "RGB")) if cc.reference else None
    if table is None and drawn is None:
        return None, palette

    def page_hints(name: str):
        listed = hints.for_page(table, name) if table else []
        if drawn is None:
            return listed or None
        return (listed, drawn)  # both: the PageColorizer merges them
    return page_hints, palette


def colorize(inputs: list[Path], out: Path, ckpt: Path, cc: ColorizeConfig, record: Path | None = None,
             log=None, rank: Rank | None = None, overwrite: bool = False) -> pages.Summary:
    """Colorize every page of `inputs` (this rank's share of them) into `out`; returns the summary (failures
    included, never raised)."""
    from onepunch import hints
    from onepunch.inference import PageColorizer

    log = log or console()
    every = pages.discover(inputs, out, cc.format)
    jobs, own_record = pages.split(every, out, "colorize", rank)
    c = PageColorizer(ckpt, device=cc.device, working_size=cc.working_size, tile=cc.tile, overlap=cc.overlap,
                      batch_size=cc.batch_size, threshold=cc.threshold, transfer=cc.transfer, chroma=cc.chroma,
                      passes=cc.tile_passes, backend=cc.backend, lettering=cc.lettering,
                      descreen=cc.descreen, regions=cc.regions, hint_fill=cc.hint_fill)
    log.print(f"colorize: {len(jobs)} input(s) with {ckpt} ({c.backend}) on {c.device}, working size {c.working_size}"
              + (f", tiles {cc.tile} (overlap {cc.overlap})" if cc.tile else ""))
    page_hints, palette = steering(cc)
    if cc.hints and (stray := hints.unmatched(hints.load_file(cc.hints), pages.page_names(every))):
        log.print(f"[yellow]warning[/]: {cc.hints} names {len(stray)} page(s) that are not among the inputs: "
                  f"{', '.join(stray[:5])}{' ...' if len(stray) > 5 else ''} (their hints are not used)")

    def process(imgs: list[Image.Image], names: list[str]) -> list[Image.Image | None]:
        per_page = [page_hints(n) for n in names] if page_hints else None
        return c.colorize_many(imgs, force=cc.force, hints=per_page, palette=palette)

    summary = pages.run(jobs, process, fmt=cc.format,
                        quality=cc.quality, batch_size=cc.batch_size,
                        record=record or own_record,
                        settings=_settings(cc, ckpt), log=log, what="colorize", overwrite=overwrite)
    pages.report(summary, out, log, "colored")
    return summary


# ---------------------------------------------------------------------------------------------- the pipeline step
def manifest_path(cfg: PipelineConfig) -> Path:
    return cfg.manifest_dir / f"{NAME}.json"


def out_dir(cfg: PipelineConfig) -> Path:
    return Path(cfg.colorize.out or Path(cfg.out_dir) / "colorized")


def ckpt_path(cfg: PipelineConfig) -> Path:
    from onepunch.stages import train_color
    return train_color.run_dir(cfg) / "color.pt"


def state(cfg: PipelineConfig) -> str:
    """done / stale / missing, like the other stages; "skipped" when [colorize] lists no inputs."""
    if not cfg.colorize.inputs:
        return "skipped"
    m = read_json(manifest_path(cfg))
    if not m:
        return "missing"
    ckpt = ckpt_path(cfg)
    if not ckpt.is_file() or m.get("settings") != _settings(cfg.colorize, ckpt):
        return "stale"
    try:
        jobs = pages.discover([Path(p) for p in cfg.colorize.inputs], out_dir(cfg), cfg.colorize.format)
    except UserError:
        return "stale"
    outputs = m.get("outputs", {})
    for j in jobs:
        e = outputs.get(str(j.source))
        if not e or e.get("failed") or e["input_sha256"] != sha256_file(j.source):
            return "stale"
        if not e.get("kept") and not (j.out.is_file() and sha256_file(j.out) == e["output_sha256"]):
            return "stale"
    return "done"


def run(cfg: PipelineConfig) -> pages.Summary | None:
    log = console()
    if not cfg.colorize.inputs:
        log.print("colorize: no [colorize] inputs in the pipeline, nothing to do")
        return None
    ckpt = ckpt_path(cfg)
    if not ckpt.is_file():
        raise UserError(f"{ckpt} not found: run `onepunch train-color --pipeline {cfg.path}` first")
    return colorize([Path(p) for p in cfg.colorize.inputs], out_dir(cfg), ckpt, cfg.colorize,
                    record=manifest_path(cfg), log=log)
