"""Stage 1, `shards`: filter a dataset by tags into WebDataset shards, one set per domain and split.

    onepunch shards                                                     # embedded sample, pipelines/demo.toml
    onepunch shards --pipeline pipelines/danbooru2020.toml --source /data/danbooru2020
    torchrun --nproc_per_node 4 -m onepunch shards --pipeline ...       # each rank builds every 4th shard

Plan (main process, streaming): read records, give each to the first domain whose query matches, dedupe md5, choose
the split from a hash of the id, cut into shards of `samples_per_shard`; each shard's digest covers its records and
the settings that change its bytes. Build (worker processes, a whole shard each): decode safely, resize, encode, write
`<domain>/<split>-NNNNNN.tar` under a temp name, rename, then write its `.stats.json` last: a shard with a stats file
of the right digest is done and is never rebuilt. Finalize (whoever sees every shard done): remove shards no longer
in the plan, write `rejects.jsonl` and the manifest `manifests/<pipeline>/shards.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import queue
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import PIL
from PIL import features
from rich.console import Console
from rich.table import Table

from onepunch import __version__, imageio, pipeline, sources
from onepunch.config import PipelineConfig, digest
from onepunch.dist import Rank, exit_with, rank_info
from onepunch.errors import UserError
from onepunch.manifest import FORMAT, AtomicFile, exclusive, read_json, write_json
from onepunch.query import why_not
from onepunch.shardwork import ShardOut, is_done, stats_path, wait_for
from onepunch.ui import console as make_console
from onepunch.ui import progress as _progress

NAME = "shards"
SHARD_FORMAT = 1  # bump when the bytes written for the same input and config change


@dataclass
class Task:
    domain: str
    split: str
    index: int
    digest: str
    count: int

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.split}-{self.index:06d}"


def _shard_settings(cfg: PipelineConfig, domain: str) -> dict:
    q = cfg.domains[domain]
    s = cfg.shards
    return {"format": SHARD_FORMAT, "max_side": s.max_side, "image_format": s.image_format,
            "jpeg_quality": s.jpeg_quality, "max_pixels": s.max_pixels, "mode": q.mode, "min_side": q.min_side,
            "min_aspect": q.min_aspect, "max_aspect": q.max_aspect}


def new_counters(cfg: PipelineConfig) -> dict:
    return {"seen": 0, "filtered": {d: Counter() for d in cfg.domains}, "rejected": Counter(), "rejects": []}


def plan(cfg: PipelineConfig, records: Iterator, counters: dict, on_record=None) -> Iterator[tuple[Task, list]]:
    """Yield (task, records) per shard in a deterministic order, counting what is filtered or rejected."""
    seen_md5: set[bytes] = set()
    buffers: dict[tuple[str, str], list] = {}
    next_index: Counter = Counter()

    def emit(key):
        recs = buffers.pop(key)
        domain, split = key
        d = digest({"settings": _shard_settings(cfg, domain), "records": [r.plan_dict() for r in recs]})
        task = Task(domain, split, next_index[key], d, len(recs))
        next_index[key] += 1
        return task, recs

    for r in records:
        counters["seen"] += 1
        if on_record:
            on_record()
        domain = None
        for name, q in cfg.domains.items():
            reason = why_not(q, r)
            if reason is None:
                domain = name
                break
            counters["filtered"][name][reason] += 1
        if domain is None:
            continue
        if cfg.shards.dedupe_md5:
            md5 = r.md5 or _file_md5(r.path)
            if md5 is not None:
                key = bytes.fromhex(md5)
                if key in seen_md5:
                    counters["rejected"]["duplicate_md5"] += 1
                    counters["rejects"].append((r.id, r.source, "duplicate_md5"))
                    continue
                seen_md5.add(key)
        key = (domain, pipeline.split_of(cfg, r.id))
        buffers.setdefault(key, []).append(r)
        if len(buffers[key]) >= cfg.shards.samples_per_shard:
            yield emit(key)
    for key in sorted(buffers):
        yield emit(key)


def _file_md5(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "md5").hexdigest()
    except OSError:
        return None  # the worker reports it


# --------------------------------------------------------------------------------------------------------- build
_progress_queue = None  # set in each worker process


def _init_worker(q, run_pid: int):
    global _progress_queue
    exit_with(run_pid)  # a killed run leaves no workers behind (nor, once they are gone, the forkserver)
    _progress_queue = q
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would fight them
    imageio.tune_allocator()


def build_shard(tar_path: str, task: Task, records: list, settings: dict) -> dict:
    """Write one shard (temp name, rename), then its stats file. Returns the stats."""
    rejected, rejects, count, pending = Counter(), [], 0, 0
    with ShardOut(tar_path) as out:
        for r in records:
            try:
                data = r.data if r.data is not None else Path(r.path).read_bytes()
                img, (w, h) = imageio.decode(data, mode=settings["mode"], max_side=settings["max_side"],
                                             max_pixels=settings["max_pixels"], min_side=max(1, settings["min_side"]))
                aspect = w / h
                if (settings["min_aspect"] and aspect < settings["min_aspect"]) or \
                        (settings["max_aspect"] and aspect > settings["max_aspect"]):
                    raise imageio.Reject("aspect", f"{w}x{h}")
                body = imageio.encode(img, settings["image_format"], settings["jpeg_quality"])
            except FileNotFoundError:
                rejected["missing_file"] += 1
                rejects.append((r.id, r.source, "missing_file"))
            except OSError as e:
                rejected["read_error"] += 1
                rejects.append((r.id, r.source, f"read_error: {e}"))
            except imageio.Reject as e:
                rejected[e.reason] += 1
                rejects.append((r.id, r.source, e.reason))
            else:
                meta = {"id": r.id, "tags": list(r.tags), "rating": r.rating, "width": w, "height": h,
                        "md5": hashlib.md5(data).hexdigest(), "source": r.source}
                out.add(f"{r.id}.{settings['image_format']}", body)
                out.add(f"{r.id}.json", json.dumps(meta, sort_keys=True).encode())
                count += 1
            pending += 1
            if _progress_queue is not None and pending >= 8:
                _progress_queue.put(pending)
                pending = 0
    if _progress_queue is not None and pending:
        _progress_queue.put(pending)
    return out.finish(task.digest, count, rejected=dict(sorted(rejected.items())), rejects=rejects)


def _done(root: Path, task: Task) -> bool:
    return is_done(root / f"{task.name}.tar", task.digest)


# ----------------------------------------------------------------------------------------------------------- run
def run(cfg: PipelineConfig, rank: Rank | None = None, force: bool = False) -> dict | None:
    """Build the shards and the manifest. Returns the manifest (None on a rank that left it to another)."""
    rank = rank or rank_info()
    log = make_console(rank.is_main)
    root, path = pipeline.out_dir(cfg, NAME), pipeline.manifest_path(cfg, NAME)
    if not force and pipeline.state(cfg, NAME) == "done":
        old = read_json(path)
        log.print(f"[green]shards up to date[/]: {path} ({_total(old)} samples); nothing to do")
        return old
    records, reader_stats = sources.open_source(cfg.source)  # a bad source path fails here, before any output
    lock = root / (".lock" if rank.world == 1 else f".lock-{rank.rank}-of-{rank.world}")
    with exclusive(lock, "onepunch shards"):
        t0 = time.time()
        tasks, counters, built = _plan_and_build(cfg, rank, root, records, log)
        counters["reader"] = reader_stats
        if not all(_done(root, t) for t in tasks):
            if rank.launched and rank.is_main:
                wait_for([(root / f"{t.name}.tar", t.digest) for t in tasks], log)
            else:
                log.print(f"rank {rank.rank}/{rank.world}: my shards are done; the manifest is written when all are")
                return None
        m = _finalize(cfg, root, tasks, counters)
        if rank.is_main:
            _summary(log, m, built, time.time() - t0)
        return m


def _plan_and_build(cfg: PipelineConfig, rank: Rank, root: Path, records: Iterator, log: Console):
    tasks: list[Task] = []
    with tempfile.TemporaryFile(dir=_mkdir(root), prefix=".plan-") as spool, _pool(cfg.shards.workers) as pool, \
            _progress(log) as progress:
        # Plan: stream the source once; own shards that need building go to an on-disk spool (flat memory).
        # The worker pool starts meanwhile.
        reading = progress.add_task("planning", total=None, unit="records")
        offsets, counters = [], new_counters(cfg)
        for task, recs in plan(cfg, records, counters, on_record=lambda: progress.advance(reading)):
            position = len(tasks)
            tasks.append(task)
            if rank.owns(position) and not _done(root, task):
                offsets.append(spool.tell())
                pickle.dump((task, recs), spool)
        progress.update(reading, total=progress.tasks[reading].completed)
        # Build: workers take whole shards; progress counts images.
        total = sum(_peek(spool, o)[0].count for o in offsets)
        building = progress.add_task("building", total=total, unit="img")
        _build_all(cfg, root, pool, spool, offsets, lambda n: progress.advance(building, n))
    return tasks, counters, total


def _peek(spool, offset):
    spool.seek(offset)
    return pickle.load(spool)


@contextmanager
def _pool(workers: int):
    """(executor, progress queue), started now so that worker start-up overlaps planning; (None, None) for 0."""
    if workers == 0:
        yield None, None
        return
    # forkserver, not fork: forking a process that runs threads (the progress bar's) can deadlock. The server
    # preloads this module, so each worker starts in milliseconds.
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    q = ctx.Queue()
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(q, os.getpid())) as pool:
        for _ in range(workers):
            pool.submit(int)  # starts every worker now, in the background
        yield pool, q


def _build_all(cfg: PipelineConfig, root: Path, pool, spool, offsets: list[int], advance) -> None:
    executor, q = pool
    jobs = ((task, recs, _shard_settings(cfg, task.domain)) for task, recs in (_peek(spool, o) for o in offsets))
    if executor is None:
        imageio.tune_allocator()
        for task, recs, settings in jobs:
            build_shard(str(root / f"{task.name}.tar"), task, recs, settings)
            advance(task.count)
        return
    running = set()
    for task, recs, settings in jobs:  # at most 2 shards in flight per worker: memory stays bounded
        while len(running) >= 2 * cfg.shards.workers:
            running = _drain(running, q, advance)
        running.add(executor.submit(build_shard, str(root / f"{task.name}.tar"), task, recs, settings))
    while running:
        running = _drain(running, q, advance)
    _drain_queue(q, advance)


def _drain(running: set, q, advance) -> set:
    done, running = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
    _drain_queue(q, advance)
    for f in done:
        f.result()  # a crash in a worker is a bug: let it surface
    return running


def _drain_queue(q, advance) -> None:
    while True:
        try:
            advance(q.get_nowait())
        except queue.Empty:
            return


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# ------------------------------------------------------------------------------------------------------ finalize
def _finalize(cfg: PipelineConfig, root: Path, tasks: list[Task], counters: dict) -> dict:
    _remove_orphans(root, {t.name for t in tasks})
    domains = {d: {s: {"count": 0, "bytes": 0, "shards": []} for s in ("train", "val")} for d in cfg.domains}
    rejected = Counter(counters["rejected"])
    rejects_path = root / "rejects.jsonl"
    with AtomicFile(rejects_path, "w") as out:  # streamed: memory does not grow with the number of rejects
        for rid, source, reason in counters["rejects"]:
            out.write(json.dumps({"id": rid, "source": source, "reason": reason}) + "\n")
        for t in tasks:
            st = read_json(stats_path(root / f"{t.name}.tar"))
            entry = domains[t.domain][t.split]
            entry["shards"].append({"path": f"{t.name}.tar", "count": st["count"], "bytes": st["bytes"],
                                    "sha256": st["sha256"]})
            entry["count"] += st["count"]
            entry["bytes"] += st["bytes"]
            rejected.update(st["rejected"])
            for rid, source, reason in st["rejects"]:
                out.write(json.dumps({"id": rid, "source": source, "reason": reason}) + "\n")
    written = sum(s["count"] for d in domains.values() for s in d.values())
    n_rejected = sum(rejected.values())
    if written == 0:  # nothing to record as done: say why, and leave no manifest that would call it done
        why = "; ".join(f"[domains.{d}] filtered {dict(c.most_common(3))}" for d, c in counters["filtered"].items()
                        if c)
        raise UserError(f"no samples: {counters['seen']} record(s) read from {cfg.source.kind} source "
                        f"{cfg.source.path!r}" + (f"; {why}" if why else "") +
                        (f"; rejected {dict(rejected.most_common(3))} (see {rejects_path})" if rejected else "") +
                        ": check source.path and the tag queries")
    m = {
        "stage": NAME, "format": FORMAT, "pipeline": cfg.name, "config": pipeline.settings(cfg, NAME),
        "config_hash": pipeline.config_hash(cfg, NAME), "source_fingerprint": sources.fingerprint(cfg.source),
        "versions": _versions(), "root": str(root), "domains": domains,
        "totals": {"records": counters["seen"], "selected": written + n_rejected, "written": written,
                   "rejected": n_rejected, "filtered": counters["seen"] - written - n_rejected},
        "filtered": {d: dict(sorted(c.items())) for d, c in counters["filtered"].items()},
        "rejected": dict(sorted(rejected.items())), "reader": dict(sorted(counters["reader"].items())),
        "rejects_file": str(rejects_path),
    }
    write_json(pipeline.manifest_path(cfg, NAME), m)
    return m


def _remove_orphans(root: Path, names: set[str]) -> None:
    """Shards of an earlier plan that this plan no longer has (a config change): a glob must not pick them up."""
    for p in list(root.glob("*/*.tar")) + list(root.glob("*/*.stats.json")) + list(root.glob("*/.*.tmp-*")):
        name = f"{p.parent.name}/{p.name.split('.')[0]}"
        if p.name.startswith(".") or name not in names:
            p.unlink(missing_ok=True)


def _versions() -> dict:
    return {"onepunch": __version__, "python": platform.python_version(), "pillow": PIL.__version__,
            "libjpeg": features.version("jpg") or "", "zlib": features.version("zlib") or "", "numpy": np.__version__}


def _total(m: dict) -> int:
    return m["totals"]["written"]


# ------------------------------------------------------------------------------------------------------------ UX
def _summary(log: Console, m: dict, built: int, seconds: float) -> None:
    table = Table(title=f"shards: {m['pipeline']}", title_justify="left")
    for col in ("domain", "split", "shards", "samples", "MB"):
        table.add_column(col, justify="right" if col in ("shards", "samples", "MB") else "left")
    for d, splits in m["domains"].items():
        for s, e in splits.items():
            table.add_row(d, s, str(len(e["shards"])), str(e["count"]), f"{e['bytes'] / 1e6:.1f}")
    log.print(table)
    t = m["totals"]
    log.print(f"records {t['records']}, written {t['written']}, filtered {t['filtered']}, rejected {t['rejected']} "
              f"{m['rejected'] or ''}")
    for d, splits in m["domains"].items():
        if splits["train"]["count"] == 0:
            log.print(f"[yellow]warning[/]: domain {d} has no train samples (filtered: {m['filtered'][d]}); "
                      f"stages that need it will refuse to run: check [domains.{d}]")
    rate = built / seconds if seconds > 0 else 0.0
    log.print(f"processed {built} images in {seconds:.1f}s ({rate:.0f} img/s); rejected samples listed in "
              f"{m['rejects_file']}")
