"""The U-Net of the paper: layers, sizes, parameter count, initialisation."""

import math

import pytest
import torch
from torch import nn

from napari_unet.core.config import PRESETS, UNetConfig, preset
from napari_unet.core.network.model import (
    UNet,
    halo,
    input_size_for_output,
    is_valid_input_size,
    nearest_valid_input_sizes,
    output_size,
    valid_input_sizes,
)

TINY = UNetConfig(depth=3, base_channels=4, dropout=0.0)


def test_paper_preset_has_the_23_convolutional_layers_of_the_paper():
    net = UNet(preset("paper"))
    convs = [m for m in net.modules() if type(m) is nn.Conv2d]
    upconvs = [m for m in net.modules() if type(m) is nn.ConvTranspose2d]
    assert len(convs) + len(upconvs) == 23
    assert sum(m.kernel_size == (3, 3) for m in convs) == 18
    assert sum(m.kernel_size == (1, 1) for m in convs) == 1
    assert len(upconvs) == 4
    assert all(m.kernel_size == (2, 2) and m.stride == (2, 2) for m in upconvs)
    assert all(m.padding == (0, 0) for m in convs)  # valid convolutions
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_paper_preset_has_31030658_parameters():
    net = UNet(preset("paper"))
    assert sum(p.numel() for p in net.parameters()) == 31_030_658


def test_paper_channels_double_at_each_pooling_and_halve_at_each_upconvolution():
    net = UNet(preset("paper"))
    assert [blk[-2].out_channels for blk in net.down] == [64, 128, 256, 512, 1024]
    assert [(m.in_channels, m.out_channels) for m in net.upconv] == [
        (1024, 512),
        (512, 256),
        (256, 128),
        (128, 64),
    ]
    assert net.head.out_channels == 2


@torch.no_grad()
def test_paper_preset_maps_572_to_388():
    net = UNet(preset("paper")).eval()
    out = net(torch.zeros(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)
    assert output_size(net.config, 572) == 388
    assert halo(net.config) == 92 == (572 - 388) // 2
    assert input_size_for_output(net.config, 388) == 572


@torch.no_grad()
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_output_shape_matches_size_arithmetic_for_every_valid_size(name):
    config = preset(name, base_channels=2, dropout=0.0)  # same arithmetic, tiny network
    net = UNet(config).eval()
    sizes = valid_input_sizes(config, 1, 260)
    assert sizes, "no valid size below 260"
    for h, w in zip(sizes, reversed(sizes), strict=True):
        out = net(torch.zeros(1, 1, h, w))
        assert out.shape[-2:] == (output_size(config, h), output_size(config, w))


@torch.no_grad()
def test_valid_sizes_are_exactly_those_the_layers_run_without_losing_pixels():
    """Literal reference for the arithmetic: run the layers themselves, size by size.

    A size is usable when torch runs it and every pooled feature map has an even size
    (torch floors odd sizes silently, which shifts the output against the input).
    """

    class Unchecked(UNet):
        def _check_input(self, x):
            pass

    net = Unchecked(TINY).eval()
    pooled = []
    net.pool.register_forward_hook(lambda m, i, o: pooled.append(i[0].shape[-1]))
    for size in range(1, 80):
        pooled.clear()
        try:
            out = net(torch.zeros(1, 1, size, size)).shape[-1]
            usable = out >= 1 and all(p % 2 == 0 for p in pooled)
        except RuntimeError:
            usable = False
        assert usable == is_valid_input_size(TINY, size), size
        if usable:
            assert out == output_size(TINY, size)
        else:
            with pytest.raises(ValueError, match="not valid"):
                UNet(TINY)(torch.zeros(1, 1, size, size))


def test_valid_sizes_are_a_progression_with_the_pooling_step():
    for config in PRESETS.values():
        step = 2**config.poolings
        sizes = valid_input_sizes(config, 1, 1200)
        assert all(b - a == step for a, b in zip(sizes, sizes[1:], strict=False))
        # the paper's formula for the halo: 6 * 2**poolings - 4
        assert halo(config) == 6 * step - 4
        assert all(s - output_size(config, s) == 2 * halo(config) for s in sizes)


def test_invalid_size_names_the_nearest_valid_sizes():
    config = preset("paper")
    with pytest.raises(ValueError, match=r"570 is not valid .* use 556 or 572"):
        output_size(config, 570)
    with pytest.raises(ValueError, match=r"use 188$"):
        output_size(config, 100)  # below the smallest input: only the next one up
    with pytest.raises(ValueError, match=r"output size 390 .* use 388 or 404"):
        input_size_for_output(config, 390)
    assert nearest_valid_input_sizes(config, 572) == (572, 572)
    assert nearest_valid_input_sizes(config, 573) == (572, 588)


def test_same_padding_keeps_the_size_and_needs_multiples_of_the_pooling_factor():
    config = UNetConfig(depth=3, base_channels=2, padding="same", dropout=0.0)
    net = UNet(config).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 64, 48)).shape == (1, 2, 64, 48)
    assert halo(config) == 0
    assert input_size_for_output(config, 64) == 64
    with pytest.raises(ValueError, match="use 64 or 68"):
        output_size(config, 66)


def test_he_initialisation_draws_weights_with_std_sqrt_2_over_fan_in():
    net = UNet(preset("paper"))
    conv = net.down[3][0]  # 3x3, 256 -> 512 channels: 1.2 M weights
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 256)), rel=0.01)
    assert conv.weight.mean().item() == pytest.approx(0.0, abs=1e-3)
    up = net.upconv[0]  # 2x2 stride 2, 1024 -> 512: each output unit sees 1024 inputs
    assert up.weight.std().item() == pytest.approx(math.sqrt(2 / 1024), rel=0.01)
    assert all(m.bias.abs().max() == 0 for m in net.modules() if isinstance(m, nn.Conv2d))


def test_initialisation_is_reproducible_with_a_generator():
    a, b = UNet(TINY), UNet(TINY)
    a.reset_parameters(torch.Generator().manual_seed(3))
    b.reset_parameters(torch.Generator().manual_seed(3))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_dropout_sits_at_the_end_of_the_contracting_path_and_is_active_only_in_training():
    config = UNetConfig(depth=2, base_channels=2, dropout=0.5)
    net = UNet(config)
    x = torch.rand(1, 1, 60, 60)
    seen = []
    net.dropout.register_forward_hook(lambda m, i, o: seen.append((i[0].shape, o)))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    assert seen[0][0][1] == 4  # the bottom level's channels: dropout before the first upconv
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))


def test_batch_norm_and_channels_are_configurable():
    config = UNetConfig(in_channels=3, classes=4, depth=2, base_channels=8, batch_norm=True)
    net = UNet(config).eval()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 6  # 3 blocks x 2 convs
    with torch.no_grad():
        assert net(torch.rand(2, 3, 28, 28)).shape == (2, 4, 12, 12)
    with pytest.raises(ValueError, match="3 input channel"):
        net(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        net(torch.rand(3, 28, 28))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("depth", 0, "smallest allowed is 1"),
        ("classes", 1, "smallest allowed is 2"),
        ("base_channels", 2.5, "whole number"),
        ("padding", "reflect", "use 'valid'"),
        ("dropout", 1.0, r"\[0, 1\)"),
    ],
)
def test_bad_configs_say_how_to_fix_them(field, value, message):
    with pytest.raises(ValueError, match=message):
        UNetConfig(**{field: value})


def test_config_round_trips_through_a_dict_and_rejects_unknown_fields():
    config = preset("light", in_channels=2)
    assert UNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="no field"):
        UNetConfig.from_dict({**config.to_dict(), "kernel": 5})
    with pytest.raises(ValueError, match="choose one of light, paper"):
        preset("huge")
