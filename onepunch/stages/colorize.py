"""`onepunch colorize` over files, folders and chapters (pages.py does the reading and writing, PageColorizer the
colors; to-scan is scanners.to_scan); and the pipeline's last step, which colorizes the pages listed in [colorize]
inputs (the demo's sample pages).

    onepunch colorize page.png chapter/ vol1.cbz --ckpt color.pt --out colored/
    onepunch colorize chapter/ --ckpt color.pt --out colored/ --follow mine/001.png   # the chapter follows page 1

The record of what was written (settings, per input its sha256 and its output's) is <out>/.onepunch-colorize.json,
or the pipeline manifest manifests/<pipeline>/colorize.json for the pipeline step.
Under torchrun (or --rank/--world-size) each rank takes every world-th input, with its own GPU and its own record:

    torchrun --nproc_per_node 8 -m onepunch colorize volumes/ --ckpt color.pt --out colored/
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from onepunch import imageio, pages, pipeline
from onepunch.config import ColorizeConfig, PipelineConfig
from onepunch.dist import Rank
from onepunch.errors import UserError
from onepunch.ui import console

NAME = "colorize"


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


def _member(archive: Path, name: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        return pages.read_member(zf, name)


def _named(jobs: list[pages.Job], colored: Path) -> tuple[str, bytes]:
    """The input page a colored page is a version of: the one of the same name (file stem); among several, the one
    in a folder (or chapter) of the colored page's folder's name. -> (its name, its file's bytes). UserError if none
    or several."""
    import zipfile

    found = []
    for j in jobs:
        if not j.archive:
            if j.source.stem == colored.stem:
                found.append((str(j.source), j.source.parent.name, lambda j=j: j.source.read_bytes()))
            continue
        try:
            with zipfile.ZipFile(j.source) as zf:
                for m in zf.namelist():
                    if pages.is_page(m) and Path(m).stem == colored.stem:
                        found.append((f"{j.source}:{m}", j.source.stem, lambda j=j, m=m: _member(j.source, m)))
        except (zipfile.BadZipFile, OSError):
            continue  # reported when the chapter is read
    if len(found) > 1:
        found = [f for f in found if f[1] == colored.parent.name] or found
    if len(found) != 1:
        what = "no input page" if not found else f"{len(found)} input pages ({', '.join(f[0] for f in found[:3])})"
        raise UserError(f"--follow {colored}: {what} named {colored.stem}.*; a colored page follows the page of its "
                        "name (colored/003.png for chapter/003.png)")
    try:
        return found[0][0], found[0][2]()
    except OSError as e:
        raise UserError(f"--follow {colored}: reading {found[0][0]}: {e}") from None


def followed(cc: ColorizeConfig, jobs: list[pages.Job], c, log) -> tuple:
    """The colored pages the others follow (--follow): (the sha256 of each one's page, what the outputs depend on
    besides the colored files; a function that gives them as one follow.Reference, or None without any). Every
    colored page and its page are read and checked here (a mistake is a one-line error before any work); the net's
    pass over them waits for the first page that needs it, so a rerun with nothing to do runs no net."""
    import functools
    import hashlib

    from onepunch import follow

    if not cc.follow:
        return [], lambda: None
    found = []
    for path in cc.follow:
        colored = _image(path, "--follow", "RGB")
        name, data = _named(jobs, Path(path))
        try:
            page = pages.read_page(data)
            c.check_reference(page, colored)
        except imageio.Reject as e:
            raise UserError(f"--follow {path}: its page {name}: {e}") from None
        except UserError as e:
            raise UserError(f"--follow {path}: {e}") from None
        found.append((path, name, hashlib.sha256(data).hexdigest(), page, colored))

    @functools.cache
    def load():
        refs = []
        for path, name, _, page, colored in found:
            refs.append(c.reference(page, colored))
            log.print(f"follow: {path} colors {len(refs[-1].keys)} shape(s) of {name}")
        return follow.Reference.join(refs)
    return [sha for _, _, sha, _, _ in found], load


def colorize(inputs: list[Path], out: Path, ckpt: Path, cc: ColorizeConfig, record: Path | None = None,
             log=None, rank: Rank | None = None, overwrite: bool = False) -> pages.Summary:
    """Colorize every page of `inputs` (this rank's share of them) into `out`; returns the summary (failures
    included, never raised)."""
    from onepunch import hints
    from onepunch.inference import PageColorizer

    log = log or console()
    every = pages.discover(inputs, out, cc.format)
    jobs, own_record = pages.split(every, out, "colorize", rank)
    c = PageColorizer(ckpt, cc)
    log.print(f"colorize: {len(jobs)} input(s) with {ckpt} ({c.backend}) on {c.device}, working size {c.working_size}"
              + (f", tiles {cc.tile} (overlap {cc.overlap})" if cc.tile else ""))
    page_hints, palette = steering(cc)
    follow_pages, follow = followed(cc, every, c, log)
    settings = pipeline.colorize_settings(cc, ckpt)
    if follow_pages:
        settings["follow_pages"] = follow_pages
    if cc.hints and (stray := hints.unmatched(hints.load_file(cc.hints), pages.page_names(every))):
        log.print(f"[yellow]warning[/]: {cc.hints} names {len(stray)} page(s) that are not among the inputs: "
                  f"{', '.join(stray[:5])}{' ...' if len(stray) > 5 else ''} (their hints are not used)")

    def process(imgs: list[Image.Image], names: list[str]) -> list[Image.Image | None]:
        per_page = [page_hints(n) for n in names] if page_hints else None
        return c.colorize_many(imgs, force=cc.force, hints=per_page, palette=palette, follow=follow())

    summary = pages.run(jobs, process, fmt=cc.format,
                        quality=cc.quality, batch_size=cc.batch_size,
                        record=record or own_record,
                        settings=settings, log=log, what="colorize", overwrite=overwrite)
    pages.report(summary, out, log, "colored")
    return summary


# ---------------------------------------------------------------------------------------------- the pipeline step
def run(cfg: PipelineConfig) -> pages.Summary | None:
    log = console()
    if not cfg.colorize.inputs:
        log.print("colorize: no [colorize] inputs in the pipeline, nothing to do")
        return None
    ckpt = pipeline.output(cfg, "train-color")
    if not ckpt.is_file():
        raise UserError(f"{ckpt} not found: run `onepunch train-color --pipeline {cfg.path}` first")
    return colorize([Path(p) for p in cfg.colorize.inputs], pipeline.out_dir(cfg, NAME), ckpt, cfg.colorize,
                    record=pipeline.manifest_path(cfg, NAME), log=log)
