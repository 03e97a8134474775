"""train-scan benchmark: pairs/s of one CycleGAN step, the stage's step against a naive fp32/eager one, same run.

    .venv/bin/python bench/bench_train_scan.py --device cpu  --preset base --size 256 --batch 2 --steps 6
    .venv/bin/python bench/bench_train_scan.py --device cuda --preset base --size 256 --batch 8 --steps 50

"stage" is exactly what `onepunch train-scan` runs (bf16 autocast + channels_last on CUDA, optionally compiled;
fp32 on CPU); "naive" is fp32, contiguous, eager. Both run `train_step` on the same batches. The data path is timed
separately: how long the loader takes to deliver the batches the step consumes (synthetic shards, bench/synthetic.py),
as a fraction of step time. Results go to bench/out/train_scan.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import largest_batch  # noqa: E402
from synthetic import shards  # noqa: E402

from onepunch import config, data, train  # noqa: E402
from onepunch.models import cyclegan  # noqa: E402
from onepunch.stages import train_scan  # noqa: E402

OUT = Path(__file__).parent / "out"


def time_steps(env, preset, batch, size, steps, fast: bool, compile_: bool, warm: int = 3) -> float:
    torch.manual_seed(0)
    tc = config.TrainScanConfig(preset=preset, size=size, batch_size=batch)
    nets = {k: m.to(env.device) for k, m in cyclegan.build(preset).items()}
    if fast and env.cuda:
        nets = {k: m.to(memory_format=torch.channels_last) for k, m in nets.items()}
    run_nets = {k: torch.compile(m) for k, m in nets.items()} if compile_ else nets
    opt_g = torch.optim.Adam([*nets["c2s"].parameters(), *nets["s2c"].parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*nets["d_scan"].parameters(), *nets["d_color"].parameters()], lr=2e-4,
                             betas=(0.5, 0.999))
    pools = {"scan": train.ImagePool(50), "color": train.ImagePool(50)}
    step_env = env if fast else train.Env(env.device, env.rank) if not env.cuda else _Fp32(env)
    real_c = torch.rand(batch, 3, size, size, device=env.device) * 2 - 1
    real_s = torch.rand(batch, 1, size, size, device=env.device) * 2 - 1
    if fast and env.cuda:
        real_c, real_s = (t.contiguous(memory_format=torch.channels_last) for t in (real_c, real_s))
    g = torch.Generator().manual_seed(0)
    warm = max(warm, 10) if compile_ else warm
    for i in range(warm + steps):
        if i == warm:
            if env.cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
        train_scan.train_step(run_nets, opt_g, opt_d, pools, real_c, real_s, tc, step_env, g)
    if env.cuda:
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


class _Fp32(train.Env):
    """The same device without autocast: the naive baseline on CUDA."""

    def __init__(self, env):
        super().__init__(env.device, env.rank)

    def autocast(self):
        from contextlib import nullcontext
        return nullcontext()


def data_rate(batch: int, size: int, workers: int, n: int) -> float:
    """Batches/s the loader delivers for one domain (synthetic color shards at 2x the size, as the shards stage
    writes them for training at `size`)."""
    spec = data.StreamSpec(tuple(shards(OUT / "synthetic", "colors", 512, 2 * size)), size, batch, 0, 0, ext="jpg",
                           mode="RGB")
    it = iter(data.loader(spec, 0, workers))
    next(it)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t)


def fed(env, preset, batch, size, steps, workers: int) -> dict:
    """The stage's step fed by its two loaders (colors, scans; `workers` each), as _train feeds it: pairs/s and the
    fraction of wall time spent waiting for data."""
    colors = shards(OUT / "synthetic", "colors", 512, 2 * size)
    scans = shards(OUT / "synthetic", "pairs", 512, 2 * size)
    specs = (data.StreamSpec(tuple(colors), size, batch, 0, 0, ext="jpg", mode="RGB"),
             data.StreamSpec(tuple(scans), size, batch, 1, 0, ext="scan.png", mode="L"))
    streams = [iter(data.loader(spec, 0, workers, pin=env.cuda)) for spec in specs]
    torch.manual_seed(0)
    tc = config.TrainScanConfig(preset=preset, size=size, batch_size=batch)
    nets = {k: m.to(env.device) for k, m in cyclegan.build(preset).items()}
    if env.cuda:
        nets = {k: m.to(memory_format=torch.channels_last) for k, m in nets.items()}
    opt_g = torch.optim.Adam([*nets["c2s"].parameters(), *nets["s2c"].parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*nets["d_scan"].parameters(), *nets["d_color"].parameters()], lr=2e-4,
                             betas=(0.5, 0.999))
    pools, g, warm, wait = {"scan": train.ImagePool(50), "color": train.ImagePool(50)}, torch.Generator(), 3, 0.0
    for i in range(warm + steps):
        if i == warm:
            if env.cuda:
                torch.cuda.synchronize()
            t, wait = time.perf_counter(), 0.0
        w = time.perf_counter()
        real_c, real_s = (next(s).to(env.device, non_blocking=True) for s in streams)
        wait += time.perf_counter() - w
        if env.cuda:
            real_c, real_s = (x.contiguous(memory_format=torch.channels_last) for x in (real_c, real_s))
        train_scan.train_step(nets, opt_g, opt_d, pools, real_c, real_s, tc, env, g)
    if env.cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    return {"fed_pairs_s": round(batch * steps / wall, 1), "data_wait_fraction": round(wait / wall, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="base")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--max-batch", action="store_true", help="CUDA: the largest batch that fits in 80 GB")
    args = ap.parse_args()
    env = train.setup(args.device)
    peak = {}
    naive = time_steps(env, args.preset, args.batch, args.size, args.steps, fast=False, compile_=False)
    if env.cuda:
        peak["naive_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        torch.cuda.reset_peak_memory_stats()
    stage = time_steps(env, args.preset, args.batch, args.size, args.steps, fast=True, compile_=args.compile)
    if env.cuda:
        peak["stage_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    if args.max_batch and env.cuda:
        peak["largest_batch"] = largest_batch(
            lambda b: time_steps(env, args.preset, b, args.size, 1, fast=True, compile_=False, warm=1), args.batch)
    step_s = args.batch / stage
    peak.update(fed(env, args.preset, args.batch, args.size, args.steps, args.workers))
    loader_batches_s = data_rate(args.batch, args.size, args.workers, 20)
    # Two domains per step: the loaders must deliver 2 batches per step; time waiting if they are slower.
    data_s = 2 / loader_batches_s
    result = {
        "date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if env.cuda else "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(), **vars(args),
        "naive_pairs_s": round(naive, 2), "stage_pairs_s": round(stage, 2), "speedup": round(stage / naive, 2),
        "loader_batches_s_per_domain": round(loader_batches_s, 1),
        "data_time_fraction_if_serial": round(data_s / (data_s + step_s), 3), **peak,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "train_scan.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
