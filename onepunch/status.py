"""Which stages of a pipeline are done, stale or missing: each stage's manifest compared with the current config."""

from __future__ import annotations

from onepunch.config import PipelineConfig
from onepunch.stages import build_pairs, shards, train_color, train_scan

# Stage names are the CLI command names, in pipeline order.
STAGES = ["shards", "train-scan", "build-pairs", "train-color"]


def stage_states(cfg: PipelineConfig) -> list[dict]:
    checkers = {"shards": (shards.state, shards.manifest_path),
                "train-scan": (train_scan.state, train_scan.manifest_path),
                "build-pairs": (build_pairs.state, build_pairs.manifest_path),
                "train-color": (train_color.state, train_color.manifest_path)}
    out = []
    for name in STAGES:
        state_fn, path_fn = checkers[name]
        out.append({"name": name, "state": state_fn(cfg), "manifest": str(path_fn(cfg))})
    return out
