"""Dataset readers. Each yields `Record`s in a deterministic order, streaming (memory grows only with the ids seen).

- danbooru2020: `metadata/2020/*` JSON lines (else every file under metadata/), ids deduped, first record wins;
  images from `original/BBBB/ID.EXT` or `512px/BBBB/ID.jpg`.
- folder: every image below a folder, sorted; tags are the folder names plus an optional sidecar `NAME.txt`
  (comma-separated tags, as booru exports write them).
- hf: a Hugging Face `datasets` dataset: a `save_to_disk` folder, parquet files, or a hub name (needs network).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from onepunch.config import SourceConfig
from onepunch.errors import UserError

IMAGE_EXTS = {"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"}


@dataclass
class Record:
    id: str
    """Unique, dot-free key (a webdataset key ends at the first dot)."""
    tags: tuple[str, ...]
    rating: str | None = None
    width: int | None = None
    """Source size from metadata, when the source has it (lets queries filter before any decode)."""
    height: int | None = None
    md5: str | None = None
    ext: str = ""
    path: str | None = None
    """Absolute path of the image file, or None when `data` holds the bytes."""
    data: bytes | None = field(default=None, repr=False)
    source: str = ""
    """Human-readable origin, stored in the sample's JSON."""
    fingerprint: str = ""
    """Changes when the image changes (md5, or size and mtime): part of each shard's digest."""

    def plan_dict(self) -> dict:
        """What a shard's digest depends on (the bytes themselves are represented by the fingerprint)."""
        return {"id": self.id, "tags": list(self.tags), "rating": self.rating, "md5": self.md5, "ext": self.ext,
                "source": self.source, "fingerprint": self.fingerprint}


def open_source(cfg: SourceConfig) -> tuple[Iterator[Record], dict]:
    """(record iterator, stats dict the reader fills in as it goes: counts of duplicate ids, skipped lines...)."""
    stats: dict[str, int] = {}
    if cfg.kind in ("sample", "danbooru2020"):
        root = Path(cfg.path)
        if cfg.kind == "sample":
            from onepunch import sample
            root = sample.generate(cfg.path, cfg.sample_scans, cfg.sample_colors, cfg.sample_seed)
        if not root.is_dir():
            raise UserError(f"dataset folder not found: {root}")
        return danbooru2020(_metadata_files(root), root, cfg.images, stats), stats
    if cfg.kind == "folder":
        if not Path(cfg.path).is_dir():
            raise UserError(f"image folder not found: {cfg.path}")
        return folder(Path(cfg.path), stats), stats
    return huggingface(_hf_load(cfg), cfg, stats), stats


def fingerprint(cfg: SourceConfig) -> str:
    """A cheap digest that changes when the source changes (file names, sizes and mtimes; no image reads)."""
    h = hashlib.sha256()
    if cfg.kind in ("sample", "danbooru2020"):
        root = Path(cfg.path) / "danbooru2020" if cfg.kind == "sample" else Path(cfg.path)
        if cfg.kind == "sample":
            h.update(json.dumps([cfg.sample_scans, cfg.sample_colors, cfg.sample_seed]).encode())
        for p in _metadata_files(root, check=False):
            st = p.stat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    elif cfg.kind == "folder":
        for p in _walk(Path(cfg.path)):
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    else:
        h.update(_hf_fingerprint(cfg).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------------ danbooru2020
def _metadata_files(root: Path, check: bool = True) -> list[Path]:
    meta = root / "metadata"
    if not meta.is_dir():
        if check:
            raise UserError(f"{root}: no metadata/ folder (expected the Danbooru2020 layout: metadata/2020/*, original/)")
        return []
    year = meta / "2020"
    files = sorted(p for p in (year if year.is_dir() else meta).rglob("*") if p.is_file() and not p.name.startswith("."))
    if check and not files:
        raise UserError(f"{meta}: no metadata files")
    return files


def danbooru2020(files: list[Path], root: Path, images: str, stats: dict) -> Iterator[Record]:
    seen: set[int] = set()
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    rid = int(r["id"])
                except (json.JSONDecodeError, KeyError, ValueError, TypeError):
                    stats["bad_metadata_line"] = stats.get("bad_metadata_line", 0) + 1
                    continue
                if rid in seen:
                    stats["duplicate_id"] = stats.get("duplicate_id", 0) + 1
                    continue
                seen.add(rid)
                yield _danbooru_record(root, images, r, rid)


def _danbooru_record(root: Path, images: str, r: dict, rid: int) -> Record:
    ext = "jpg" if images == "512px" else str(r.get("file_ext", "")).lower()
    rel = f"{images}/{rid % 1000:04d}/{rid}.{ext}"
    tags = tuple(t["name"] if isinstance(t, dict) else str(t) for t in r.get("tags", []))
    w, h = _int(r.get("image_width")), _int(r.get("image_height"))
    if images == "512px":
        w = h = 512  # padded square; the real content size is unknown without decoding
    md5 = r.get("md5") or None
    return Record(id=str(rid), tags=tags, rating=r.get("rating") or None, width=w, height=h,
                  md5=md5 if images == "original" else None, ext=ext, path=str(root / rel),
                  source=f"danbooru2020:{rel}", fingerprint=f"{md5}:{r.get('file_size', '')}")


def _int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------------------ folder
def _walk(root: Path) -> Iterator[Path]:
    """Image files below root in a stable order (sorted names at every level)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in IMAGE_EXTS:
                yield Path(dirpath) / name


def _tag(s: str) -> str:
    return "_".join(s.strip().lower().split())


def folder(root: Path, stats: dict) -> Iterator[Record]:
    for path in _walk(root):
        rel = path.relative_to(root)
        tags = [_tag(p) for p in rel.parts[:-1]]
        sidecar = path.with_suffix(".txt")
        if sidecar.is_file():
            tags += [_tag(t) for t in sidecar.read_text(encoding="utf-8", errors="replace").split(",") if t.strip()]
        st = path.stat()
        yield Record(id=hashlib.sha1(str(rel).encode()).hexdigest()[:16], tags=tuple(dict.fromkeys(tags)),
                     ext=path.suffix[1:].lower(), path=str(path), source=f"folder:{rel}",
                     fingerprint=f"{st.st_size}:{st.st_mtime_ns}")


# ------------------------------------------------------------------------------------------------------------- hf
def _hf_load(cfg: SourceConfig):
    import datasets

    p = Path(cfg.path)
    try:
        if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[cfg.split]
        elif p.exists():
            files = [str(p)] if p.is_file() else sorted(str(f) for f in p.rglob("*.parquet"))
            if not files:
                raise UserError(f"{p}: no parquet files and no saved dataset")
            ds = datasets.load_dataset("parquet", data_files=files, split="train")
        else:
            ds = datasets.load_dataset(cfg.path, split=cfg.split, streaming=True)
    except UserError:
        raise
    except Exception as e:  # datasets raises many types for a bad name, path or network
        raise UserError(f"cannot open Hugging Face dataset {cfg.path!r}: {type(e).__name__}: {e}") from None
    for col in (cfg.image_column, cfg.tags_column, cfg.id_column, cfg.rating_column):
        if col and ds.column_names is not None and col not in ds.column_names:
            raise UserError(f"{cfg.path}: no column {col!r} (columns: {', '.join(ds.column_names)})")
    if isinstance(ds.features.get(cfg.image_column) if ds.features else None, datasets.Image):
        ds = ds.cast_column(cfg.image_column, datasets.Image(decode=False))  # we decode ourselves, safely
    return ds


def _hf_fingerprint(cfg: SourceConfig) -> str:
    ds = _hf_load(cfg)
    fp = getattr(ds, "_fingerprint", None) or cfg.path
    return json.dumps([fp, cfg.image_column, cfg.tags_column, cfg.id_column, cfg.rating_column, cfg.split])


def huggingface(ds, cfg: SourceConfig, stats: dict) -> Iterator[Record]:
    for i, row in enumerate(ds):
        img = row[cfg.image_column]
        if isinstance(img, dict):
            data = img.get("bytes")
            if data is None and img.get("path"):
                data = Path(img["path"]).read_bytes()
        elif isinstance(img, bytes | bytearray):
            data = bytes(img)
        else:
            stats["unreadable_image_cell"] = stats.get("unreadable_image_cell", 0) + 1
            continue
        tags = row.get(cfg.tags_column) or []
        tags = tags.split() if isinstance(tags, str) else [str(t) for t in tags]
        rid = str(row[cfg.id_column]) if cfg.id_column else f"{i:09d}"
        rid = "".join(c if c.isalnum() or c in "-_" else "_" for c in rid)
        md5 = hashlib.md5(data or b"").hexdigest()
        yield Record(id=rid, tags=tuple(_tag(t) for t in tags),
                     rating=str(row[cfg.rating_column]) if cfg.rating_column else None, md5=md5, data=data or b"",
                     source=f"hf:{cfg.path}#{i}", fingerprint=md5)
