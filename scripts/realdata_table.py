"""Print the README's real-data table from runs/realdata-<set>/eval/metrics.json (after `make realdata-table`).

    python scripts/realdata_table.py fluent emojione
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [("real_scans", "generator", "scans: scan generator (learned, `scan.pt`) vs the true ink"),
        ("real_scans", "xdog", "scans: XDoG vs the true ink"),
        ("real_scans", "greyscale", "scans: greyscale conversion vs the true ink"),
        ("real_scans", "white", "scans: white page vs the true ink"),
        ("real", "colorizer", "colors: colorizer trained on the generator's pairs (the method)"),
        ("real", "xdog", "colors: colorizer trained on XDoG pairs"),
        ("real", "oracle", "colors: oracle: colorizer trained on true pairs"),
        ("real", "scan", "colors: input-as-output (the uncolored line art)"),
        ("real", "mean_color", "colors: mean training color")]


def main(sets: list[str]) -> None:
    print("| set (test pairs) | what, on held-out true pairs | PSNR | SSIM | CIEDE2000 |")
    print("| --- | --- | --- | --- | --- |")
    for name in sets:
        m = json.loads(Path(f"runs/realdata-{name}/eval/metrics.json").read_text())["sets"]
        for group, method, label in ROWS:
            r = m[group]["metrics"].get(method)
            if r is None:
                continue
            de = f"{r['ciede2000']:.2f}" if "ciede2000" in r else ""
            print(f"| {name} ({m[group]['images']}) | {label} | {r['psnr']:.2f} | {r['ssim']:.3f} | {de} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["fluent", "emojione"])
