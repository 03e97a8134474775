"""train-color benchmark: images/s and peak memory of one colorizer step at 64/128/256 px, stage vs naive.

    .venv/bin/python bench/bench_train_color.py --device cpu --preset base --batch 2 --steps 2
    .venv/bin/python bench/bench_train_color.py --device cuda --preset base --batch 64 --steps 20 --compile

"stage" is what `onepunch train-color` runs (bf16 autocast + channels_last on CUDA; fp32 on CPU), "naive" is fp32,
contiguous, eager; both on the same random batches, frozen encoder, hinge + L1. Peak memory: CUDA's max allocated (CUDA
only). Results: bench/out/train_color.json.
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
from onepunch import config, train  # noqa: E402
from onepunch.models import colorizer  # noqa: E402
from onepunch.stages import train_color  # noqa: E402

OUT = Path(__file__).parent / "out"


class Fp32(train.Env):
    def autocast(self):
        return nullcontext()


def measure(env, preset, size, batch, steps, fast: bool, compile_: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    g, d = colorizer.build(preset, frozen_encoder=True)
    g, d = g.to(env.device), d.to(env.device)
    scan = torch.rand(batch, 1, size, size, device=env.device) * 2 - 1
    color = torch.rand(batch, 3, size, size, device=env.device) * 2 - 1
    if fast and env.cuda:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        scan, color = (t.contiguous(memory_format=torch.channels_last) for t in (scan, color))
    run_g, run_d = (torch.compile(g), torch.compile(d)) if compile_ else (g, d)
    tc = config.TrainColorConfig(preset=preset)
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.9))
    step_env = env if fast else Fp32(env.device, env.rank)
    if env.cuda:
        torch.cuda.reset_peak_memory_stats()
    warm = 10 if compile_ else 2
    for i in range(warm + steps):
        if i == warm:
            if env.cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
        train_color.train_step(run_g, run_d, opt_g, opt_d, scan, color, tc, step_env, i, 10**6)
    if env.cuda:
        torch.cuda.synchronize()
    rate = batch * steps / (time.perf_counter() - t)
    # Peak memory is measured on CUDA only: a process's peak RSS is monotonic, so CPU deltas after the first
    # measurement say nothing.
    mem = torch.cuda.max_memory_allocated() / 2**20 if env.cuda else None
    return rate, mem


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="base")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    env = train.setup(args.device)
    result = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if env.cuda else "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(), **vars(args)}
    for size in map(int, args.sizes.split(",")):
        naive, naive_mem = measure(env, args.preset, size, args.batch, args.steps, False, False)
        stage, stage_mem = measure(env, args.preset, size, args.batch, args.steps, True, args.compile)
        result[f"{size}px"] = {"naive_img_s": round(naive, 2), "stage_img_s": round(stage, 2),
                               "speedup": round(stage / naive, 2), "naive_peak_mb": naive_mem and round(naive_mem),
                               "stage_peak_mb": stage_mem and round(stage_mem)}
        print(size, result[f"{size}px"], flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "train_color.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
