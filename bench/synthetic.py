"""Synthetic shards for the training benchmarks: no pipeline run needed, same members and sizes as the real ones.

Pair shards hold `KEY.scan.png` (grey line art) and `KEY.color.jpg`, as build-pairs writes them; color shards hold
`KEY.jpg`. Images are the embedded sample's drawings at `side` x 2/3 side (the shards stage's max_side), so decode and
augmentation cost what they cost on real shards of that size.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from onepunch.sample import draw_color


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def shards(root: Path, kind: str, n: int, side: int, per_shard: int = 64, distinct: int = 16) -> list[tuple[str, int]]:
    """n samples of `kind` ("pairs" or "colors") in shards under root; returns (path, count) as data.shard_list."""
    root = root / f"{kind}-{n}-{side}"
    done = root / ".done"
    paths = [(str(root / f"{i:04d}.tar"), min(per_shard, n - i * per_shard)) for i in range(-(-n // per_shard))]
    if done.exists():
        return paths
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    drawings = [draw_color(rng, side, side * 2 // 3) for _ in range(distinct)]
    blobs = [(_encode(line, "PNG"), _encode(color, "JPEG")) for color, line in drawings]
    for s, (path, count) in enumerate(paths):
        with tarfile.open(path, "w") as tar:
            for j in range(count):
                key, (scan, color) = f"{s * per_shard + j:08d}", blobs[(s * per_shard + j) % distinct]
                if kind == "pairs":
                    _add(tar, f"{key}.scan.png", scan)
                    _add(tar, f"{key}.color.jpg", color)
                else:
                    _add(tar, f"{key}.jpg", color)
    done.touch()
    return paths
