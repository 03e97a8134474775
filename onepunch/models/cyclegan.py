"""CycleGAN parts for the scan generator: light ResNet-style generators and PatchGAN discriminators.

The color->scan generator only has to remove color and shading while keeping lines, a local job: two downsamplings
and a few residual blocks give it a receptive field of a few dozen pixels and no capacity to recognise objects. The
scan->color generator is weaker still on purpose: its job is to produce varied colorings to cycle through.
Upsampling is nearest-neighbour + conv (no transposed-conv checkerboards in generated scans).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class GeneratorConfig:
    in_ch: int
    out_ch: int
    width: int = 32
    """Channels of the first layer; doubled at each downsampling."""
    n_down: int = 2
    """Downsamplings (the input size must divide by 2**n_down; callers pad)."""
    n_blocks: int = 4
    """Residual blocks at the lowest resolution."""
    base: str = ""
    """grey: the output is the input's greyscale conversion (ITU-R 601 luma, as Pillow's "L") plus a learned change,
    clamped, and the change starts at zero: a color->scan generator that begins as the training-free baseline and
    learns only what the scan domain asks on top of it. Empty: the plain generator (tanh)."""


@dataclass(frozen=True)
class DiscriminatorConfig:
    in_ch: int
    width: int = 64
    n_layers: int = 3
    """Stride-2 layers: 3 gives the classic 70x70 PatchGAN receptive field."""


# Presets: `tiny` runs on a CPU in seconds (tests, demo); `base` is the real thing.
PRESETS = {
    "tiny": {"c2s": dict(width=8, n_down=2, n_blocks=2), "s2c": dict(width=8, n_down=2, n_blocks=1),
             "d": dict(width=8, n_layers=3)},
    "base": {"c2s": dict(width=32, n_down=2, n_blocks=6), "s2c": dict(width=16, n_down=2, n_blocks=3),
             "d": dict(width=64, n_layers=3)},
}


def conv_norm_act(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, padding=k // 2, padding_mode="reflect"), nn.InstanceNorm2d(cout),
            nn.ReLU(inplace=True)]


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(*conv_norm_act(ch, ch, 3),
                                  nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """(B, in_ch, H, W) in [-1, 1] -> (B, out_ch, H, W) in [-1, 1]; H and W divisible by 2**n_down."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        layers = conv_norm_act(cfg.in_ch, w, 7)
        for i in range(cfg.n_down):
            layers += conv_norm_act(w * 2**i, w * 2 ** (i + 1), 3, stride=2)
        layers += [ResBlock(w * 2**cfg.n_down) for _ in range(cfg.n_blocks)]
        for i in reversed(range(cfg.n_down)):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), *conv_norm_act(w * 2 ** (i + 1), w * 2**i, 3)]
        layers += [nn.Conv2d(w, cfg.out_ch, 7, padding=3, padding_mode="reflect"), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        if cfg.base:
            assert cfg.base == "grey" and cfg.in_ch == 3 and cfg.out_ch == 1, "base grey: a color->scan generator"
            nn.init.zeros_(layers[-2].weight)  # the change starts at zero: the generator starts as the baseline
            nn.init.zeros_(layers[-2].bias)

    @property
    def multiple(self) -> int:
        return 2**self.cfg.n_down

    def forward(self, x):
        h, w = x.shape[-2:]
        assert h % self.multiple == 0 and w % self.multiple == 0, f"input {h}x{w} must divide by {self.multiple}"
        if self.cfg.base:
            grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).to(x.dtype)
            return (grey + self.net(x)).clamp(-1, 1)
        return self.net(x)


class Discriminator(nn.Module):
    """PatchGAN: (B, in_ch, H, W) -> (B, 1, H', W') realness logits, one per overlapping patch."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        layers = [nn.Conv2d(cfg.in_ch, w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        ch = w
        for i in range(1, cfg.n_layers + 1):
            nxt = w * min(2**i, 8)
            stride = 2 if i < cfg.n_layers else 1
            layers += [nn.Conv2d(ch, nxt, 4, stride, 1), nn.InstanceNorm2d(nxt), nn.LeakyReLU(0.2, inplace=True)]
            ch = nxt
        layers += [nn.Conv2d(ch, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def build(preset: str, base: str = "") -> dict[str, nn.Module]:
    """The four CycleGAN networks: c2s (the one we keep; `base`: GeneratorConfig.base), s2c, d_scan, d_color."""
    p = PRESETS[preset]
    return {
        "c2s": Generator(GeneratorConfig(in_ch=3, out_ch=1, base=base, **p["c2s"])),
        "s2c": Generator(GeneratorConfig(in_ch=1, out_ch=3, **p["s2c"])),
        "d_scan": Discriminator(DiscriminatorConfig(in_ch=1, **p["d"])),
        "d_color": Discriminator(DiscriminatorConfig(in_ch=3, **p["d"])),
    }


def generator_from_config(cfg: dict) -> Generator:
    return Generator(GeneratorConfig(**cfg))


def config_dict(g: Generator) -> dict:
    return asdict(g.cfg)


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to multiples of m (fully convolutional nets run at any size); returns the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)
