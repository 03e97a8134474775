"""build-pairs benchmark: end-to-end images/s (decode + generator + encode + write) at 256 and 512 px.

    .venv/bin/python bench/bench_build_pairs.py --device cpu --images 96
    .venv/bin/python bench/bench_build_pairs.py --device cuda --images 4000 --batch 64 --workers 12

Sources: the 2 MP illustration-like JPEGs of bench_shards.py, sharded at each size. The scan generator is the `base`
preset with random weights (speed does not depend on the weights). Next to each end-to-end figure: the generator alone
on the same images, in the same process, which says what bounds the stage. Results: bench/out/build_pairs.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shards import OUT, make_source, pipeline_file  # noqa: E402

from onepunch import checkpoint, config, data, pipeline, train  # noqa: E402
from onepunch.models import cyclegan  # noqa: E402
from onepunch.scanners import GeneratorScanner, XDoGScanner  # noqa: E402
from onepunch.stages import build_pairs, shards  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--shard-workers", type=int, default=2, help="workers of the shards stage that makes the sources")
    args = ap.parse_args()
    root = OUT / f"src{args.images}"
    make_source(root, args.images)
    torch.manual_seed(0)
    ckpt = OUT / "bench-scan.pt"
    checkpoint.save_generator(cyclegan.build("base")["c2s"], ckpt)
    env = train.setup(args.device)
    results = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if env.cuda else "cpu",
               "torch": torch.__version__, "threads": torch.get_num_threads(), **vars(args)}
    for size in map(int, args.sizes.split(",")):
        name = f"pairs{size}"
        shutil.rmtree(OUT / "runs" / name, ignore_errors=True)
        path = pipeline_file(name, root, args.shard_workers, 1000, size)
        text = path.read_text() + (f'\n[build_pairs]\nckpt = "{ckpt}"\nbatch_size = {args.batch}\n'
                                   f'workers = {args.workers}\ndevice = "{args.device}"\n')
        path.write_text(text.replace("val_fraction = 0.0", "val_fraction = 0.0\n"))
        cfg = config.load(path)
        shards.run(cfg)
        sm = json.loads(pipeline.manifest_path(cfg, "shards").read_text())
        imgs = [x for _, x in data.first_samples(data.shard_list(sm, "colors", "train"), args.images, ("jpg", "RGB"))]
        for method in ("ckpt", "xdog"):
            scanner = GeneratorScanner(str(ckpt), env, args.batch) if method == "ckpt" else XDoGScanner()
            scanner(imgs[: args.batch])  # warm up
            if env.cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            scanner(imgs)
            alone = len(imgs) / (time.perf_counter() - t)
            shutil.rmtree(pipeline.out_dir(cfg, "build-pairs"), ignore_errors=True)
            pipeline.manifest_path(cfg, "build-pairs").unlink(missing_ok=True)
            run_cfg = config.load(path, {"build_pairs.method": method})
            t = time.perf_counter()
            build_pairs.run(run_cfg)
            e2e = len(imgs) / (time.perf_counter() - t)
            results[f"{method}_{size}px"] = {"end_to_end_img_s": round(e2e, 2), "scanner_alone_img_s": round(alone, 2)}
            if env.cuda:
                results[f"{method}_{size}px"]["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    (OUT / "build_pairs.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
