"""Training machinery shared by the GAN stages (train-scan, train-color): no Trainer class, just helpers.

- `setup()`: device, rank and the process group (torchrun: NCCL on CUDA, gloo on CPU); `teardown()`.
- Gradients are averaged across ranks by `sync_grads` after backward (no DDP wrapper: GAN steps run each generator
  several times per backward, which DDP's reducer does not allow without contortions; these nets are small).
- `lr_factor`: constant, then linear decay to zero. `Checkpoints`: atomic, self-describing, keep the last N, loaded
  with `weights_only=True`. `StopFlag`: SIGTERM/SIGINT ask the loop to save and stop at the next step.
- `MetricLog`: JSONL (truncated to the resumed step, so a resumed log equals an uninterrupted one) and TensorBoard
  when installed. `save_grid`: PNG sample grids. `ImagePool`: the CycleGAN history of fakes, seeded per step.
"""

from __future__ import annotations

import io
import json
import os
import signal
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

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
    rank = rank_info()
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device = cuda, but no CUDA device is available (use auto or cpu)")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    else:
        dev = torch.device("cpu")
    if rank.launched and rank.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return Env(dev, rank)


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _distributed() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def broadcast_params(*modules: nn.Module) -> None:
    """Make every rank start from rank 0's weights."""
    if _distributed():
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, 0)


def sync_grads(*modules: nn.Module) -> None:
    """Average gradients across ranks, one flat all-reduce per module."""
    if not _distributed():
        return
    world = dist.get_world_size()
    for m in modules:
        grads = [p.grad for p in m.parameters() if p.grad is not None]
        if not grads:
            continue
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()


def same_on_all_ranks(*modules: nn.Module) -> bool:
    """True if every rank holds identical weights (a cheap end-of-training check of the gradient sync)."""
    if not _distributed():
        return True
    total = torch.stack([sum(p.detach().double().sum() for p in m.parameters()) for m in modules]).cpu()
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    return all(torch.equal(gathered[0], g) for g in gathered)


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


def save_atomic(obj, path: Path) -> None:
    """torch.save through the one atomic writer: serialised in memory first, so a full disk is a plain OSError
    (torch's own file writer reports it as 'basic_ios::clear: iostream error') and no temp file is left."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getbuffer())


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Load a checkpoint safely (weights_only: no code runs) and check its kind; UserError on anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a (safe) checkpoint
        raise UserError(f"{path} is not a loadable onepunch checkpoint ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        found = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{path} is a {found!r} checkpoint, expected {kind!r}")
    return ckpt


def load_model(path: str | Path, kind: str, build) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata) from a checkpoint of `kind`: `build(config)` makes the module, the state dict
    must fit it exactly. A checkpoint of the right kind with contents that do not fit is a UserError too."""
    ck = load_checkpoint(path, kind)
    try:
        model = build(ck["config"])
        model.load_state_dict(ck["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{path}: a {kind!r} checkpoint whose contents do not make a model "
                        f"({type(e).__name__}: {detail})") from None
    return model.eval(), {k: v for k, v in ck.items() if k != "state_dict"}


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
        if self.size == 0:
            return fakes
        fakes = fakes.detach()
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
