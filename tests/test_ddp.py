"""Data-parallel training equals one process (CPU, gloo, 2 ranks under torchrun): the gradient sync, the resume."""

import subprocess
import sys

import pytest
import torch

from onepunch import config, pipeline
from onepunch.stages import build_pairs, shards, train_color, train_scan
from tests.conftest import REPO, demo_tables, write_pipeline

pytestmark = pytest.mark.slow
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]


def flat(tree, prefix: str = "") -> dict:
    """{dotted.path: tensor} of nested dicts and lists."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    out = {}
    for k, v in items:
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, (dict, list)) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="NCCL needs two GPUs (it refuses two ranks on one device)"))])
def test_two_ranks_of_batch_b_step_like_one_rank_of_batch_2b(tmp_path, device):
    """Both GAN stages' train steps (and every NoGAN phase), in float64 so that only the sync can differ; on CPU over
    gloo, on two GPUs over NCCL (every collective's tensors on the group's device)."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    for cmd in ([sys.executable, "tests/ddp_helper.py", "steps", str(one), device],
                [*TORCHRUN, "tests/ddp_helper.py", "steps", str(two), device]):
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    a, b = flat(torch.load(one, weights_only=True)), flat(torch.load(two, weights_only=True))
    assert a.keys() == b.keys()
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    worst = max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst < 1e-10, (worst, moved[:5])  # float32 sums in self-attention: 1e-15 measured


def test_two_ranks_stop_and_resume_end_where_an_uninterrupted_run_ends(tmp_path, sample_dir):
    paths = []
    for work in ("straight", "resumed"):
        (tmp_path / work).mkdir()
        tables = demo_tables(tmp_path / work, sample_dir)
        tables["train_scan"] = {"preset": "tiny", "size": 32, "batch_size": 2, "steps": 6, "ckpt_every": 3,
                                "sample_every": 6, "val_every": 6, "val_images": 2, "workers": 0, "pool_size": 3}
        tables["build_pairs"] = {"method": "xdog", "workers": 0}
        tables["train_color"] = {"preset": "tiny", "size": 32, "start_size": 32, "batch_size": 2, "steps": 6,
                                 "nogan": False, "ckpt_every": 3, "sample_every": 6, "val_every": 6, "val_images": 2, "workers": 0}
        paths.append(write_pipeline(tmp_path / work / "p.toml", tables))
        cfg = config.load(paths[-1])
        shards.run(cfg)
        build_pairs.run(cfg)
    r = subprocess.run([*TORCHRUN, "tests/ddp_helper.py", "stages", *map(str, paths)], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    straight, resumed = (config.load(p) for p in paths)
    for stage, ckpt in ((train_scan, lambda c: pipeline.out_dir(c, "train-scan") / "ckpt" / "step-00000006.pt"),
                        (train_color, lambda c: pipeline.out_dir(c, "train-color") / "32" / "ckpt" / "step-00000006.pt")):
        name = "train-scan" if stage is train_scan else "train-color"
        assert pipeline.state(straight, name) == pipeline.state(resumed, name) == "done"
        a, b = (torch.load(ckpt(c), weights_only=True) for c in (straight, resumed))
        assert a["world_size"] == b["world_size"] == 2
        keys = ("models", "pools") if stage is train_scan else ("generator", "critic")
        ta, tb = (flat({k: ck[k] for k in keys}) for ck in (a, b))
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), stage.NAME
