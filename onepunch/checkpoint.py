"""Checkpoints of every model kind: written atomically, read with torch.load(weights_only=True) (no code from a
user's file ever runs), their kind checked. The library (colorize, scanners) and the stages all load models here.

- scan.pt (SCAN_KIND): the train-scan color -> scan generator. color.pt (COLOR_KIND): the colorizer, encoder included.
- Training checkpoints (each stage's own kind) go through `save_atomic` / `load_checkpoint` too.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from onepunch.errors import UserError
from onepunch.manifest import FORMAT, atomic_write
from onepunch.models import colorizer, cyclegan

SCAN_KIND = "onepunch.scan-generator"
COLOR_KIND = "onepunch.colorizer"


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


def load_model(path: str | Path, kind: str, build, added: tuple[str, ...] = ()) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata) from a checkpoint of `kind`: `build(config)` makes the module, the state dict
    must fit it exactly, except that weights under the `added` prefixes (parts added in a later version, which start
    as a no-op) may be absent: they keep their initial values, and metadata["absent"] lists those prefixes.
    A checkpoint of the right kind with contents that do not fit is a UserError too."""
    ck = load_checkpoint(path, kind)
    try:
        model = build(ck["config"])
        state = ck["state_dict"]
        own = model.state_dict()
        absent = sorted({p for p in added for k in own if k.startswith(p) and k not in state})
        state = {**{k: v for k, v in own.items() if k.startswith(tuple(absent))}, **state}
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{path}: a {kind!r} checkpoint whose contents do not make a model "
                        f"({type(e).__name__}: {detail})") from None
    return model.eval(), {**{k: v for k, v in ck.items() if k != "state_dict"}, "absent": absent}


def save_generator(gen: cyclegan.Generator, path: Path, **meta) -> None:
    """Write a self-describing scan.pt (config + weights + metadata; tensors and plain types only), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({
        "kind": SCAN_KIND, "format": FORMAT, "model": "cyclegan.Generator", "config": cyclegan.config_dict(gen),
        "state_dict": {k: v.cpu() for k, v in gen.state_dict().items()},
        "io": {"input": "RGB (B,3,H,W) in [-1,1]", "output": "scan (B,1,H,W) in [-1,1]", "multiple": gen.multiple},
        **meta,
    }, path)


def load_generator(path: str | Path) -> tuple[cyclegan.Generator, dict]:
    """scan.pt -> (generator in eval mode, the checkpoint's metadata). Safe: weights_only, kind checked."""
    return load_model(path, SCAN_KIND, cyclegan.generator_from_config)


def save_colorizer(g: colorizer.Colorizer, path: Path, working_size: int, **meta) -> None:
    """color.pt: everything `load_colorizer` (and `onepunch colorize`) needs, loadable with weights_only=True.
    working_size: the longer side of the images it was trained on (the shards' max_side), the scale at which
    colorize runs it by default."""
    save_atomic({"kind": COLOR_KIND, "format": FORMAT, "config": dict(g.cfg.__dict__),
                       "state_dict": {k: v.cpu() for k, v in g.state_dict().items()},
                       "io": {"input": "scan (B,1,H,W) in [-1,1], H and W multiples of 32",
                              "output": "RGB (B,3,H,W) in [-1,1]", "multiple": 32, "working_size": working_size},
                       **meta}, path)


def load_colorizer(path: str | Path) -> tuple[colorizer.Colorizer, dict]:
    """color.pt -> (colorizer in eval mode, metadata). Safe: weights_only, kind checked. A color.pt made before
    hints and palettes loads with them absent (metadata["absent"] == ["control."]) and colorizes as it did."""
    return load_model(path, COLOR_KIND, lambda c: colorizer.Colorizer(colorizer.ColorizerConfig(**c),
                                                                       frozen_encoder=True), added=("control.",))
