"""color.pt -> ONNX, and the ONNX model as a drop-in for the torch net (`colorize --backend onnx`).

The exported graph is the network alone: inputs `scan` (B, 1, H, W), `hints` (B, 4, H, W) and `palette` (B, 65),
all float32 (zeros: no hints, no palette), output `color` (B, 3, H, W); values in [-1, 1]; B, H and W dynamic, H and
W multiples of 32. The page work around it (working size, padding, the transfer back to full size) stays in Python:
it is numpy and OpenCV, not the network. The color.pt's metadata travels in the model's metadata_props
("onepunch", JSON), so a .onnx file colorizes exactly as its color.pt does, settings included.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from pathlib import Path

import torch

from onepunch.errors import UserError
from onepunch.manifest import atomic_write
from onepunch.models.colorizer import HINT_CHANNELS, PALETTE_DIM

OPSET = 18
"""The ONNX opset of exported models (onnxruntime 1.16 and later run it)."""
META_KEY = "onepunch"
TOLERANCE = 1e-3
"""Largest difference between torch's and onnxruntime's output (in [-1, 1]) that export accepts: the demo's color.pt
differs by 9.4e-7 on the probe (float32 kernels summing in another order)."""


@contextlib.contextmanager
def _quiet():
    """The exporter's and converter's log lines (a version conversion's traceback among them) kept from the user:
    what matters is checked on the written model and said in one line."""
    import logging

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch.onnx._internal")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _module(name: str, what: str):
    try:
        return __import__(name)
    except ImportError:
        raise UserError(f"{what} needs the onnx extra: pip install 'onepunch[onnx]' (onnx, onnxruntime, "
                        "onnxscript)") from None


def _probe(h: int = 64, w: int = 96) -> tuple[torch.Tensor, ...]:
    """Inputs to trace and check with: a line-art-like scan (white with dark strokes), a few hints, a palette."""
    g = torch.Generator().manual_seed(0)
    scan = torch.ones(2, 1, h, w)
    scan[:, :, ::7] = -1
    scan[:, :, :, ::11] = -1
    hints = torch.zeros(2, HINT_CHANNELS, h, w)
    hints[:, :3, 10:14, 20:24] = torch.rand(2, 3, 1, 1, generator=g) * 2 - 1
    hints[:, 3, 10:14, 20:24] = 1
    palette = torch.rand(2, PALETTE_DIM, generator=g)
    return scan, hints, palette


def _ours(path: Path, onnx) -> bool:
    """An ONNX file that `onepunch export` wrote (it carries our metadata)."""
    try:
        return any(p.key == META_KEY for p in onnx.load(str(path), load_external_data=False).metadata_props)
    except Exception:  # not ONNX at all
        return False


def export_onnx(ckpt: str | Path, out: str | Path, opset: int = OPSET, overwrite: bool = False) -> dict:
    """Write color.pt's network as ONNX (atomically) and check onnxruntime's output against torch's on a probe
    input. Returns {"path", "opset", "max_difference", "bytes"}. Refuses to write over the checkpoint itself, or over
    a file that is not an ONNX model onepunch exported (unless `overwrite`)."""
    from onepunch.checkpoint import load_colorizer

    onnx, ort = _module("onnx", "export --onnx"), _module("onnxruntime", "export --onnx")
    ckpt, out = Path(ckpt), Path(out)
    newest = onnx.defs.onnx_opset_version()
    if not OPSET <= opset <= newest:
        raise UserError(f"--opset must be {OPSET}..{newest} (torch's exporter writes {OPSET} and later), not {opset}")
    if out.exists() and ckpt.exists() and out.resolve() == ckpt.resolve():
        raise UserError(f"--onnx {out} is the checkpoint being exported: choose another file")
    if out.exists() and not out.is_file():
        raise UserError(f"--onnx {out} is not a file")
    if out.exists() and not overwrite and not _ours(out, onnx):
        raise UserError(f"{out} exists and was not written by onepunch export: choose another path, or pass "
                        "--overwrite to replace it")
    net, meta = load_colorizer(ckpt)
    meta.pop("memory", None)  # colors from the training set need the decoder's features: the torch backend's
    inputs = _probe()
    # torch.export's exporter (the TorchScript one is deprecated): height and width are 32 x a dynamic number, so
    # one graph takes any page the PageColorizer pads; up to 16384 px a side.
    batch, h, w = (torch.export.Dim(n, min=1, max=m) for n, m in (("batch", 1024), ("h", 512), ("w", 512)))
    shapes = {"scan": {0: batch, 2: 32 * h, 3: 32 * w}, "hints": {0: batch, 2: 32 * h, 3: 32 * w},
              "palette": {0: batch}}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecations: not the user's concern
        path = Path(tmp) / "color.onnx"
        program = torch.onnx.export(net, inputs, dynamo=True, input_names=["scan", "hints", "palette"],
                                    output_names=["color"], dynamic_shapes=shapes, opset_version=opset,
                                    verbose=False)
        program.save(str(path))
        model = onnx.load(str(path))
    written = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise UserError(f"torch's exporter wrote opset {written}, not {opset}: not written (choose {OPSET}..{newest})")
    model.metadata_props.add(key=META_KEY, value=json.dumps(meta, default=str))  # everything but the weights
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # an opset newer than this onnxruntime runs
        raise UserError(f"onnxruntime cannot run the exported model at opset {opset} ({type(e).__name__}): not "
                        "written; a lower --opset may do") from None
    got = session.run(None, {"scan": inputs[0].numpy(), "hints": inputs[1].numpy(), "palette": inputs[2].numpy()})[0]
    with torch.inference_mode():
        want = net(*inputs).numpy()
    diff = float(abs(got - want).max())
    if diff > TOLERANCE:
        raise UserError(f"the exported model differs from {ckpt} by {diff:.2g} (> {TOLERANCE}): not written")
    atomic_write(Path(out), data)
    return {"path": str(out), "opset": opset, "max_difference": diff, "bytes": len(data)}


def _check_model(meta, inputs: set[str], outputs: set[str]) -> str:
    """What is wrong with an exported model's metadata or signature, or '' (what colorize reads from them)."""
    if not isinstance(meta, dict):
        return f"its {META_KEY} metadata is a {type(meta).__name__}, not an object"
    io_ = meta.get("io", {})
    multiple = io_.get("multiple", 32) if isinstance(io_, dict) else None
    if not isinstance(multiple, int) or isinstance(multiple, bool) or not 1 <= multiple <= 1024:
        return f"io.multiple must be a whole number 1..1024, not {multiple!r}"
    size = io_.get("working_size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 16384:
        return f"io.working_size must be a whole number 0..16384, not {size!r}"
    if not isinstance(meta.get("absent", []), list) or not isinstance(meta.get("train_config", {}), dict):
        return "absent must be a list and train_config an object"
    if inputs != {"scan", "hints", "palette"} or "color" not in outputs:
        return f"inputs {sorted(inputs)} and outputs {sorted(outputs)}, not scan, hints, palette -> color"
    return ""


class OnnxColorizer:
    """A .onnx file from export_onnx, called like the torch Colorizer: (scan, hints, palette) tensors -> color
    tensor (on the CPU; the CUDA provider when the device is cuda and onnxruntime has it)."""

    def __init__(self, path: str | Path, device: torch.device):
        ort = _module("onnxruntime", "--backend onnx")  # onnxruntime alone: the metadata comes through it too
        path = Path(path)
        if not path.is_file():
            raise UserError(f"model not found: {path}")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
            self.meta = json.loads(self.session.get_modelmeta().custom_metadata_map[META_KEY])
        except Exception as e:  # not an ONNX file, or one not exported by onepunch
            raise UserError(f"{path} is not a colorizer exported by `onepunch export --onnx` "
                            f"({type(e).__name__})") from None
        problem = _check_model(self.meta, {i.name for i in self.session.get_inputs()},
                               {o.name for o in self.session.get_outputs()})
        if problem:
            raise UserError(f"{path}: not a colorizer exported by `onepunch export --onnx` ({problem})")

    def __call__(self, scan, hints=None, palette=None) -> torch.Tensor:
        b, _, h, w = scan.shape
        hints = torch.zeros(b, HINT_CHANNELS, h, w) if hints is None else hints
        palette = torch.zeros(b, PALETTE_DIM) if palette is None else palette
        feed = {"scan": scan, "hints": hints, "palette": palette}
        out = self.session.run(None, {k: v.detach().float().cpu().contiguous().numpy() for k, v in feed.items()})
        return torch.from_numpy(out[0]).to(scan.device)

