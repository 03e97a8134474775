"""Training machinery shared by the GAN stages (train-scan, train-color): no Trainer class, just helpers.

- `setup()`: device, rank and the process group (torchrun: NCCL on CUDA, gloo on CPU; collectives live in dist.py).
- Gradients are averaged across ranks by `dist.sync_grads` after backward (no DDP wrapper: GAN steps run each generator
  several times per backward, which DDP's reducer does not allow without contortions; these nets are small).
- `lr_factor`: constant, then linear decay to zero. `Checkpoints`: atomic, self-describing, keep the last N, loaded
  with `weights_only=True`. `StopFlag`: SIGTERM/SIGINT ask the loop to save and stop at the next step.
- `MetricLog`: JSONL (truncated to the resumed step, so a resumed log equals an uninterrupted one) and TensorBoard
  when installed. `save_grid`: PNG sample grids. `ImagePool`: the CycleGAN history of fakes, seeded per step.
"""

from __future__ import annotations

import io
import json
import signal
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from onepunch import dist
from onepunch.checkpoint import save_atomic
from onepunch.devices import pick_device
from onepunch.dist import Rank, rank_info
from onepunch.errors import Stopped, UserError  # noqa: F401  (Stopped: raised by the stages)
from onepunch.manifest import atomic_write


@dataclass(frozen=True)
class Env:
    device: torch.device
    rank: Rank

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """bf16 autocast on CUDA; fp32 on CPU (CPU bf16 is slower than fp32 on most machines)."""
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else nullcontext()


def setup(device: str = "auto") -> Env:
    """The device (devices.pick_device: under torchrun, this rank's GPU) and the process group of a training run."""
    rank = rank_info()
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    dist.init(dev.type == "cuda", dev)
    return Env(dev, rank)


def lr_factor(step: int, total: int, decay_start: float) -> float:
    """1 until decay_start * total steps, then linearly down to 0 at total."""
    start = int(decay_start * total)
    if step < start or total <= start:
        return 1.0
    return max(0.0, (total - step) / (total - start))


def unwrap(m: nn.Module) -> nn.Module:
    """The plain module behind torch.compile (checkpoints never store compiled or wrapped names)."""
    return getattr(m, "_orig_mod", m)


class Checkpoints:
    """`dir/step-NNNNNNNN.pt`: atomic writes, the last `keep` kept, loaded with weights_only=True."""

    def __init__(self, directory: Path, keep: int):
        self.dir, self.keep = Path(directory), keep

    def paths(self) -> list[Path]:
        return sorted(self.dir.glob("step-*.pt"))

    def latest(self) -> Path | None:
        paths = self.paths()
        return paths[-1] if paths else None

    def save(self, state: dict, step: int) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"step-{step:08d}.pt"
        save_atomic(state, path)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def clear(self) -> None:
        for p in self.paths():
            p.unlink()


def same_run(ck: dict, config_hash: str, world: int, path: Path) -> bool:
    """Whether training checkpoint `ck` continues this run. Another config: no (the caller starts over, as for any
    stale stage). Same config, other world size: UserError, never a silent restart that throws the progress away:
    the data each rank reads and the batch both depend on the world size, so the run cannot continue exactly."""
    if ck["config_hash"] != config_hash:
        return False
    if ck["world_size"] != world:
        raise UserError(f"{path} was saved by a run with {ck['world_size']} rank(s), this one has {world}: resume "
                        f"with {ck['world_size']} (torchrun --nproc_per_node ...), or delete {path.parent} to start "
                        "over")
    return True


class StopFlag:
    """While active, SIGTERM and SIGINT (Ctrl-C) set `requested` instead of killing: the loop saves and stops."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class MetricLog:
    """One JSON line per logged step; TensorBoard too when it is installed. Only rank 0 writes."""

    def __init__(self, path: Path, resume_step: int, enabled: bool = True):
        self.path, self.enabled, self.tb = Path(path), enabled, None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if self.path.exists():  # drop lines past the checkpoint we resume from: they will be logged again
            kept = [ln for ln in self.path.read_text().splitlines() if json.loads(ln).get("step", 0) <= resume_step]
        self.path.write_text("".join(ln + "\n" for ln in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=resume_step + 1)
        except ImportError:
            pass

    def log(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **{k: round(float(v), 6) for k, v in values.items()}}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def save_grid(rows: list[torch.Tensor], path: Path) -> None:
    """Rows of (N, C, H, W) images in [-1, 1] (C = 1 or 3) as one PNG: one row per tensor."""
    from torchvision.utils import save_image

    rows = [r.float().cpu().expand(-1, 3, -1, -1) for r in rows]
    grid = torch.cat(rows)
    buf = io.BytesIO()
    save_image((grid + 1) / 2, buf, format="png", nrow=rows[0].shape[0], padding=2, pad_value=1.0)
    atomic_write(path, buf.getbuffer())


class ImagePool:
    """Past fakes shown to a discriminator (Shrivastava et al.): half the time a stored fake replaces the new one."""

    def __init__(self, size: int):
        self.size = size
        self.images: torch.Tensor | None = None  # (n <= size, C, H, W), on the training device

    def query(self, fakes: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        fakes = fakes.detach()  # before any return: the discriminator's loss must not reach the generators
        if self.size == 0:
            return fakes
        out = []
        for img in fakes:
            img = img[None]
            n = 0 if self.images is None else len(self.images)
            if n < self.size:
                self.images = img.clone() if self.images is None else torch.cat([self.images, img])
                out.append(img)
            elif torch.rand((), generator=g) < 0.5:
                j = int(torch.randint(0, n, (), generator=g))
                out.append(self.images[j: j + 1].clone())
                self.images[j] = img[0]
            else:
                out.append(img)
        return torch.cat(out)

    def state(self) -> torch.Tensor:
        return self.images.cpu() if self.images is not None else torch.zeros(0)

    def load(self, t: torch.Tensor, device: torch.device) -> None:
        self.images = t.to(device) if t.numel() else None
