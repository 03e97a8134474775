"""A shard as a unit of work, for every stage that writes shards (shards, build-pairs).

`ShardOut` writes a tar under a temp name with deterministic members (fixed mtime, no owner), renames it into place,
then writes `NAME.stats.json` last: a shard whose stats carry the current digest is done, and is never rebuilt.
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

from onepunch.manifest import AtomicFile, read_json, sha256_file, write_json

TAR_MTIME = 1577836800  # fixed member mtime (2020-01-01): byte-identical shards


def stats_path(tar_path: str | Path) -> Path:
    tar_path = Path(tar_path)
    return tar_path.with_name(tar_path.name[: -len(".tar")] + ".stats.json")


def is_done(tar_path: str | Path, digest: str) -> bool:
    tar_path = Path(tar_path)
    s = read_json(stats_path(tar_path))
    return bool(s) and s.get("digest") == digest and tar_path.is_file() and tar_path.stat().st_size == s["bytes"]


def wait_for(items: list[tuple[Path, str]], log) -> None:
    """Block until every (tar path, digest) is done (rank 0 under torchrun waits for the other ranks' shards)."""
    with log.status("waiting for the other ranks' shards"):
        while not all(is_done(p, d) for p, d in items):
            time.sleep(1.0)


class ShardOut:
    """with ShardOut(path) as out: out.add(name, bytes)...; then out.finish(digest, count, ...) writes the stats."""

    def __init__(self, tar_path: str | Path):
        self.path = Path(tar_path)

    def __enter__(self):
        self.file = AtomicFile(self.path)
        self.tar = tarfile.open(fileobj=self.file.file, mode="w", format=tarfile.GNU_FORMAT)
        return self

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self.tar.addfile(info, io.BytesIO(data))

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self.file.discard()
            return False
        self.file.commit(self.tar.close)
        return False

    def finish(self, digest: str, count: int, **extra) -> dict:
        stats = {"digest": digest, "count": count, "bytes": self.path.stat().st_size,
                 "sha256": sha256_file(self.path), **extra}
        write_json(stats_path(self.path), stats)
        return stats
