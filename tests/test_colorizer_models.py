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
