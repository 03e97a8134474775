"""color.pt -> ONNX, and the ONNX model as a drop-in for the torch net (`colorize --backend onnx`).

The exported graph is the network alone: inputs `scan` (B, 1, H, W), `hints` (B, 4, H, W) and `palette` (B, 65),
all float32 (zeros: no hints, no palette), output `color` (B, 3, H, W); values in [-1, 1]; B, H and W dynamic, H and
W multiples of 32. The page work around it (working size, padding, the transfer back to full size) stays in Python:
it is numpy and OpenCV, not the network. The color.pt's metadata travels in the model's metadata_props
("onepunch", JSON), so a .onnx file colorizes exactly as its color.pt does, settings included.
"""

from __future__ import annotations

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


def export_onnx(ckpt: str | Path, out: str | Path, opset: int = OPSET) -> dict:
    """Write color.pt's network as ONNX (atomically) and check onnxruntime's output against torch's on a probe
    input. Returns {"path", "opset", "max_difference", "bytes"}."""
    from onepunch.checkpoint import load_colorizer

    onnx, ort = _module("onnx", "export --onnx"), _module("onnxruntime", "export --onnx")
    net, meta = load_colorizer(ckpt)
    inputs = _probe()
    # torch.export's exporter (the TorchScript one is deprecated): height and width are 32 x a dynamic number, so
    # one graph takes any page the PageColorizer pads; up to 16384 px a side.
    batch, h, w = (torch.export.Dim(n, min=1, max=m) for n, m in (("batch", 1024), ("h", 512), ("w", 512)))
    shapes = {"scan": {0: batch, 2: 32 * h, 3: 32 * w}, "hints": {0: batch, 2: 32 * h, 3: 32 * w},
              "palette": {0: batch}}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecations: not the user's concern
        path = Path(tmp) / "color.onnx"
        program = torch.onnx.export(net, inputs, dynamo=True, input_names=["scan", "hints", "palette"],
                                    output_names=["color"], dynamic_shapes=shapes, opset_version=opset,
                                    verbose=False)
        program.save(str(path))
        model = onnx.load(str(path))
    model.metadata_props.add(key=META_KEY, value=json.dumps(meta, default=str))  # everything but the weights
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {"scan": inputs[0].numpy(), "hints": inputs[1].numpy(), "palette": inputs[2].numpy()})[0]
    with torch.inference_mode():
        want = net(*inputs).numpy()
    diff = float(abs(got - want).max())
    if diff > TOLERANCE:
        raise UserError(f"the exported model differs from {ckpt} by {diff:.2g} (> {TOLERANCE}): not written")
    atomic_write(Path(out), data)
    return {"path": str(out), "opset": opset, "max_difference": diff, "bytes": len(data)}


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

    def __call__(self, scan, hints=None, palette=None) -> torch.Tensor:
        b, _, h, w = scan.shape
        hints = torch.zeros(b, HINT_CHANNELS, h, w) if hints is None else hints
        palette = torch.zeros(b, PALETTE_DIM) if palette is None else palette
        feed = {"scan": scan, "hints": hints, "palette": palette}
        out = self.session.run(None, {k: v.detach().float().cpu().contiguous().numpy() for k, v in feed.items()})
        return torch.from_numpy(out[0]).to(scan.device)

