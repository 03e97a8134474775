"""Paired training batches: aligned geometry, scan-only degradations, determinism, from real pair shards."""

import io
import json

import numpy as np
import torch
from PIL import Image

from onepunch import augment, data
from onepunch.shardwork import ShardOut


def pair_shard(path, n=6, seed=0):
    """Pairs whose color is the scan in 3 channels: any misalignment shows as a difference."""
    rng = np.random.default_rng(seed)
    with ShardOut(path) as out:
        for i in range(n):
            a = np.full((48 + 8 * i, 64), 255, np.uint8)
            a[rng.integers(0, 40, 8), :] = 0
            a[:, rng.integers(0, 60, 8)] = 0
            for name, img in (("scan.png", Image.fromarray(a)), ("color.png", Image.fromarray(a).convert("RGB"))):
                buf = io.BytesIO()
                img.save(buf, "PNG")
                out.add(f"{i:04d}.{name}", buf.getvalue())
            out.add(f"{i:04d}.json", json.dumps({"id": i}).encode())
    out.finish("test", n)
    return str(path)


def spec(path, **kw):
    return data.PairSpec(((path, 6),), size=32, batch_size=4, seed=0, rank=0, scan_ext="scan.png",
                         color_ext="color.png", **kw)


def test_geometry_is_shared_and_degradation_touches_only_the_scan(tmp_path):
    path = pair_shard(tmp_path / "p.tar")
    scan, color = data.PairStream(spec(path, degrade_p=0.0)).batch(3)
    assert scan.shape == (4, 1, 32, 32) and color.shape == (4, 3, 32, 32)
    assert torch.allclose(color, scan.expand_as(color), atol=1e-6)
    degraded_any = False
    for step in range(6):
        s, c = data.PairStream(spec(path, degrade_p=1.0)).batch(step)
        clean_s, clean_c = data.PairStream(spec(path, degrade_p=0.0)).batch(step)
        assert torch.equal(c, clean_c)  # the color target is never degraded
        degraded_any |= not torch.equal(s, clean_s)
    assert degraded_any


def test_batches_depend_only_on_seed_rank_and_step(tmp_path):
    path = pair_shard(tmp_path / "p.tar")
    a = data.PairStream(spec(path)).batch(5)
    b = list(data.loader(spec(path), 5, workers=2).__iter__().__next__())
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = data.PairStream(data.PairSpec(((path, 6),), 32, 4, seed=0, rank=1, scan_ext="scan.png", color_ext="color.png")).batch(5)
    assert not torch.equal(a[1], c[1])


def test_degrade_keeps_size_and_range():
    g = torch.Generator().manual_seed(0)
    scan = torch.full((1, 40, 40), 255, dtype=torch.uint8)
    scan[:, 20, :] = 0
    out = augment.degrade(scan, g, p=1.0)
    assert out.shape == scan.shape and out.dtype == torch.uint8
