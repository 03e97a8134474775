"""train-scan benchmark: pairs/s of one CycleGAN step, the stage's step against a naive fp32/eager one, same run.

    .venv/bin/python bench/bench_train_scan.py --device cpu  --preset base --size 256 --batch 2 --steps 6
    .venv/bin/python bench/bench_train_scan.py --device cuda --preset base --size 256 --batch 8 --steps 50

"stage" is exactly what `onepunch train-scan` runs (bf16 autocast + channels_last on CUDA, optionally compiled;
fp32 on CPU); "naive" is fp32, contiguous, eager. Both run `train_step` on the same batches. The data path is timed
separately: how long the loader takes to deliver the batches the step consumes (shards from the demo pipeline),
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
from onepunch import config, data, train  # noqa: E402
from onepunch.models import cyclegan  # noqa: E402
from onepunch.stages import train_scan  # noqa: E402

OUT = Path(__file__).parent / "out"


def time_steps(env, preset, batch, size, steps, fast: bool, compile_: bool) -> float:
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
    warm = 3 if not compile_ else 10
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
    """Batches/s the loader delivers for one domain (colors, demo shards)."""
    cfg = config.load("pipelines/demo.toml")
    m = json.loads(Path("manifests/demo/shards.json").read_text())
    spec = data.StreamSpec(tuple(data.shard_list(m, "colors", "train")), cfg.shards.image_format, "RGB", size, batch,
                           0, 0)
    it = iter(data.loader(spec, 0, workers))
    next(it)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="base")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    env = train.setup(args.device)
    naive = time_steps(env, args.preset, args.batch, args.size, args.steps, fast=False, compile_=False)
    stage = time_steps(env, args.preset, args.batch, args.size, args.steps, fast=True, compile_=args.compile)
    step_s = args.batch / stage
    loader_batches_s = data_rate(args.batch, args.size, args.workers, 20)
    # Two domains per step: the loaders must deliver 2 batches per step; time waiting if they are slower.
    data_s = 2 / loader_batches_s
    result = {
        "date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if env.cuda else "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(), **vars(args),
        "naive_pairs_s": round(naive, 2), "stage_pairs_s": round(stage, 2), "speedup": round(stage / naive, 2),
        "loader_batches_s_per_domain": round(loader_batches_s, 1),
        "data_time_fraction_if_serial": round(data_s / (data_s + step_s), 3),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "train_scan.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
