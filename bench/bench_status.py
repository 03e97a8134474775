"""`onepunch status --json` wall time, as a user runs it (a new process each time): on a new pipeline (nothing built)
and on one whose stages are all done (it then checksums every output it lists).

    .venv/bin/python bench/bench_status.py [--done-pipeline pipelines/demo.toml] [--repeats 7]

The new pipeline is the demo's config pointed at an empty folder; the done one is whatever pipeline you give (`make
demo` first for the default). Also reports whether torch was imported (it must not be). Results: bench/out/status.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"
REPO = Path(__file__).resolve().parents[1]
PROBE = ("import sys; from onepunch import cli; sys.argv = ['onepunch', *sys.argv[1:]]\n"
         "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
         "print('TORCH' if 'torch._C' in sys.modules else 'NO-TORCH', file=sys.stderr)")


def timed(pipeline: Path, repeats: int) -> dict:
    times, torch_loaded = [], False
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", PROBE, "status", "--json", "--pipeline", str(pipeline)],
                           cwd=REPO, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
        torch_loaded |= "NO-TORCH" not in r.stderr
    states = [s["state"] for s in json.loads(r.stdout)["stages"]]
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3), "states": states,
            "torch_imported": torch_loaded}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--done-pipeline", default="pipelines/demo.toml")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = (REPO / "pipelines" / "demo.toml").read_text()
        new = Path(tmp) / "new.toml"
        new.write_text(f'out_dir = "{tmp}/runs"\nmanifests = "{tmp}/manifests"\n' + text)
        result = {"new_pipeline": timed(new, args.repeats),
                  "done_pipeline": {"pipeline": args.done_pipeline, **timed(REPO / args.done_pipeline, args.repeats)},
                  "python": platform.python_version(), "machine": platform.machine()}
    OUT.mkdir(exist_ok=True)
    (OUT / "status.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
