"""Pages in, pages out, for `colorize` and `to-scan`: image files, folders (recursive) and .cbz/.zip chapters.

- A file `page.png` becomes `<out>/page.<fmt>`; a folder `chapter/` becomes `<out>/chapter/...` (same tree); a chapter
  `vol1.cbz` or `vol1.zip` becomes `<out>/vol1.cbz`, pages in the same order under the same names (new extension),
  other members (ComicInfo.xml) copied through. Inputs are never written to, and no output may land on an input.
- A page that fails (corrupt, not an image) is reported and the rest go on; in a chapter, its original bytes are kept
  so the page count and order survive. A page the processor declines (already in color) is kept as it is too.
- Idempotent and resumable: a record in the output folder holds, per input, its sha256, the settings and the output's
  sha256; a rerun skips what matches. Every output is written to a temp name and renamed; archives get fixed member
  timestamps, so a rerun or a resumed run writes the same bytes.
- Pages are decoded and encoded on a thread pool ahead of / behind the batches the processor sees.
"""

from __future__ import annotations

import io
import os
import re
import time
import zipfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from onepunch import imageio
from onepunch.config import FORMATS, digest
from onepunch.dist import Rank
from onepunch.errors import UserError
from onepunch.manifest import AtomicFile, atomic_write, exclusive, read_json, sha256_file, write_json
from onepunch.ui import progress

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
ARCHIVE_EXTS = {".cbz", ".zip"}
MAX_PIXELS = 250_000_000  # a 15,000 x 15,000 spread is fine; a decompression bomb is not
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Chapter limits, checked from the archive's directory before any member is read: a 2.7 MB zip can declare
# gigabytes of zeros. A 600-dpi A3 page is ~60 MB as an uncompressed TIFF; real chapters compress pages 1-10x.
MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 256 << 20
MAX_ARCHIVE_BYTES = 4 << 30
MAX_RATIO = 100  # uncompressed / compressed, for members over RATIO_FROM bytes
RATIO_FROM = 8 << 20
# Decoded pixels held ahead of the processor. With the transfer done in strips, a page costs ~10 bytes per pixel
# beyond the model: the 250 MP limit is ~2.5 GB, a 36 MP page ~0.35 GB (measured, BENCHMARKS.md).
PIXEL_BUDGET = 100_000_000


def natural_key(s: str) -> list:
    """page2 before page10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


@dataclass
class Job:
    """One input file or chapter and where its output goes."""
    source: Path
    out: Path
    archive: bool
    members: list[str] = field(default_factory=list)  # archive members in page order (images and others)


def is_page(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return Path(name).suffix.lower() in IMAGE_EXTS and not base.startswith(".") and "__MACOSX" not in name


def discover(inputs: list[Path], out: Path, fmt: str) -> list[Job]:
    """Jobs for files, folders (recursive) and archives; UserError on a missing input, an unknown file type, an
    `out` that is a file or holds an input folder, inputs with no page in them, two inputs writing the same output,
    or an output that would land on an input."""
    if fmt not in FORMATS:
        raise UserError(f"`format` must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not inputs:
        raise UserError("no inputs: give image files, folders or .cbz/.zip chapters")
    if out.exists() and not out.is_dir():
        raise UserError(f"`out` {out} is a file: give a folder (it is created if missing)")
    out = out.resolve()
    jobs: list[Job] = []

    def add(src: Path, dest: Path) -> None:
        ext = src.suffix.lower()
        if ext in ARCHIVE_EXTS:
            jobs.append(Job(src, dest.with_suffix(".cbz"), True))
        else:
            jobs.append(Job(src, dest.with_suffix(f".{fmt}"), False))

    for p in inputs:
        p = Path(p)
        if not p.exists():
            raise UserError(f"input not found: {p}")
        if p.is_dir():
            root = p.resolve()
            if root.is_relative_to(out):
                raise UserError(f"`out` {out} holds the input folder {p}: outputs would land among the inputs; "
                                "choose an `out` outside it")
            files = [f for f in root.rglob("*") if f.is_file() and not f.name.startswith(".")
                     and f.suffix.lower() in IMAGE_EXTS | ARCHIVE_EXTS and not f.resolve().is_relative_to(out)]
            for f in sorted(files, key=lambda f: natural_key(str(f.relative_to(root)))):
                add(f, out / root.name / f.relative_to(root))
        elif p.suffix.lower() in IMAGE_EXTS | ARCHIVE_EXTS:
            add(p.resolve(), out / p.name)
        else:
            raise UserError(f"{p}: not an image ({', '.join(sorted(IMAGE_EXTS))}) or a .cbz/.zip chapter")
    if not jobs:
        raise UserError(f"no pages in {', '.join(map(str, inputs))}: nothing with an image "
                        f"({', '.join(sorted(IMAGE_EXTS))}) or .cbz/.zip extension")
    sources = {j.source for j in jobs}
    seen: dict[Path, Path] = {}
    for j in jobs:
        if j.out in sources:
            raise UserError(f"output {j.out} would overwrite an input: choose another `out`")
        if j.out in seen:
            raise UserError(f"{seen[j.out]} and {j.source} would both write {j.out}: colorize them separately")
        seen[j.out] = j.source
    return jobs


def page_names(jobs: list[Job]) -> set[str]:
    """The names pages go by (a file's name, a chapter member's name), read from the chapters' directories only."""
    names = set()
    for j in jobs:
        if not j.archive:
            names.add(j.source.name)
            continue
        try:
            with zipfile.ZipFile(j.source) as zf:
                names |= {i.filename for i in zf.infolist() if not i.is_dir() and is_page(i.filename)}
        except (zipfile.BadZipFile, OSError):
            pass  # reported when the chapter is read
    return names


def safe_name(member: str) -> str:
    """An archive member name that cannot leave the archive's folder when extracted: no absolute path, drive, `..`
    or backslash."""
    parts = [p for p in member.replace("\\", "/").split("/") if p not in ("", ".", "..") and not p.endswith(":")]
    return "/".join(parts) or "page"


def unique_name(member: str, fmt: str | None, used: set[str]) -> str:
    """A member's name in an output chapter: safe, with the new extension `fmt` for converted pages, and not yet in
    `used` (case-insensitive; updated): pages `01.jpg` then `01.png`, both colorized, become `01.png` and
    `01-png.png`."""
    name = safe_name(member)
    if fmt:
        p = Path(name)
        name = str(p.with_suffix(f".{fmt}"))
        if name.lower() in used and p.suffix:
            name = str(p.with_name(f"{p.stem}-{p.suffix[1:]}.{fmt}"))
    base, k = name, 2
    while name.lower() in used:
        stem, dot, ext = base.rpartition(".")
        name = f"{stem}-{k}.{ext}" if dot else f"{base}-{k}"
        k += 1
    used.add(name.lower())
    return name


def check_archive(zf: zipfile.ZipFile) -> None:
    """Reject a chapter whose directory declares more than the limits above (a zip bomb), before reading anything."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_MEMBERS:
        raise imageio.Reject("archive_bomb", f"{len(infos)} members (limit {MAX_MEMBERS})")
    total = 0
    for i in infos:
        if i.file_size > MAX_MEMBER_BYTES:
            raise imageio.Reject("archive_bomb", f"member {i.filename!r} unpacks to {i.file_size} bytes "
                                                 f"(limit {MAX_MEMBER_BYTES})")
        if i.file_size > RATIO_FROM and i.file_size > MAX_RATIO * max(1, i.compress_size):
            raise imageio.Reject("archive_bomb", f"member {i.filename!r} is compressed "
                                                 f"{i.file_size // max(1, i.compress_size)}:1 (limit {MAX_RATIO}:1)")
        total += i.file_size
    if total > MAX_ARCHIVE_BYTES:
        raise imageio.Reject("archive_bomb", f"members unpack to {total} bytes (limit {MAX_ARCHIVE_BYTES})")


def read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    """A member's bytes, never more than its declared size allows (zipfile stops at the declared size)."""
    with zf.open(name) as f:
        data = f.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise imageio.Reject("archive_bomb", f"member {name!r} unpacks to more than {MAX_MEMBER_BYTES} bytes")
    return data


def read_page(data: bytes) -> Image.Image:
    """Decode a page safely (imageio.decode: truncation, bombs, animation, EXIF, 16-bit, alpha), grey stays grey."""
    img, _ = imageio.decode(data, mode="auto", max_side=1 << 30, max_pixels=MAX_PIXELS)
    return img


def encode_page(img: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=3)  # level 6 costs 2x the time for 3% smaller pages
    elif fmt == "jpg":
        img.save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    else:
        img.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


@dataclass
class Summary:
    done: int = 0  # pages written by the processor
    kept: int = 0  # pages the processor declined (copied unchanged into chapters, not written as files)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (page, reason)
    up_to_date: int = 0  # inputs skipped because their output is current
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"done": self.done, "kept": self.kept, "failed": len(self.failed), "up_to_date": self.up_to_date,
                "failures": [{"page": p, "reason": r} for p, r in self.failed], "seconds": round(self.seconds, 3)}


class _Writer:
    """Writes one job's results in page order: a file, or a chapter archive member by member."""

    def __init__(self, job: Job):
        self.job = job
        self.file = self.zip = None
        if job.archive:
            self.file = AtomicFile(job.out)
            self.zip = zipfile.ZipFile(self.file.file, "w", zipfile.ZIP_STORED)
        self.wrote = False
        self.used: set[str] = set()

    def add(self, member: str, data: bytes, fmt: str | None = None) -> None:
        """`data` under the member's safe, unique name; `fmt`: the page was converted to that format."""
        if self.zip is not None:
            info = zipfile.ZipInfo(unique_name(member, fmt, self.used), ZIP_TIME)
            # Pages are already compressed images; anything else (ComicInfo.xml, a stray BMP) is deflated.
            info.compress_type = zipfile.ZIP_STORED if is_page(member) else zipfile.ZIP_DEFLATED
            self.zip.writestr(info, data)
        else:
            atomic_write(self.job.out, data)  # a file job has exactly one page
        self.wrote = True

    def close(self) -> bool:
        if self.zip is not None:
            if self.wrote:
                self.file.commit(self.zip.close)
            else:
                self.abort()
        return self.wrote

    def abort(self) -> None:
        """An interrupted run leaves no partial chapter behind (its output, if any, is the previous complete one)."""
        if self.zip is not None:
            try:
                self.zip.close()
            except (OSError, ValueError):
                pass
            self.file.discard()


@contextmanager
def _closing(writers: dict, archives: dict):
    try:
        yield
    finally:
        for w in writers.values():  # only unfinished jobs are left here
            w.abort()
        for zf in archives.values():
            zf.close()


def _written(rec: dict) -> set[str]:
    """The outputs a record names: those of its current settings, and every one written before under others."""
    current = {e["output"] for e in (rec.get("outputs") or {}).values() if isinstance(e, dict) and e.get("output")}
    return current | {o for o in rec.get("owned") or [] if isinstance(o, str)}


def ours(record: Path) -> set[str]:
    """Every output that onepunch recorded writing into this record's folder (any settings, any run, any rank)."""
    paths = {record, *record.parent.glob(".onepunch-*.json")}
    return {o for p in paths for o in _written(read_json(p) or {})}


def check_clobber(jobs: list[Job], record: Path, overwrite: bool) -> None:
    """Refuse, before any work, to replace a file in the output folder that onepunch did not write."""
    if overwrite:
        return
    mine = ours(record)
    for j in jobs:
        if j.out.exists() and str(j.out) not in mine:
            raise UserError(f"{j.out} exists and was not written by onepunch: choose another `out`, or set "
                            "`overwrite` to replace it")


def _pixels(futures) -> int:
    """Decoded pixels held by the finished page loads among `futures`."""
    n = 0
    for f in futures:
        if f.done() and not f.exception() and (img := f.result().image) is not None:
            n += img.width * img.height
    return n


def is_current(job: Job, entry: dict | None, input_sha256: str) -> bool:
    """A record's entry still stands for its job: the same input, not failed, and its output intact (or the page
    kept as it was, already in color). The one rule for a rerun's skips and for `onepunch status`."""
    return bool(entry) and not entry.get("failed") and entry["input_sha256"] == input_sha256 and bool(
        entry.get("kept") or (job.out.is_file() and sha256_file(job.out) == entry["output_sha256"]))


def up_to_date(jobs: list[Job], outputs: dict) -> bool:
    """Every job is current in a record's outputs (nothing for a rerun to do)."""
    return all(is_current(j, outputs.get(str(j.source)), sha256_file(j.source)) for j in jobs)


def run(jobs: list[Job], process: Callable[[list[Image.Image], list[str]], list[Image.Image | None]], *, fmt: str,
        quality: int, batch_size: int, record: Path, settings: dict, log, what: str = "pages",
        threads: int = min(4, os.cpu_count() or 1), overwrite: bool = False) -> Summary:
    """Feed every page through `process(images, names)` in batches and write the outputs (a page's name: its file
    name, or its member name in a chapter). `settings` (JSON-able) are what the outputs depend on besides the
    inputs: a change redoes everything."""
    record.parent.mkdir(parents=True, exist_ok=True)
    # One run at a time writes into a record's folder (a second is refused before any work), so no run can drop
    # another's entries from the record, and onepunch never disowns a file it wrote.
    with exclusive(record.with_name(record.name + ".lock"), f"onepunch {what}"):
        return _run(jobs, process, fmt=fmt, quality=quality, batch_size=batch_size, record=record, settings=settings,
                    log=log, what=what, threads=threads, overwrite=overwrite)


@dataclass
class Plan:
    """What a run over pages has to do (the up-to-date rule of `is_current`, applied once per input)."""
    todo: list[tuple[Job, str]]  # jobs whose outputs are not current, with their inputs' sha256
    done: dict  # the record's entries that stand
    owned: set[str]  # every output written before, under any settings: still ours after this run
    up_to_date: int


def plan(jobs: list[Job], record: Path, settings_hash: str) -> Plan:
    old = read_json(record) or {}
    done = dict(old.get("outputs", {})) if old.get("settings_hash") == settings_hash else {}
    todo, current = [], 0
    for job in jobs:
        sha = sha256_file(job.source)
        if is_current(job, done.get(str(job.source)), sha):
            current += 1
        else:
            done.pop(str(job.source), None)
            todo.append((job, sha))
    return Plan(todo, done, _written(old), current)


@dataclass
class Page:
    """One page, or one other member of a chapter, on its way through a run."""
    job: int  # its job's index in the plan's todo
    member: str | None  # its name in a chapter; None for a file
    data: bytes = b""  # its bytes as read: a chapter keeps them where no new page replaces them
    image: Image.Image | None = None  # decoded (pages only), until the processor has seen it
    error: str = ""  # why it failed: read, decode or process
    kept: bool = False  # the processor declined it (already in color)
    encoded: Future | None = None  # the processor's page, being encoded

    @property
    def passes_through(self) -> bool:
        """A chapter member that is not a page (ComicInfo.xml), read fine: copied, not counted."""
        return self.member is not None and not is_page(self.member) and not self.error


def _load(k: int, job: Job, member: str | None, archive: zipfile.ZipFile | None) -> Page:
    p = Page(k, member)
    try:
        p.data = read_member(archive, member) if member is not None else job.source.read_bytes()
        if member is None or is_page(member):
            p.image = read_page(p.data)
    except imageio.Reject as e:
        p.error = str(e)
    except Exception as e:  # one bad page must not stop the others
        p.error = f"{type(e).__name__}: {e}"
    return p


def _run(jobs, process, *, fmt, quality, batch_size, record, settings, log, what, threads, overwrite) -> Summary:
    t0 = time.perf_counter()
    check_clobber(jobs, record, overwrite)
    settings_hash = digest(settings)
    todo = plan(jobs, record, settings_hash)
    summary, done = Summary(up_to_date=todo.up_to_date), todo.done

    # Open the chapters and flatten to (job index, member name or None for a file).
    items: list[tuple[int, str | None]] = []
    archives: dict[int, zipfile.ZipFile] = {}
    for k, (job, _) in enumerate(todo.todo):
        if not job.archive:
            items.append((k, None))
            continue
        try:
            zf = zipfile.ZipFile(job.source)
            check_archive(zf)
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as e:
            summary.failed.append((str(job.source), f"not a readable zip: {e}"))
            continue
        except imageio.Reject as e:
            zf.close()
            summary.failed.append((str(job.source), str(e)))
            log.print(f"[red]failed[/] {job.source}: {e}")
            continue
        archives[k] = zf
        job.members = sorted(dict.fromkeys(names), key=natural_key)  # a repeated name is read once
        items += [(k, m) for m in job.members]

    writers: dict[int, _Writer] = {}
    failed_jobs: set[int] = set()
    remaining = {k: (len(todo.todo[k][0].members) if todo.todo[k][0].archive else 1) for k in {k for k, _ in items}}

    def save() -> None:
        current = {e["output"] for e in done.values() if e.get("output")}
        write_json(record, {"settings": settings, "settings_hash": settings_hash, "outputs": done,
                            "owned": sorted((todo.owned | current) - current), "counts": summary.as_dict()})

    def writer(k: int) -> _Writer:
        if k not in writers:
            writers[k] = _Writer(todo.todo[k][0])
        return writers[k]

    def finish_job(k: int) -> None:
        job, sha = todo.todo[k]
        w = writers.pop(k, None)
        if w is not None and w.close():  # a job with failed pages is recorded as ours but retried next run
            done[str(job.source)] = {"input_sha256": sha, "output": str(job.out), "output_sha256": sha256_file(job.out),
                                     **({"failed": True} if k in failed_jobs else {})}
        elif k in failed_jobs:
            return
        else:  # a single page left alone (already in color)
            done[str(job.source)] = {"input_sha256": sha, "output": None, "kept": True}
        save()

    def write(p: Page) -> None:
        job = todo.todo[p.job][0]
        if p.encoded is not None:
            writer(p.job).add(p.member or "", p.encoded.result(), fmt)
            summary.done += 1
        elif p.kept:
            summary.kept += 1
            if p.member is not None:
                writer(p.job).add(p.member, p.data)
        elif p.error:
            where = f"{job.source}:{p.member}" if p.member else str(job.source)
            summary.failed.append((where, p.error))
            failed_jobs.add(p.job)
            log.print(f"[red]failed[/] {where}: {p.error}")
            if p.member is not None and p.data:
                writer(p.job).add(p.member, p.data)  # a chapter keeps every page, in order
        else:
            writer(p.job).add(p.member, p.data)

    n_pages = sum(1 for _, m in items if m is None or is_page(m))
    with _closing(writers, archives), ThreadPoolExecutor(threads) as pool, progress(log) as bar:
        task = bar.add_task(what, total=n_pages, unit="page")
        ahead: deque = deque()
        it = iter(items)
        while True:
            # Decode ahead, but hold at most PIXEL_BUDGET decoded pixels: huge pages come one or two at a time.
            while len(ahead) < 2 * batch_size and _pixels(ahead) < PIXEL_BUDGET and (nxt := next(it, None)) is not None:
                k, member = nxt
                ahead.append(pool.submit(_load, k, todo.todo[k][0], member, archives.get(k)))
            if not ahead:
                break
            batch: list[Future] = []
            while ahead and len(batch) < batch_size and _pixels(batch) < PIXEL_BUDGET:
                batch.append(ahead.popleft())
            loaded = [f.result() for f in batch]
            readable = [p for p in loaded if p.image is not None]
            names = [p.member if p.member is not None else todo.todo[p.job][0].source.name for p in readable]
            try:
                outs = list(process([p.image for p in readable], names)) if readable else []
            except Exception as e:  # the processor failing on a batch fails its pages, not the run
                outs = [e] * len(readable)
            for p, res in zip(readable, outs, strict=True):
                p.image = None
                if isinstance(res, Exception):
                    p.error = f"{type(res).__name__}: {res}"
                elif res is None:
                    p.kept = True
                else:
                    p.encoded = pool.submit(encode_page, res, fmt, quality)
            for p in loaded:
                write(p)
                if not p.passes_through:
                    bar.update(task, advance=1)
                remaining[p.job] -= 1
                if remaining[p.job] == 0:
                    finish_job(p.job)
    summary.seconds = time.perf_counter() - t0
    if todo.todo:
        save()
    return summary


def split(jobs: list[Job], out: Path, name: str, rank: Rank | None) -> tuple[list[Job], Path]:
    """This rank's inputs (every world-th, no communication needed) and its own record file."""
    rank = rank or Rank()
    if rank.world == 1:
        return jobs, out / f".onepunch-{name}.json"
    return [j for i, j in enumerate(jobs) if rank.owns(i)], out / f".onepunch-{name}.rank{rank.rank}-of-{rank.world}.json"


def report(s: Summary, out: Path, log, verb: str) -> None:
    """The one-line end of a run over pages, then each failure."""
    rate = s.done / s.seconds if s.seconds else 0.0
    parts = [f"{s.done} page(s) {verb} ({rate:.2f} pages/s)"]
    if s.kept:
        parts.append(f"{s.kept} already in color, left alone (--force colorizes them; in chapters they are kept "
                     "as they are)")
    if s.up_to_date:
        parts.append(f"{s.up_to_date} input(s) up to date")
    if s.failed:
        parts.append(f"[red]{len(s.failed)} failed[/]")
    log.print(f"[green]done[/]: {'; '.join(parts)} -> {out}")
    for page, reason in s.failed:
        log.print(f"  [red]failed[/] {page}: {reason}")
