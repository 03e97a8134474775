"""Run by tests/test_ddp.py, once alone and once under torchrun with 2 ranks (gloo). Not a test module.

    python tests/ddp_helper.py steps OUT [cuda]     # the GAN steps of both stages on fixed batches, weights to OUT
    python tests/ddp_helper.py stages A B           # train-scan and train-color on pipelines A (straight) and B
                                                    # (stopped after 3 steps, then resumed)

Batches: rank r of W takes rows r*B/W .. (r+1)*B/W of the same 2B-row batch, so 2 ranks x B must end where 1 rank x 2B
ends (every loss is a mean over the batch, gradients are averaged). The colorizer's encoder is frozen here: BatchNorm in
training mode normalises per rank by design (its buffers are averaged at checkpoints, not its batch statistics).
"""

from __future__ import annotations

import sys

import torch
import torch.distributed

from onepunch import config, dist, train
from onepunch.models import colorizer, cyclegan
from onepunch.stages import train_color, train_scan

STEPS, BATCH = 3, 4


def _rows(t: torch.Tensor, rank, world) -> torch.Tensor:
    n = len(t) // world
    return t[rank * n: (rank + 1) * n]


def steps(out: str, device: str = "cpu") -> None:
    env = train.setup(device)  # under torchrun: gloo on CPU, NCCL on CUDA (one GPU per rank)
    r, w = env.rank.rank, env.rank.world
    torch.manual_seed(0)
    nets = cyclegan.build("tiny")
    g, d = colorizer.build("tiny", frozen_encoder=True)
    # float64: what is left of a difference then is the sync, not the order of float32 sums (and TF32 and bf16
    # autocast, which the CUDA path turns on, do not touch float64).
    for m in [*nets.values(), g, d]:
        m.double().to(env.device)
    # No pool and no cycle noise: both are drawn per rank (like augmentations), so they cannot match draw for draw.
    sc = config.TrainScanConfig(preset="tiny", pool_size=0, cycle_noise=0.0)
    cc = config.TrainColorConfig(preset="tiny", nogan=True, nogan_phases=(0.34, 0.34))  # g_only, d_only, gan
    # SGD, not Adam: Adam's first steps are sign-like, so float noise in a near-zero gradient would flip an update.
    opt = lambda ps, lr: torch.optim.SGD([p for p in ps if p.requires_grad], lr=lr * 100)  # noqa: E731
    sg, sd = opt([*nets["c2s"].parameters(), *nets["s2c"].parameters()], 2e-4), opt(
        [*nets["d_scan"].parameters(), *nets["d_color"].parameters()], 2e-4)
    cg, cd = opt(g.parameters(), 1e-4), opt(d.parameters(), 4e-4)
    data = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        colors = (torch.rand(BATCH, 3, 32, 32, generator=data, dtype=torch.float64) * 2 - 1).to(env.device)
        scans = (torch.rand(BATCH, 1, 32, 32, generator=data, dtype=torch.float64) * 2 - 1).to(env.device)
        pools = {"scan": train.ImagePool(0), "color": train.ImagePool(0)}
        train_scan.train_step(nets, sg, sd, pools, _rows(colors, r, w), _rows(scans, r, w), sc, env,
                              torch.Generator().manual_seed(step))
        train_color.train_step(g, d, cg, cd, _rows(scans, r, w), _rows(colors, r, w), cc, env, step, STEPS)
    if r == 0:
        cpu = lambda m: {k: v.cpu() for k, v in m.state_dict().items()}  # noqa: E731
        torch.save({"scan": {k: cpu(m) for k, m in nets.items()}, "color": cpu(g), "critic": cpu(d)}, out)
    dist.shutdown()


def stages(straight: str, resumed: str) -> None:
    """Each GAN stage on two copies of one pipeline: straight through, and stopped after 3 steps then resumed
    (a new run that finds the checkpoint, as after a kill). One process group for all the runs: a stage leaves a
    group it did not start alone."""
    torch.distributed.init_process_group("gloo")
    for stage in (train_scan, train_color):
        stage.run(config.load(straight))
        try:
            stage.run(config.load(resumed), stop_after=3)
        except train.Stopped:
            pass
        stage.run(config.load(resumed))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    steps(*sys.argv[2:4]) if sys.argv[1] == "steps" else stages(*sys.argv[2:4])
