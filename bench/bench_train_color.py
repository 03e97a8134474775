"""train-color benchmark: images/s and peak memory of one colorizer step at 64/128/256 px, stage vs naive; the data
path fed from shards; the largest batch that fits in 80 GB.

    .venv/bin/python bench/bench_train_color.py --device cpu --preset base --batch 2 --steps 2
    .venv/bin/python bench/bench_train_color.py --device cuda --preset base --batch 64 --steps 20 \
        --compile-sizes 256 --workers 12 --max-batch

"stage" is what `onepunch train-color` runs (bf16 autocast + channels_last on CUDA, compiled at --compile-sizes; fp32
on CPU), "naive" is fp32, contiguous, eager; both on the same random batches, frozen encoder, the GAN step (D then G,
hinge + L1: the heaviest phase). "fed": the stage's step with batches from the training loader (synthetic pair shards
at 2x the size, as build-pairs writes them, `--workers` processes), and the fraction of wall time spent waiting for
data; batches carry the stage's hints and palettes. "loader" (--loader-batches N): ms for one loader process to make a
batch without and with them. Peak memory: CUDA's max allocated. Results: bench/out/train_color.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import largest_batch  # noqa: E402
from synthetic import shards  # noqa: E402

from onepunch import config, data, train  # noqa: E402
from onepunch.models import colorizer  # noqa: E402
from onepunch.stages import train_color  # noqa: E402

OUT = Path(__file__).parent / "out"
GAN = config.TrainColorConfig(nogan=False)  # every step is a full GAN step (D + G)


class Fp32(train.Env):
    def autocast(self):
        return nullcontext()


def sync(env):
    if env.cuda:
        torch.cuda.synchronize()


def setup_nets(env, preset, fast: bool, compile_: bool):
    torch.manual_seed(0)
    g, d = colorizer.build(preset, frozen_encoder=True)
    g, d = g.to(env.device), d.to(env.device)
    if fast and env.cuda:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.9))
    run_g, run_d = (torch.compile(g), torch.compile(d)) if compile_ else (g, d)
    return run_g, run_d, opt_g, opt_d


def batch_on(env, batch, size, fast):
    scan = torch.rand(batch, 1, size, size, device=env.device) * 2 - 1
    color = torch.rand(batch, 3, size, size, device=env.device) * 2 - 1
    if fast and env.cuda:
        scan, color = (t.contiguous(memory_format=torch.channels_last) for t in (scan, color))
    return scan, color


def measure(env, preset, size, batch, steps, fast: bool, compile_: bool, warm: int = 2) -> tuple[float, float]:
    g, d, opt_g, opt_d = setup_nets(env, preset, fast, compile_)
    scan, color = batch_on(env, batch, size, fast)
    step_env = env if fast else Fp32(env.device, env.rank)
    if env.cuda:
        torch.cuda.reset_peak_memory_stats()
    warm = max(warm, 10) if compile_ else warm
    for i in range(warm + steps):
        if i == warm:
            sync(env)
            t = time.perf_counter()
        train_color.train_step(g, d, opt_g, opt_d, scan, color, GAN, step_env, i, 10**6)
    sync(env)
    rate = batch * steps / (time.perf_counter() - t)
    # Peak memory on CUDA only: a process's peak RSS is monotonic, so CPU deltas after the first measurement say nothing.
    mem = torch.cuda.max_memory_allocated() / 2**20 if env.cuda else None
    return rate, mem


def fed(env, preset, size, batch, steps, workers: int, compile_: bool) -> dict:
    """The stage's step fed by the training loader, as _train_stage feeds it: img/s and the time spent in next()."""
    pairs = shards(OUT / "synthetic", "pairs", 512, 2 * size)
    tc = config.TrainColorConfig()  # the stage's hints and palettes, drawn in the loader processes
    spec = data.PairSpec(tuple(pairs), size, batch, 0, 0, scan_ext="scan.png", color_ext="color.jpg",
                         hint_p=tc.hint_p, max_hints=tc.max_hints, palette_p=tc.palette_p)
    stream = iter(data.loader(spec, 0, workers, pin=env.cuda))
    g, d, opt_g, opt_d = setup_nets(env, preset, True, compile_)
    wait, warm = 0.0, 10 if compile_ else 3
    for i in range(warm + steps):
        if i == warm:
            sync(env)
            t, wait = time.perf_counter(), 0.0
        w = time.perf_counter()
        scan, color, *control = (x.to(env.device, non_blocking=True) for x in next(stream))
        wait += time.perf_counter() - w
        if env.cuda:
            scan, color = (x.contiguous(memory_format=torch.channels_last) for x in (scan, color))
        train_color.train_step(g, d, opt_g, opt_d, scan, color, GAN, env, i, 10**6, tuple(control))
    sync(env)
    wall = time.perf_counter() - t
    return {"fed_img_s": round(batch * steps / wall, 1), "data_wait_fraction": round(wait / wall, 3),
            "workers": workers}


def loader_cost(size: int, batch: int, n: int) -> dict:
    """ms for one loader process to make one batch, without and with the stage's hints and palettes (their
    sampling and region fill): how many loader processes a GPU's step rate needs."""
    pairs = shards(OUT / "synthetic", "pairs", 512, 2 * size)
    tc, out = config.TrainColorConfig(), {}
    for name, extra in (("plain", {}), ("hints", {"hint_p": tc.hint_p, "max_hints": tc.max_hints,
                                                  "palette_p": tc.palette_p})):
        stream = data.PairStream(data.PairSpec(tuple(pairs), size, batch, 0, 0, scan_ext="scan.png",
                                               color_ext="color.jpg", **extra), 0)
        stream.batch(0)
        t = time.perf_counter()
        for i in range(1, n + 1):
            stream.batch(i)
        out[f"loader_ms_per_batch_{name}"] = round(1000 * (time.perf_counter() - t) / n, 1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="base")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--compile-sizes", default="", help="sizes at which the stage path is compiled (comma list)")
    ap.add_argument("--workers", type=int, default=0, help="loader processes for the fed run (0: no fed run)")
    ap.add_argument("--max-batch", action="store_true", help="CUDA: the largest batch that fits in 80 GB")
    ap.add_argument("--loader-batches", type=int, default=0,
                    help="time this many batches made by one loader process, without and with hints (0: skip)")
    args = ap.parse_args()
    env = train.setup(args.device)
    result = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if env.cuda else "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(), **vars(args)}
    compiled = {int(s) for s in args.compile_sizes.split(",") if s}
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        naive, naive_mem = measure(env, args.preset, size, args.batch, args.steps, False, False)
        stage, stage_mem = measure(env, args.preset, size, args.batch, args.steps, True, False)
        r = {"naive_img_s": round(naive, 2), "stage_img_s": round(stage, 2), "speedup": round(stage / naive, 2),
             "naive_peak_mb": naive_mem and round(naive_mem), "stage_peak_mb": stage_mem and round(stage_mem)}
        if size in compiled:
            t = time.perf_counter()
            comp, comp_mem = measure(env, args.preset, size, args.batch, args.steps, True, True)
            r.update(compiled_img_s=round(comp, 2), compiled_speedup=round(comp / naive, 2),
                     compiled_peak_mb=comp_mem and round(comp_mem), compile_and_run_s=round(time.perf_counter() - t))
        result[f"{size}px"] = r
        print(size, r, flush=True)
    size = sizes[-1]
    if args.workers:
        result[f"fed_{size}px"] = fed(env, args.preset, size, args.batch, args.steps, args.workers, False)
        print("fed", result[f"fed_{size}px"], flush=True)
    if args.loader_batches:
        result[f"loader_{size}px"] = loader_cost(size, args.batch, args.loader_batches)
        print("loader", result[f"loader_{size}px"], flush=True)
    if args.max_batch and env.cuda:
        def try_batch(b):
            measure(env, args.preset, size, b, 1, True, False, warm=1)
        result[f"max_batch_{size}px"] = largest_batch(try_batch, args.batch)
        print("max batch", result[f"max_batch_{size}px"], flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "train_color.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
