"""The pipeline's spine, in one place: its stages and what each needs, where each writes, what enters each stage's
hash, and whether a stage is done, stale or missing. Stage modules (onepunch/stages/) only run: they find upstream
outputs here (`ready`, `output`), never by asking another stage, and none imports another.

    shards -> train-scan -> build-pairs -> train-color -> eval
                                                       -> colorize (the [colorize] inputs step)

A stage is done when its manifest was made from the current settings and inputs and its outputs are still there with
the checksums it recorded. This module imports no torch: `onepunch status` answers at once.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from dataclasses import dataclass
from pathlib import Path

from onepunch import sources
from onepunch.config import ColorizeConfig, PipelineConfig, digest, hashed
from onepunch.devices import device_type
from onepunch.errors import UserError
from onepunch.manifest import read_json, sha256_file
from onepunch.shardwork import is_done

PAIRS_FORMAT = 1  # build-pairs: bump when the bytes written for the same inputs change
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Stage:
    name: str
    """The CLI command."""
    module: str
    """Its module under onepunch/stages/, imported only to run it: run(cfg) -> manifest."""
    needs: tuple[str, ...]
    """The stages whose outputs it reads (tests/test_layout.py checks them against the calls to `ready`)."""
    out: str
    """Its folder under the pipeline's out_dir."""


GRAPH = (
    Stage("shards", "shards", (), "shards"),
    Stage("train-scan", "train_scan", ("shards",), "train-scan"),
    Stage("build-pairs", "build_pairs", ("shards", "train-scan"), "pairs"),  # scan.pt (or XDoG, or your pairs)
    Stage("train-color", "train_color", ("build-pairs",), "train-color"),
    Stage("eval", "evaluate", ("train-color", "build-pairs", "train-scan"), "eval"),
    Stage("colorize", "colorize", ("train-color",), "colorized"),
)
STAGES = {s.name: s for s in GRAPH}
"""Stage names in pipeline order (every stage after those it needs)."""


# ------------------------------------------------------------------------------------------------ where things are
def manifest_path(cfg: PipelineConfig, stage: str, size: int | None = None) -> Path:
    """manifests/<pipeline>/<stage>.json; train-color's progressive stages: train-color-<size>.json."""
    return cfg.manifest_dir / (f"{stage}-{size}.json" if size else f"{stage}.json")


def out_dir(cfg: PipelineConfig, stage: str) -> Path:
    if stage == "colorize" and cfg.colorize.out:
        return Path(cfg.colorize.out)
    return Path(cfg.out_dir) / STAGES[stage].out


def output(cfg: PipelineConfig, stage: str) -> Path:
    """A training stage's product: train-scan's scan.pt, train-color's color.pt (whether or not it exists yet)."""
    return out_dir(cfg, stage) / {"train-scan": "scan.pt", "train-color": "color.pt"}[stage]


def scan_ckpt(cfg: PipelineConfig) -> Path:
    """The generator build-pairs runs: build_pairs.ckpt, or this pipeline's scan.pt."""
    return Path(cfg.build_pairs.ckpt) if cfg.build_pairs.ckpt else output(cfg, "train-scan")


def color_ckpt(cfg: PipelineConfig) -> Path:
    """The colorizer eval measures: eval.ckpt, or this pipeline's color.pt."""
    return Path(cfg.eval.ckpt) if cfg.eval.ckpt else output(cfg, "train-color")


def eval_scan_ckpt(cfg: PipelineConfig) -> Path | None:
    """The generator eval measures on real pairs: eval.scan_ckpt, or this pipeline's scan.pt when there is one."""
    if cfg.eval.scan_ckpt:
        if not Path(cfg.eval.scan_ckpt).is_file():
            raise UserError(f"eval.scan_ckpt not found: {cfg.eval.scan_ckpt}")
        return Path(cfg.eval.scan_ckpt)
    default = output(cfg, "train-scan")
    return default if default.is_file() else None


def truth_dir(cfg: PipelineConfig) -> Path | None:
    """The embedded sample keeps the true line art of every colored image; other sources have none."""
    d = Path(cfg.source.path) / "truth"
    return d if cfg.source.kind == "sample" and d.is_dir() else None


def split_of(cfg: PipelineConfig, rid: str) -> str:
    """train or val, from a hash of the id (stable as the dataset grows; build-pairs splits folder pairs alike)."""
    h = int.from_bytes(hashlib.sha256(f"{cfg.shards.split_seed}:{rid}".encode()).digest()[:8], "big")
    return "val" if h % 1_000_000 < cfg.shards.val_fraction * 1_000_000 else "train"


def pair_shards(pm: dict, split: str) -> list[tuple[str, int]]:
    """(path, count) of a build-pairs manifest's non-empty shards of one split."""
    return [(str(Path(pm["root"]) / s["path"]), s["count"]) for s in pm["splits"][split]["shards"] if s["count"]]


def held_out(pm: dict) -> str:
    """The split to validate on: val, or train when the val split is empty (a tiny dataset)."""
    return "val" if pm["splits"]["val"]["count"] else "train"


# ------------------------------------------------------------------------------------- what enters a stage's hash
def settings(cfg: PipelineConfig, stage: str) -> dict:
    """The settings a stage's output depends on (config fields marked UNHASHED are left out: config.hashed)."""
    if stage == "shards":
        return {"source": hashed(cfg.source), "domains": {k: hashed(q) for k, q in cfg.domains.items()},
                "shards": hashed(cfg.shards)}
    if stage == "train-scan":
        return hashed(cfg.train_scan)
    if stage == "build-pairs":
        return _pairs_settings(cfg)
    if stage == "train-color":
        return hashed(cfg.train_color)
    if stage == "eval":
        e = hashed(cfg.eval)
        if e["real_pairs"]:  # the real set's scans are made with build-pairs' scanner settings
            b = cfg.build_pairs
            e["scanners"] = {"levels": [b.paper_level, b.ink_level],
                             "xdog": [b.xdog_sigma, b.xdog_k, b.xdog_tau, b.xdog_eps, b.xdog_phi]}
        return e
    if stage == "colorize":
        return colorize_settings(cfg.colorize, output(cfg, "train-color"))
    raise KeyError(stage)


def _pairs_settings(cfg: PipelineConfig) -> dict:
    """What changes build-pairs' bytes (not batch size or workers). The device does for the generator: CPU results
    are bit-exact, CUDA ones (TF32, cuDNN autotuning, bf16) differ in the last bits, so shards made on one are not
    claimed to be the other's."""
    b = cfg.build_pairs
    s = {"format": PAIRS_FORMAT, "scan_format": b.scan_format, "method": b.method}
    if b.method == "ckpt":
        # "auto" resolved as the run resolves it; an explicit device taken as written (status must not fail on it)
        s["device"] = device_type(b.device)
        s["levels"] = [b.paper_level, b.ink_level]
    if b.scan_format == "jpg":
        s["jpeg_quality"] = b.jpeg_quality
    if b.method == "xdog":
        s["xdog"] = [b.xdog_sigma, b.xdog_k, b.xdog_tau, b.xdog_eps, b.xdog_phi]
    return s


def colorize_settings(cc: ColorizeConfig, ckpt: Path) -> dict:
    """What colorize's output bytes depend on (not batch size, device or the input list). working_size 0 means the
    checkpoint's own, which its sha256 pins; hints, hint image and reference count by their contents."""
    steer = {k: sha256_file(p) for k in ("hints", "hint_image", "reference") if (p := getattr(cc, k)) and Path(p).is_file()}
    if cc.follow:  # by content, in order (added 2026-12: a record without it followed nothing)
        steer["follow"] = [sha256_file(p) if Path(p).is_file() else p for p in cc.follow]
    # Tiles share the page's statistics since 2026-12 (tile_passes): a record of tiles without it is redone.
    tiles = {"tile": cc.tile, "overlap": cc.overlap, "tile_passes": cc.tile_passes} if cc.tile else {"tile": 0, "overlap": 0}
    return {"ckpt_sha256": sha256_file(ckpt), "working_size": cc.working_size, "transfer": cc.transfer,
            "chroma": cc.chroma, **tiles, "lettering": cc.lettering, "descreen": cc.descreen, "regions": cc.regions,
            "hint_fill": cc.hint_fill, "threshold": cc.threshold, "force": cc.force, "format": cc.format,
            "quality": cc.quality, **steer}


def inputs(cfg: PipelineConfig, stage: str) -> dict:
    """What a stage reads, by checksum: its upstream manifests (UserError when one is not ready), checkpoints and
    folders."""
    if stage == "shards":
        try:
            return {"source_fingerprint": sources.fingerprint(cfg.source)}
        except Exception as e:  # an unreadable source cannot be up to date; the shards run itself says why
            raise UserError(f"source {cfg.source.path}: {e}") from None
    if stage == "train-scan":
        return _upstream(cfg, "shards")
    if stage == "build-pairs":
        b, found = cfg.build_pairs, {"method": cfg.build_pairs.method}
        if b.method != "folder":  # folder pairs alone need no shards
            found.update(_upstream(cfg, "shards"))
        if b.pairs_dir:
            found.update(pairs_dir=b.pairs_dir, pairs_dir_fingerprint=_pairs_fingerprint(b.pairs_dir))
        if b.method == "ckpt":
            ck = scan_ckpt(cfg)
            if not ck.is_file():
                hint = "" if b.ckpt else " (run `onepunch train-scan` first, or pass --ckpt)"
                raise UserError(f"scan checkpoint not found: {ck}{hint}")
            found.update(ckpt=str(ck), ckpt_sha256=sha256_file(ck))
        return found
    if stage == "train-color":
        found = _upstream(cfg, "build-pairs", "pairs_manifest")
        if cfg.train_color.encoder_weights:
            from onepunch.models.encoder_weights import resolve

            w = resolve(cfg.train_color.encoder_weights)
            if not w.is_file():
                raise UserError(f"encoder weights not found: {w}")
            found["encoder_weights_sha256"] = sha256_file(w)
        return found
    if stage == "eval":
        pm, ckpt = ready(cfg, "build-pairs"), color_ckpt(cfg)
        if not ckpt.is_file():
            raise UserError(f"colorizer not found: {ckpt} (run `onepunch train-color --pipeline {cfg.path}` or give "
                            "--ckpt)")
        found = {"ckpt": str(ckpt), "ckpt_sha256": sha256_file(ckpt), "pairs_manifest": str(pm),
                 "pairs_manifest_sha256": sha256_file(pm)}
        if cfg.eval.real_pairs:
            found["real_pairs"] = _pairs_fingerprint(cfg.eval.real_pairs)
            for name, path in sorted(cfg.eval.compare.items()):
                if not Path(path).is_file():
                    raise UserError(f"eval.compare {name}: colorizer not found: {path}")
                found[f"compare_{name}_sha256"] = sha256_file(path)
            if (scan := eval_scan_ckpt(cfg)) is not None:
                found["scan_ckpt_sha256"] = sha256_file(scan)
        return found
    raise KeyError(stage)


def _pairs_fingerprint(folder: str) -> str:
    # pairs reads images (cv2, numpy): imported only when a stage has pairs, so that status starts at once
    from onepunch import pairs

    return pairs.fingerprint(pairs.find(folder))


def _upstream(cfg: PipelineConfig, stage: str, key: str | None = None) -> dict:
    path = ready(cfg, stage)
    key = key or f"{stage}_manifest"
    return {key: str(path), f"{key}_sha256": sha256_file(path)}


def config_hash(cfg: PipelineConfig, stage: str, found: dict | None = None, size: int | None = None,
                init: str | None = None) -> str:
    """The digest a stage's manifest records: its settings and inputs (train-color: per progressive size, chained
    to the weights it starts from). The layouts differ by stage so that runs made before this module stay done."""
    s = settings(cfg, stage)
    if stage == "shards":
        return digest(s)
    if stage == "train-scan":
        return digest({"train_scan": s, "inputs": found})
    if stage == "train-color":
        return digest({"settings": s, "inputs": found, "size": size, "init": init})
    return digest({"settings": s, "inputs": found})


# ------------------------------------------------------------------------------------------------------ state
def state(cfg: PipelineConfig, stage: str, found: dict | None = None) -> str:
    """done / stale / missing (colorize: skipped when [colorize] lists no inputs). `found`: the stage's inputs when
    the caller has them already (no second checksum pass)."""
    if stage == "colorize":
        return _colorize_state(cfg)
    m = read_json(manifest_path(cfg, stage))
    if m is None:
        return "missing"
    try:
        found = found if found is not None else inputs(cfg, stage)
    except UserError:
        return "stale"
    if stage == "shards":
        return "done" if (m.get("config_hash") == config_hash(cfg, stage) and m.get("root") == str(out_dir(cfg, stage))
                          and m.get("source_fingerprint") == found["source_fingerprint"] and _intact(stage, m)) else "stale"
    if stage == "train-color":
        return "done" if _colors_current(cfg, m, found) else "stale"
    return "done" if m.get("config_hash") == config_hash(cfg, stage, found) and _intact(stage, m) else "stale"


def _intact(stage: str, m: dict) -> bool:
    """Every output the manifest lists is there, as it was written."""
    if stage == "shards":
        root = Path(m["root"])
        return all((root / s["path"]).is_file() and (root / s["path"]).stat().st_size == s["bytes"]
                   for splits in m["domains"].values() for split in splits.values() for s in split["shards"])
    if stage == "build-pairs":
        return all(is_done(t["output"], t["digest"]) for t in m["tasks"])
    files = [o for o in m["outputs"].values() if isinstance(o, dict) and "sha256" in o]  # not the sample folders
    return all(Path(o["path"]).is_file() and sha256_file(o["path"]) == o["sha256"] for o in files)


def color_stage_done(cfg: PipelineConfig, found: dict, size: int, init: str | None) -> dict | None:
    """The manifest of train-color's stage at `size` if it was trained from these inputs and `init` weights and its
    weights are intact; None otherwise."""
    m = read_json(manifest_path(cfg, "train-color", size))
    if m and m.get("config_hash") == config_hash(cfg, "train-color", found, size, init):
        w = Path(m["outputs"]["weights"]["path"])
        if w.is_file() and sha256_file(w) == m["outputs"]["weights"]["sha256"]:
            return m
    return None


def _colors_current(cfg: PipelineConfig, m: dict, found: dict) -> bool:
    init = None
    for size in cfg.train_color.sizes:
        sm = color_stage_done(cfg, found, size, init)
        if sm is None:
            return False
        init = sm["outputs"]["weights"]["sha256"]
    out = m["outputs"]["color.pt"]
    remembered = m.get("memory", {}).get("limit", 0) == cfg.train_color.memory_images  # 0: made before memories
    return (m.get("final_weights_sha256") == init and remembered and Path(out["path"]).is_file()
            and sha256_file(out["path"]) == out["sha256"])


def _colorize_state(cfg: PipelineConfig) -> str:
    if not cfg.colorize.inputs:
        return "skipped"
    m = read_json(manifest_path(cfg, "colorize"))
    if not m:
        return "missing"
    ckpt = output(cfg, "train-color")
    if not ckpt.is_file() or m.get("settings") != colorize_settings(cfg.colorize, ckpt):
        return "stale"
    from onepunch import pages  # reads images (cv2, numpy): imported only when there are pages to check

    try:
        jobs = pages.discover([Path(p) for p in cfg.colorize.inputs], out_dir(cfg, "colorize"), cfg.colorize.format)
    except UserError:
        return "stale"
    return "done" if pages.up_to_date(jobs, m.get("outputs", {})) else "stale"


def ready(cfg: PipelineConfig, stage: str) -> Path:
    """An upstream stage's manifest path, for a stage that reads its outputs: there, with every output it lists
    intact (whatever config made it: the manifest, not the pipeline file, is what downstream stages read), and for
    build-pairs made from the current shards; UserError saying what to rerun otherwise."""
    path, rerun = manifest_path(cfg, stage), f"`onepunch {stage} --pipeline {cfg.path}`"
    m = read_json(path)
    if m is None:
        raise UserError(f"no {'pairs' if stage == 'build-pairs' else stage} yet: run {rerun} first")
    if stage == "build-pairs" and "shards_manifest_sha256" in m["inputs"]:
        if m["inputs"]["shards_manifest_sha256"] != sha256_file(ready(cfg, "shards")):
            raise UserError(f"the pairs were built from other shards than the current ones: rerun {rerun}")
    if not _intact(stage, m):
        raise UserError(f"outputs listed in {path} are missing or changed: rerun {rerun}")
    return path


def states(cfg: PipelineConfig) -> list[dict]:
    """Each stage's state, in order, with what it needs (`onepunch status`): a stage whose upstream is not done is
    done only while its manifest still matches what that upstream left on disk."""
    return [{"name": s.name, "state": state(cfg, s.name), "manifest": str(manifest_path(cfg, s.name)),
             "needs": list(s.needs)} for s in GRAPH]


# -------------------------------------------------------------------------------------------------------- run
def run(cfg: PipelineConfig) -> None:
    """Each stage in order (`onepunch run`); a stage that is up to date is skipped (its state check is cheap), so a
    rerun with nothing changed takes seconds. A failing stage stops the run (its UserError says what to do)."""
    from onepunch.ui import console

    log = console()
    t0 = time.perf_counter()
    if cfg.source.kind == "sample":  # a no-op when it is there; the demo's colorize step reads its pages
        from onepunch import sample
        sample.generate(cfg.source.path, cfg.source.sample_scans, cfg.source.sample_colors, cfg.source.sample_seed)
    for stage in GRAPH:
        st = state(cfg, stage.name)
        if st in ("done", "skipped"):
            log.print(f"[green]✓[/] {stage.name}: {'up to date' if st == 'done' else 'nothing to do'}")
            continue
        log.rule(f"{stage.name} ({st})")
        importlib.import_module(f"onepunch.stages.{stage.module}").run(cfg)
    log.print(f"[green]pipeline {cfg.name} done[/] in {time.perf_counter() - t0:.1f} s")
    report = out_dir(cfg, "eval") / "report.html"
    if report.is_file():
        log.print(f"report: {report.resolve()}")
