"""Which device a run uses, answered without importing torch where the answer cannot be CUDA."""

from __future__ import annotations

import os
import sys

from onepunch.config import DEVICES
from onepunch.errors import UserError

_GPU_NODES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")  # NVIDIA, ROCm, WSL


def cuda_available() -> bool:
    """torch.cuda.is_available(). On Linux with none of the GPU device nodes, or on macOS, it is False whatever torch
    says, and `onepunch status` (which asks, for build-pairs' digest) then does not import torch."""
    if sys.platform == "darwin" or (sys.platform.startswith("linux") and not any(map(os.path.exists, _GPU_NODES))):
        return False
    import torch

    return torch.cuda.is_available()


def device_type(device: str) -> str:
    """cpu or cuda: the kind of device `device` (auto, cpu, cuda, cuda:N) resolves to, as pick_device resolves it."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device.split(":")[0]


def pick_device(device: str):
    """auto, cpu, cuda or cuda:N -> torch.device (under torchrun, plain cuda is this rank's GPU)."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda requested, but no CUDA device is available (use auto or cpu)")
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UserError(f"`device` must be {', '.join(DEVICES)}, not {device!r}")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    if dev.type == "cuda" and dev.index is None and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per rank
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return dev
