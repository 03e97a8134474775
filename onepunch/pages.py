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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from onepunch import imageio
from onepunch.config import digest
from onepunch.errors import UserError
from onepunch.manifest import atomic_write, read_json, sha256_file, write_json
from onepunch.ui import progress

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
ARCHIVE_EXTS = {".cbz", ".zip"}
FORMATS = ("png", "jpg", "webp")
MAX_PIXELS = 250_000_000  # a 15,000 x 15,000 spread is fine; a decompression bomb is not
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


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


def _is_page(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return Path(name).suffix.lower() in IMAGE_EXTS and not base.startswith(".") and "__MACOSX" not in name


def discover(inputs: list[Path], out: Path, fmt: str) -> list[Job]:
    """Jobs for files, folders (recursive) and archives; UserError on a missing input, an unknown file type, two
    inputs writing the same output, or an output that would land on an input."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not inputs:
        raise UserError("no inputs: give image files, folders or .cbz/.zip chapters")
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
            files = [f for f in root.rglob("*") if f.is_file() and not f.name.startswith(".")
                     and f.suffix.lower() in IMAGE_EXTS | ARCHIVE_EXTS and not f.resolve().is_relative_to(out)]
            for f in sorted(files, key=lambda f: natural_key(str(f.relative_to(root)))):
                add(f, out / root.name / f.relative_to(root))
        elif p.suffix.lower() in IMAGE_EXTS | ARCHIVE_EXTS:
            add(p.resolve(), out / p.name)
        else:
            raise UserError(f"{p}: not an image ({', '.join(sorted(IMAGE_EXTS))}) or a .cbz/.zip chapter")
    sources = {j.source for j in jobs}
    seen: dict[Path, Path] = {}
    for j in jobs:
        if j.out in sources:
            raise UserError(f"output {j.out} would overwrite an input: choose another --out")
        if j.out in seen:
            raise UserError(f"{seen[j.out]} and {j.source} would both write {j.out}: colorize them separately")
        seen[j.out] = j.source
    return jobs


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
        self.tmp = job.out.with_name(f".{job.out.name}.tmp-{os.getpid()}")
        self.zip = None
        if job.archive:
            job.out.parent.mkdir(parents=True, exist_ok=True)
            self.zip = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED)
        self.wrote = False

    def add(self, name: str, data: bytes) -> None:
        if self.zip is not None:
            self.zip.writestr(zipfile.ZipInfo(name, ZIP_TIME), data)
        else:
            atomic_write(self.job.out, data)  # a file job has exactly one page
        self.wrote = True

    def close(self) -> bool:
        if self.zip is not None:
            self.zip.close()
            if self.wrote:
                os.replace(self.tmp, self.job.out)
            else:
                self.tmp.unlink(missing_ok=True)
        return self.wrote

    def abort(self) -> None:
        """An interrupted run leaves no partial chapter behind (its output, if any, is the previous complete one)."""
        if self.zip is not None:
            self.zip.close()
            self.tmp.unlink(missing_ok=True)


@contextmanager
def _closing(writers: dict, archives: dict):
    try:
        yield
    finally:
        for w in writers.values():  # only unfinished jobs are left here
            w.abort()
        for zf in archives.values():
            zf.close()


def run(jobs: list[Job], process: Callable[[list[Image.Image]], list[Image.Image | None]], *, fmt: str,
        quality: int, batch_size: int, record: Path, settings: dict, log, what: str = "pages",
        threads: int = min(4, os.cpu_count() or 1)) -> Summary:
    """Feed every page through `process` in batches and write the outputs. `settings` (JSON-able) are what the
    outputs depend on besides the inputs: a change redoes everything."""
    t0 = time.perf_counter()
    summary = Summary()
    settings_hash = digest(settings)
    old = read_json(record) or {}
    done: dict = old.get("outputs", {}) if old.get("settings_hash") == settings_hash else {}
    todo: list[tuple[Job, str]] = []
    for job in jobs:
        key = str(job.source)
        entry = done.get(key)
        sha = sha256_file(job.source)
        if entry and entry["input_sha256"] == sha and (
                entry.get("kept") or (job.out.is_file() and sha256_file(job.out) == entry["output_sha256"])):
            summary.up_to_date += 1
            continue
        done.pop(key, None)
        todo.append((job, sha))

    # Flatten to pages: (job index, member name or None for a file).
    pages: list[tuple[int, str | None]] = []
    archives: dict[int, zipfile.ZipFile] = {}
    for k, (job, _) in enumerate(todo):
        if job.archive:
            try:
                zf = zipfile.ZipFile(job.source)
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
            except (zipfile.BadZipFile, OSError) as e:
                summary.failed.append((str(job.source), f"not a readable zip: {e}"))
                continue
            archives[k] = zf
            job.members = sorted(names, key=natural_key)
            pages += [(k, m) for m in job.members]
        else:
            pages.append((k, None))

    def load(k: int, member: str | None):
        job = todo[k][0]
        if member is not None and not _is_page(member):
            return "copy", archives[k].read(member)
        data = b""
        try:
            data = archives[k].read(member) if member is not None else job.source.read_bytes()
            return "page", (data, read_page(data))
        except imageio.Reject as e:
            return "failed", (data, str(e))
        except Exception as e:  # one bad page must not stop the others
            return "failed", (data, f"{type(e).__name__}: {e}")

    def out_name(member: str) -> str:
        return str(Path(member).with_suffix(f".{fmt}")) if _is_page(member) else member

    writers: dict[int, _Writer] = {}
    failed_jobs: set[int] = set()
    remaining = {k: (len(todo[k][0].members) if todo[k][0].archive else 1) for k in {k for k, _ in pages}}

    def finish_page(k: int) -> None:
        remaining[k] -= 1
        if remaining[k] == 0:
            job, sha = todo[k]
            w = writers.pop(k, None)
            wrote = w is not None and w.close()
            if k in failed_jobs:
                return  # a job with failures is retried next run
            if wrote:
                done[str(job.source)] = {"input_sha256": sha, "output": str(job.out),
                                         "output_sha256": sha256_file(job.out)}
            else:  # a single page left alone (already in color)
                done[str(job.source)] = {"input_sha256": sha, "output": None, "kept": True}
            save()

    def save() -> None:
        write_json(record, {"settings": settings, "settings_hash": settings_hash, "outputs": done,
                            "counts": summary.as_dict()})

    def writer(k: int) -> _Writer:
        if k not in writers:
            writers[k] = _Writer(todo[k][0])
        return writers[k]

    n_pages = sum(1 for k, m in pages if m is None or _is_page(m))
    with _closing(writers, archives), ThreadPoolExecutor(threads) as pool, progress(log) as bar:
        task = bar.add_task(what, total=n_pages, unit="page")
        ahead: deque = deque()
        it = iter(pages)
        while True:
            while len(ahead) < 2 * batch_size and (nxt := next(it, None)) is not None:
                ahead.append((nxt, pool.submit(load, *nxt)))
            if not ahead:
                break
            batch = []
            while ahead and len(batch) < batch_size:
                (k, member), fut = ahead.popleft()
                batch.append((k, member, *fut.result()))
            imgs = [payload[1] for _, _, kind, payload in batch if kind == "page"]
            try:
                outs = iter(process(imgs)) if imgs else iter(())
            except Exception as e:  # the processor failing on a batch fails its pages, not the run
                outs = iter([e] * len(imgs))
            results = []
            for k, member, kind, payload in batch:
                if kind == "page":
                    res = next(outs)
                    if isinstance(res, Exception):
                        results.append((k, member, "failed", (payload[0], f"{type(res).__name__}: {res}")))
                    elif res is None:
                        results.append((k, member, "kept", payload[0]))
                    else:
                        results.append((k, member, "encode", pool.submit(encode_page, res, fmt, quality)))
                else:
                    results.append((k, member, kind, payload))
            for k, member, kind, payload in results:
                job = todo[k][0]
                if kind == "encode":
                    writer(k).add(out_name(member) if member else "", payload.result())
                    summary.done += 1
                elif kind == "kept":
                    summary.kept += 1
                    if member is not None:
                        writer(k).add(member, payload)
                elif kind == "copy":
                    writer(k).add(member, payload)
                else:
                    data, reason = payload
                    where = f"{job.source}:{member}" if member else str(job.source)
                    summary.failed.append((where, reason))
                    failed_jobs.add(k)
                    log.print(f"[red]failed[/] {where}: {reason}")
                    if member is not None and data:
                        writer(k).add(member, data)  # a chapter keeps every page, in order
                if kind != "copy":
                    bar.update(task, advance=1)
                finish_page(k)
    summary.seconds = time.perf_counter() - t0
    if todo:
        save()
    return summary
