"""colorize benchmark: latency of one 2,000 x 3,000 px page, and pages/s over a folder, end to end.

    .venv/bin/python bench/bench_colorize.py --device cpu
    .venv/bin/python bench/bench_colorize.py --device cuda --pages 64 --batch 8
    .venv/bin/python bench/bench_colorize.py --device cpu --backends torch,onnx   # onnxruntime too
    .venv/bin/python bench/bench_colorize.py --device cpu --presets tiny --working-size 1024 --tile 512 --tile-passes 2 --no-folder

The page is a synthetic manga page (line art in framed panels, grey PNG). The colorizer has random weights (speed does
not depend on them): the `base` preset (the method's ResNet50 U-Net) and `tiny` (the demo's), with train-color's
default head (lab; `--head rgb` for the rows measured before 2026-12-07). Latency, median of
--repeats: the page already decoded -> colored page at full size (PageColorizer.colorize: resize to the working size,
net, back to full size), with its parts (net alone; full-size transfer); and file to file (PNG decode + colorize +
PNG encode). Throughput: `onepunch colorize` over a folder of --pages pages (decode/encode threads overlap the net).
With `--backends torch,onnx` each preset also runs exported (`onepunch export --onnx`) on onnxruntime.
Results: bench/out/colorize.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onepunch import memory, pages, regions  # noqa: E402
from onepunch.checkpoint import save_colorizer  # noqa: E402
from onepunch.config import ColorizeConfig  # noqa: E402
from onepunch.inference import PageColorizer, luma  # noqa: E402
from onepunch.models import colorizer  # noqa: E402
from onepunch.sample import draw_page  # noqa: E402
from onepunch.stages import colorize as stage  # noqa: E402
from onepunch.transfer import transfer_detail  # noqa: E402
from onepunch.ui import console  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "colorize"


def timed(fn, repeats: int, cuda: bool) -> float:
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--presets", default="base,tiny")
    ap.add_argument("--head", default="lab", help="the colorizer's head (train-color's default: lab)")
    ap.add_argument("--working-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--backends", default="torch")
    ap.add_argument("--tile", type=int, default=0, help="tiled inference with this tile side")
    ap.add_argument("--tile-passes", type=int, default=2)
    ap.add_argument("--no-folder", action="store_true", help="latencies only")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    page_path = OUT / "page.png"
    if not page_path.exists():
        Image.fromarray(draw_page(np.random.default_rng(0), 2000, 3000)).save(page_path)
    folder = OUT / "folder"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for i in range(args.pages):
        shutil.copy(page_path, folder / f"page-{i:03d}.png")
    cuda = args.device.startswith("cuda")
    results = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if cuda else "cpu",
               "torch": torch.__version__, "threads": torch.get_num_threads(), "page": "2000x3000 grey PNG",
               **vars(args), "presets_results": {}}
    data = page_path.read_bytes()
    img = pages.read_page(data)
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        g, _ = colorizer.build(preset, frozen_encoder=False, head=args.head)
        pt = OUT / f"{preset}.pt"
        save_colorizer(g.eval(), pt, working_size=args.working_size)
        for backend in args.backends.split(","):
            if backend == "onnx":
                from onepunch.export import export_onnx

                ckpt = OUT / f"{preset}.onnx"
                export_onnx(pt, ckpt)
            else:
                ckpt = pt
            results["presets_results"][f"{preset}-{backend}"] = measure(ckpt, img, data, folder, args, cuda)
    (OUT.parent / "colorize.json").write_text(json.dumps(results, indent=1))


def measure(ckpt: Path, img, data: bytes, folder: Path, args, cuda: bool) -> dict:
    """Latencies and folder throughput of one model file (a color.pt, or a .onnx: onnxruntime)."""
    c = PageColorizer(ckpt, device=args.device, batch_size=args.batch, tile=args.tile, tile_passes=args.tile_passes)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    c.colorize(img)  # warm-up (cuDNN autotune, allocator)
    grey = luma(img)
    work = c.working_copy(grey)
    color = c.color_at_working_size([work])[0]
    off = PageColorizer(ckpt, device=args.device, batch_size=args.batch, tile=args.tile, tile_passes=args.tile_passes,
                        regions="off")
    shapes = regions.find(grey)
    big = np.argsort(shapes.area * shapes.enclosed())[::-1][:20]  # the 20 largest enclosed regions, a click in each
    ys, xs = [], []
    for r in big:
        yy, xx = np.nonzero(shapes.labels == r)
        ys.append(int(yy[len(yy) // 2]))
        xs.append(int(xx[len(xx) // 2]))
    clicks20 = [{"x": x, "y": y, "color": [200, 60, 40]} for x, y in zip(xs, ys, strict=True)]
    r = {"working_size": c.working_size,
         "page_s": timed(lambda c=c: c.colorize(img), args.repeats, cuda),
         "net_s": timed(lambda c=c, w=work: c.color_at_working_size([w]), args.repeats, cuda),
         "transfer_s": timed(lambda g=grey, w=work, x=color: transfer_detail(g, w, x), args.repeats, False),
         "file_to_file_s": timed(lambda c=c: pages.encode_page(c.colorize(pages.read_page(data)), "png", 95),
                                 args.repeats, cuda),
         # The page steps added in 2026-12: pooling the net's colors per region (at the working size), and with a
         # click in each of 20 shapes, the full-size shapes, their fill and the flats.
         "pool_s": timed(lambda w=work, x=color: regions.pool(x, w), args.repeats, False),
         "page_regions_off_s": timed(lambda: off.colorize(img), args.repeats, cuda),
         "page_20_clicks_s": timed(lambda c=c: c.colorize(img, hints=clicks20), args.repeats, cuda)}
    if ckpt.suffix == ".pt":
        # Colors from the training set: a memory of this very page (the net's colors standing in for the truth,
        # three times, so every shape's three nearest agree) colors every shape, the most it can cost.
        mem = memory.Memory.of([c.remember(grey, c.colorize(img))] * 3, 3)
        c.memory = mem
        r["memory_shapes"] = len(mem.keys) // 3
        r["page_memory_s"] = timed(lambda c=c: c.colorize(img), args.repeats, cuda)
        c.memory = None
    if cuda:
        r["page_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    if not args.no_folder:
        out = OUT / f"colored-{ckpt.name}"
        shutil.rmtree(out, ignore_errors=True)
        cc = ColorizeConfig(device=args.device, batch_size=args.batch, working_size=args.working_size)
        t = time.perf_counter()
        s = stage.colorize([folder], out, ckpt, cc, log=console(False))
        r["folder_pages_per_s"] = s.done / (time.perf_counter() - t)
        r["folder_pages"] = s.done
    print(ckpt.name, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    return r


if __name__ == "__main__":
    main()
