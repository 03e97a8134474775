"""Stage 3, `build-pairs`: run a scan generator over every color shard and write paired (scan, color) shards.

    onepunch build-pairs --ckpt runs/demo/train-scan/scan.pt            # default: the pipeline's own scan.pt
    onepunch build-pairs --method xdog                                  # the analytic baseline, no weights
    onepunch build-pairs --method folder --pairs-dir mine/              # pairs you own (scan/, color/): no shards
    torchrun --nproc_per_node 8 -m onepunch build-pairs --ckpt scan.pt --pipeline pipelines/danbooru2020.toml

One output shard per input color shard (train and val): `runs/<pipeline>/pairs/<split>-NNNNNN.tar`, each sample
`KEY.color.jpg` (the shard's bytes, untouched), `KEY.scan.png` (generated at the image's full size) and `KEY.json`
(the color sample's metadata plus how the scan was made). Loader processes decode, the main process runs the
generator in batches of same-size images, a writer thread encodes and writes, so the three overlap. A shard's digest
covers its input shard's sha256, the checkpoint's sha256 and the settings: a rerun skips done shards, a new checkpoint
rebuilds them all, a killed run resumes byte-identical. Pairs a user owns (`pairs_dir`: scan/ and color/ with the same
file names) become `folder-<split>-NNNNNN.tar` shards with the same members, alone (`method = "folder"`) or beside the
generated ones.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from onepunch import __version__, data, imageio, pairs, pipeline, scanners, train
from onepunch.config import PipelineConfig, digest
from onepunch.dist import Rank, rank_info
from onepunch.manifest import FORMAT, exclusive, read_json, write_json
from onepunch.shardwork import ShardOut, is_done, stats_path, wait_for
from onepunch.ui import console, progress

NAME = "build-pairs"
SPLITS = pipeline.SPLITS


def _tasks(cfg: PipelineConfig, inputs: dict) -> list[dict]:
    """One task per input color shard, in manifest order; then the folder pairs, in shards of samples_per_shard."""
    tasks = []
    if "shards_manifest" in inputs:
        tasks += _generated_tasks(cfg, inputs, read_json(inputs["shards_manifest"]))
    if cfg.build_pairs.pairs_dir:
        tasks += _folder_tasks(cfg)
    return tasks


def _folder_tasks(cfg: PipelineConfig) -> list[dict]:
    """Pairs the user owns, split into train/val by a hash of the name (the shards rule); a task's digest covers its
    files' names, sizes and mtimes and the settings."""
    found = pairs.find(cfg.build_pairs.pairs_dir)
    by_split = {s: [p for p in found if pipeline.split_of(cfg, p.name) == s] for s in SPLITS}
    settings = {**pipeline.settings(cfg, NAME), "max_side": cfg.shards.max_side, "image_format": cfg.shards.image_format,
                "jpeg_quality": cfg.shards.jpeg_quality}
    tasks, n = [], cfg.shards.samples_per_shard
    for split, items in by_split.items():
        for i in range(0, len(items), n):
            chunk = items[i: i + n]
            tasks.append({"split": split, "pairs": [[p.name, str(p.scan), str(p.color)] for p in chunk],
                          "count": len(chunk), "output": str(pipeline.out_dir(cfg, NAME) / f"folder-{split}-{i // n:06d}.tar"),
                          "digest": digest({"fingerprint": pairs.fingerprint(chunk), "settings": settings})})
    return tasks


def _generated_tasks(cfg: PipelineConfig, inputs: dict, shards_m: dict) -> list[dict]:
    root_in, tasks = Path(shards_m["root"]), []
    for split in SPLITS:
        for s in shards_m["domains"]["colors"][split]["shards"]:
            d = digest({"input_sha256": s["sha256"], "ckpt_sha256": inputs.get("ckpt_sha256"),
                        "settings": pipeline.settings(cfg, NAME)})
            tasks.append({"split": split, "input": str(root_in / s["path"]), "count": s["count"],
                          "output": str(pipeline.out_dir(cfg, NAME) / Path(s["path"]).name), "digest": d})
    return tasks


# ------------------------------------------------------------------------------------------------------ writing
class Writer(threading.Thread):
    """Encodes scans and writes shards in order, off the main thread. Items: ("open", task) / ("samples", list) /
    ("close", None); an exception is kept and re-raised by `join_checked`."""

    def __init__(self, cfg: PipelineConfig, inputs: dict):
        super().__init__(daemon=True)
        self.q: queue.Queue = queue.Queue(maxsize=8)
        # PNG/JPEG encoding (~1-2 ms a scan) on one thread capped the stage near 500-1,000 img/s; Pillow releases
        # the GIL while it encodes, so a pool of encoders runs in parallel (in order: map keeps it).
        self.pool = ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="encode")
        self.cfg, self.inputs, self.error = cfg, inputs, None
        self.scan_info = {"method": inputs["method"], **({"ckpt_sha256": inputs["ckpt_sha256"]}
                                                         if "ckpt_sha256" in inputs else {})}

    def run(self):
        out, task, count = None, None, 0
        b = self.cfg.build_pairs
        try:
            while (item := self.q.get()) is not None:
                kind, payload = item
                if kind == "open":
                    task, count = payload, 0
                    out = ShardOut(task["output"]).__enter__()
                elif kind == "samples":
                    bodies = self.pool.map(lambda scan: imageio.encode(Image.fromarray(scan, "L"), b.scan_format,
                                                                       b.jpeg_quality), [p[3] for p in payload])
                    for (key, color, meta, _), body in zip(payload, bodies, strict=True):
                        meta = {**json.loads(meta), "scan": self.scan_info}
                        out.add(f"{key}.color.{self.cfg.shards.image_format}", color)
                        out.add(f"{key}.scan.{b.scan_format}", body)
                        out.add(f"{key}.json", json.dumps(meta, sort_keys=True).encode())
                        count += 1
                else:
                    out.__exit__(None, None, None)
                    out.finish(task["digest"], count)
                    out = None
        except BaseException as e:  # surfaced by join_checked in the main thread
            self.error = e
            if out is not None:
                out.__exit__(type(e), e, None)
            while self.q.get() is not None:  # drain so the producer never blocks
                pass
        finally:
            self.pool.shutdown()

    def put(self, kind, payload=None):
        if self.error is not None:
            raise self.error
        self.q.put((kind, payload))

    def join_checked(self):
        self.q.put(None)
        self.join()
        if self.error is not None:
            raise self.error


# ---------------------------------------------------------------------------------------------------------- run
def run(cfg: PipelineConfig, rank: Rank | None = None) -> dict | None:
    """Build the pairs (or find them done). Returns the manifest (None on a rank that left it to another)."""
    rank = rank or rank_info()
    log = console(rank.is_main)
    inputs = pipeline.inputs(cfg, NAME)
    if pipeline.state(cfg, NAME, inputs) == "done":
        log.print(f"[green]build-pairs up to date[/]: {pipeline.manifest_path(cfg, NAME)}; nothing to do")
        return read_json(pipeline.manifest_path(cfg, NAME))
    tasks = _tasks(cfg, inputs)
    lock = pipeline.out_dir(cfg, NAME) / (".lock" if rank.world == 1 else f".lock-{rank.rank}-of-{rank.world}")
    with exclusive(lock, "onepunch build-pairs"):
        env = train.setup(cfg.build_pairs.device)
        mine = [(i, t) for i, t in enumerate(tasks) if rank.owns(i) and not is_done(t["output"], t["digest"])]
        t0 = time.perf_counter()
        generated = [(i, t) for i, t in mine if "pairs" not in t]
        n = _build(cfg, inputs, generated, env, log) if generated else 0
        if folder := [t for _, t in mine if "pairs" in t]:
            n += _build_folder(cfg, folder, log)
        items = [(Path(t["output"]), t["digest"]) for t in tasks]
        if not all(is_done(p, d) for p, d in items):
            if rank.launched and rank.is_main:
                wait_for(items, log)
            else:
                log.print(f"rank {rank.rank}/{rank.world}: my pair shards are done; the manifest is written when all are")
                return None
        m = _finalize(cfg, inputs, tasks)
        log.print(f"[green]build-pairs done[/]: {n} pairs in {time.perf_counter() - t0:.1f}s; "
                  f"train {m['splits']['train']['count']}, val {m['splits']['val']['count']} -> {pipeline.out_dir(cfg, NAME)}")
        return m


def _scanner(cfg: PipelineConfig, inputs: dict, env: train.Env):
    b = cfg.build_pairs
    if b.method == "xdog":
        return scanners.XDoGScanner(b.xdog_sigma, b.xdog_k, b.xdog_tau, b.xdog_eps, b.xdog_phi)
    return scanners.GeneratorScanner(inputs["ckpt"], env, b.batch_size, levels=(b.paper_level, b.ink_level))


def _build(cfg: PipelineConfig, inputs: dict, mine: list[tuple[int, dict]], env: train.Env, log) -> int:
    b = cfg.build_pairs
    scanner = _scanner(cfg, inputs, env)
    by_pos = dict(mine)
    samples = data.ColorBlocks([(i, t["input"]) for i, t in mine], cfg.shards.image_format)
    loader = torch.utils.data.DataLoader(samples, batch_size=None, num_workers=b.workers,
                                         prefetch_factor=8 if b.workers else None)
    # iter() forks the decode workers now, before the writer's and the progress bar's threads start
    stream = data.unblock(iter(loader))
    writer = Writer(cfg, inputs)
    writer.start()
    current, chunk, done = None, [], 0
    with progress(log) as bar:
        task = bar.add_task("pairs", total=sum(t["count"] for _, t in mine), unit="img")

        def flush():
            nonlocal chunk, done
            if chunk:
                scans = scanner([c[4] for c in chunk])
                writer.put("samples", [(k, col, meta, s) for (_, k, col, meta, _), s in zip(chunk, scans, strict=True)])
                done += len(chunk)
                bar.update(task, completed=done)
                chunk = []

        pending = [i for i, _ in mine]
        for sample in stream:
            pos = sample[0]
            while current != pos:  # shards without samples still get their (empty) output, in order
                flush()
                if current is not None:
                    writer.put("close")
                current = pending.pop(0)
                writer.put("open", by_pos[current])
            chunk.append(sample)
            if len(chunk) >= 4 * b.batch_size:
                flush()
        flush()
        if current is not None:
            writer.put("close")
        for pos in pending:  # trailing empty shards
            writer.put("open", by_pos[pos])
            writer.put("close")
        writer.join_checked()
    return done


def _build_folder(cfg: PipelineConfig, tasks: list[dict], log) -> int:
    """Write the user's own pairs as pairs shards: the same members as generated ones; a bad or mismatched pair is
    skipped and counted by reason (never altered)."""
    b, s = cfg.build_pairs, cfg.shards
    done = 0
    with progress(log) as bar:
        task_bar = bar.add_task("folder pairs", total=sum(t["count"] for t in tasks), unit="pair")
        for t in tasks:
            rejected, count = Counter(), 0
            with ShardOut(t["output"]) as out:
                for name, scan_path, color_path in t["pairs"]:
                    p = pairs.Pair(name, Path(scan_path), Path(color_path))
                    try:
                        scan, color = pairs.load(p, s.max_side)
                    except imageio.Reject as e:
                        rejected[e.reason] += 1
                        continue
                    except OSError:
                        rejected["read_error"] += 1
                        continue
                    meta = {"id": p.key, "source": f"pairs:{name}", "width": int(color.shape[1]),
                            "height": int(color.shape[0]), "scan": {"method": "folder"}}
                    out.add(f"{p.key}.color.{s.image_format}",
                            imageio.encode(Image.fromarray(color, "RGB"), s.image_format, s.jpeg_quality))
                    out.add(f"{p.key}.scan.{b.scan_format}",
                            imageio.encode(Image.fromarray(scan, "L"), b.scan_format, b.jpeg_quality))
                    out.add(f"{p.key}.json", json.dumps(meta, sort_keys=True).encode())
                    count += 1
                    bar.advance(task_bar)
            out.finish(t["digest"], count, rejected=dict(sorted(rejected.items())))
            done += count
    return done


def _finalize(cfg: PipelineConfig, inputs: dict, tasks: list[dict]) -> dict:
    splits = {s: {"count": 0, "bytes": 0, "shards": []} for s in SPLITS}
    rejected = Counter()
    for t in tasks:
        st = read_json(stats_path(t["output"]))
        rejected.update(st.get("rejected", {}))
        e = splits[t["split"]]
        e["shards"].append({"path": Path(t["output"]).name, "count": st["count"], "bytes": st["bytes"],
                            "sha256": st["sha256"]})
        e["count"] += st["count"]
        e["bytes"] += st["bytes"]
    lost = sum(t["count"] for t in tasks) - sum(e["count"] for e in splits.values()) - sum(rejected.values())
    m = {"stage": NAME, "format": FORMAT, "pipeline": cfg.name, "config": cfg.section("build_pairs"),
         "config_hash": pipeline.config_hash(cfg, NAME, inputs), "inputs": inputs, "root": str(pipeline.out_dir(cfg, NAME)), "splits": splits,
         "tasks": tasks, "totals": {"pairs": sum(e["count"] for e in splits.values()), "missing": lost},
         "rejected": dict(sorted(rejected.items())),
         "members": {"color": f"color.{cfg.shards.image_format}", "scan": f"scan.{cfg.build_pairs.scan_format}",
                     "json": "json"},
         "versions": {"onepunch": __version__, "torch": torch.__version__, "python": platform.python_version()}}
    if lost:
        raise RuntimeError(f"{lost} input samples have no pair: the pair shards do not match their inputs")
    write_json(pipeline.manifest_path(cfg, NAME), m)
    return m
