"""Elastic deformation and friends: exact identity, statistics, consistency, edges."""

import dataclasses

import numpy as np
import pytest
import torch

from napari_unet.core.config import AugmentConfig
from napari_unet.core.training.augment import (
    AugmentParams,
    augment,
    noise_level,
    sample_augmentation,
)

ELASTIC_ONLY = AugmentConfig(
    rotate=False, flip=False, scale=(1, 1), gain=(1, 1), offset=(0, 0), gamma=(1, 1), noise=(1, 1)
)


def ramp(height, width):
    """Two channels holding each pixel's own row and column coordinate."""
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    return torch.from_numpy(np.stack([rows, cols]))


def labelled(height, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, height, width, generator=g)
    target = torch.randint(0, 7, (height, width), generator=g, dtype=torch.int64)
    weight = torch.rand(height, width, generator=g)
    return image, target, weight


@pytest.mark.parametrize("order", ["linear", "cubic"])
def test_zero_displacement_is_exactly_the_identity(order):
    image, target, weight = labelled(37, 52)
    out = augment(AugmentParams.identity(), image, target, weight, image_order=order)
    for before, after in zip((image, target, weight), out, strict=True):
        assert after.dtype == before.dtype and torch.equal(after, before)


def test_a_tile_cut_without_deformation_is_a_plain_crop():
    image, target, weight = labelled(40, 50)
    out = augment(
        AugmentParams.identity(), image, target, weight, out_shape=(4, 6), center=(10.5, 20.5)
    )
    assert torch.equal(out[0], image[:, 9:13, 18:24])
    assert torch.equal(out[1], target[9:13, 18:24]) and torch.equal(out[2], weight[9:13, 18:24])


def test_measured_displacements_have_the_requested_sigma():
    """Warp a coordinate ramp; at the grid nodes the shift of the ramp is the displacement."""
    source = ramp(400, 400)
    zeros = torch.zeros(400, 400)
    rng = np.random.default_rng(0)
    identity = ramp(201, 201) + 99.5  # where the output pixels sit in the source
    nodes = np.ix_([0, 100, 200], [0, 100, 200])
    measured = []
    for _ in range(150):
        params = sample_augmentation(rng, ELASTIC_ONLY)
        warped, _, _ = augment(params, source, zeros, zeros, out_shape=(201, 201))
        shift = (warped - identity).numpy()[:, nodes[0], nodes[1]]
        np.testing.assert_allclose(shift, params.displacement, atol=1e-3)
        measured.append(shift)
    measured = np.concatenate([m.ravel() for m in measured])
    assert measured.std() == pytest.approx(10.0, rel=0.06)
    assert abs(measured.mean()) < 0.6


def keys(s, a=-0.5):
    s = abs(s)
    if s <= 1:
        return (a + 2) * s**3 - (a + 3) * s**2 + 1
    if s < 2:
        return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
    return 0.0


def test_the_field_between_nodes_is_bicubic():
    """Literal Keys interpolation of the 3 x 3 displacements, pixel by pixel."""
    displacement = np.random.default_rng(1).normal(0, 10, (2, 3, 3)).astype(np.float32)
    params = AugmentParams(displacement=displacement)
    size = 41
    source = ramp(300, 300)
    zeros = torch.zeros(300, 300)
    warped, _, _ = augment(params, source, zeros, zeros, out_shape=(size, size))
    field = warped.numpy() - (ramp(size, size).numpy() + 129.5)
    for y in range(0, size, 7):
        for x in range(0, size, 5):
            u, v = y * 2 / (size - 1), x * 2 / (size - 1)  # node coordinates
            expected = np.zeros(2)
            for i in range(int(u) - 1, int(u) + 3):
                for j in range(int(v) - 1, int(v) + 3):
                    w = keys(u - i) * keys(v - j)
                    expected += w * displacement[:, min(max(i, 0), 2), min(max(j, 0), 2)]
            np.testing.assert_allclose(field[:, y, x], expected, atol=1e-3)


def test_targets_never_get_new_values_and_weights_come_from_the_same_pixel():
    height, width = 60, 70
    index = torch.arange(height * width, dtype=torch.int64).reshape(height, width)
    image = torch.rand(1, height, width)
    rng = np.random.default_rng(2)
    for _ in range(5):
        params = sample_augmentation(rng, AugmentConfig(elastic_sigma=15.0))
        _, target, weight = augment(params, image, index, index.double())
        assert torch.equal(weight, target.double())
    image, labels, _ = labelled(60, 70)
    _, target, _ = augment(params, image, labels, torch.ones(60, 70))
    assert set(target.unique().tolist()) <= set(range(7))


def test_flips_rotation_and_scale_do_what_they_say():
    image, target, weight = labelled(30, 30)
    flipped = augment(
        dataclasses.replace(AugmentParams.identity(), flip_rows=True), image, target, weight
    )
    assert torch.equal(flipped[0], image.flip(1)) and torch.equal(flipped[1], target.flip(0))
    turned = augment(
        dataclasses.replace(AugmentParams.identity(), angle=90.0), image, target, weight
    )
    assert torch.equal(turned[1], torch.rot90(target, -1, (0, 1)))  # clockwise on screen
    torch.testing.assert_close(turned[0], torch.rot90(image, -1, (1, 2)), atol=1e-5, rtol=0)
    source = ramp(101, 101)
    zoomed, _, _ = augment(
        dataclasses.replace(AugmentParams.identity(), scale=2.0),
        source,
        torch.zeros(101, 101),
        torch.zeros(101, 101),
    )
    np.testing.assert_allclose(np.diff(zoomed[0, :, 50].numpy()), 0.5, atol=1e-5)


@pytest.mark.parametrize("order", ["linear", "cubic"])
def test_beyond_the_edge_the_image_is_mirrored(order):
    """A uniform shift of 3 px reads rows -3..-1, which must mirror rows 2, 1, 0."""
    image, target, weight = labelled(20, 16)
    params = AugmentParams(displacement=np.full((2, 3, 3), [[[-3.0]], [[0.0]]], np.float32))
    warped, warped_target, _ = augment(params, image, target, weight, image_order=order)
    padded = np.pad(image[0].numpy(), ((3, 0), (0, 0)), mode="symmetric")[:20]
    np.testing.assert_allclose(warped[0].numpy(), padded, atol=1e-5)
    assert torch.equal(
        warped_target,
        torch.from_numpy(np.pad(target.numpy(), ((3, 0), (0, 0)), mode="symmetric")[:20]),
    )


def test_cubic_sampling_matches_a_literal_keys_interpolation():
    image = torch.rand(1, 12, 14, generator=torch.Generator().manual_seed(3))
    params = AugmentParams(displacement=np.full((2, 3, 3), [[[0.3]], [[-0.6]]], np.float32))
    warped, _, _ = augment(
        params, image, torch.zeros(12, 14), torch.zeros(12, 14), image_order="cubic"
    )
    source = np.pad(image[0].numpy().astype(np.float64), 3, mode="symmetric")
    for y, x in [(0, 0), (5, 7), (11, 13), (3, 12)]:
        sy, sx = y + 0.3, x - 0.6
        value = sum(
            keys(sy - i) * keys(sx - j) * source[i + 3, j + 3]
            for i in range(int(np.floor(sy)) - 1, int(np.floor(sy)) + 3)
            for j in range(int(np.floor(sx)) - 1, int(np.floor(sx)) + 3)
        )
        assert warped[0, y, x].item() == pytest.approx(value, abs=1e-5)


def test_intensity_changes_follow_the_formula():
    image = torch.tensor([[[-0.5, 0.0, 0.25, 1.0]]])
    params = dataclasses.replace(AugmentParams.identity(), gain=1.5, offset=0.1, gamma=2.0)
    out, _, _ = augment(params, image, torch.zeros(1, 4), torch.zeros(1, 4))
    expected = 1.5 * np.sign(image.numpy()) * np.abs(image.numpy()) ** 2 + 0.1
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_sampling_is_seeded_and_switched_off_parts_stay_identity(still):
    a = sample_augmentation(np.random.default_rng(5))
    b = sample_augmentation(np.random.default_rng(5))
    assert np.array_equal(a.displacement, b.displacement) and a.angle == b.angle
    off = dataclasses.replace(still, noise=(1.5, 2.0))  # all off but the noise
    params = sample_augmentation(np.random.default_rng(5), off)
    assert not params.displacement.any() and not (params.flip_rows or params.flip_columns)
    assert (params.angle, params.scale, params.gain, params.offset, params.gamma) == (
        0.0,
        1.0,
        1.0,
        0.0,
        1.0,
    )
    assert 1.25**0.5 <= params.noise <= 3**0.5  # 1.5-2x the image's noise: extra std
    assert sample_augmentation(np.random.default_rng(5), still).noise == 0.0


def test_noise_level_measures_the_pixel_noise_of_each_channel_under_smooth_content():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:300, :400] / 50.0
    smooth = np.stack([np.sin(rows) * np.cos(cols), rows / 6.0])  # slow content, 2 channels
    image = smooth + rng.normal(0.0, 1.0, (2, 300, 400)) * np.array([0.05, 0.2])[:, None, None]
    level = noise_level(image.astype(np.float32))
    assert level.dtype == np.float32 and level.shape == (2,)
    np.testing.assert_allclose(level, [0.05, 0.2], rtol=0.05)
    assert noise_level(np.ones((1, 50, 50), np.float32))[0] == 0.0  # no noise, none added
    assert noise_level(np.zeros((1, 5, 1), np.float32))[0] == 0.0  # one column: nothing to read


def test_added_noise_has_the_asked_strength_per_channel_and_its_seed():
    image = torch.full((2, 120, 120), 0.5)
    level = np.array([0.1, 0.02], np.float32)
    params = dataclasses.replace(AugmentParams.identity(), noise=1.5, noise_seed=7)
    zeros = torch.zeros(120, 120)
    out, target, weight = augment(params, image, zeros, zeros, noise_level=level)
    added = (out - image).numpy()
    np.testing.assert_allclose(added.std(axis=(1, 2)), 1.5 * level, rtol=0.05)
    assert abs(added.mean()) < 0.005 and target.equal(zeros) and weight.equal(zeros)
    again, _, _ = augment(params, image, zeros, zeros, noise_level=level)
    other, _, _ = augment(
        dataclasses.replace(params, noise_seed=8), image, zeros, zeros, noise_level=level
    )
    assert again.equal(out) and not other.equal(out)
    assert augment(params, image, zeros, zeros)[0].equal(image)  # no level given: no noise


def test_sampled_noise_spans_the_range_and_leaves_the_other_draws_alone():
    on, off = AugmentConfig(noise=(1.0, 2.0)), AugmentConfig(noise=(1, 1))
    factors = []
    for seed in range(200):
        noisy = sample_augmentation(np.random.default_rng(seed), on)
        clean = sample_augmentation(np.random.default_rng(seed), off)
        assert clean.noise == 0.0 and noisy.noise > 0.0
        assert dataclasses.replace(noisy, noise=0.0, noise_seed=0) == dataclasses.replace(
            clean, displacement=noisy.displacement
        ) and np.array_equal(noisy.displacement, clean.displacement)
        factors.append(np.sqrt(1.0 + noisy.noise**2))  # the tile's noise / the image's
    assert 1.0 <= min(factors) < 1.1 and 1.9 < max(factors) <= 2.0
    with pytest.raises(ValueError, match="noise range"):
        AugmentConfig(noise=(0.5, 2.0))  # less noise than the image has cannot be added
    assert AugmentConfig.from_dict(AugmentConfig(noise=[1, 3]).to_dict()).noise == (1.0, 3.0)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"image \(C, H, W\)"):
        augment(AugmentParams.identity(), torch.zeros(8, 8), torch.zeros(8, 8), torch.zeros(8, 8))
    with pytest.raises(ValueError, match="image_order"):
        augment(
            AugmentParams.identity(),
            torch.zeros(1, 8, 8),
            torch.zeros(8, 8),
            torch.zeros(8, 8),
            image_order="quintic",
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_result():
    image, target, weight = labelled(64, 64)
    params = sample_augmentation(np.random.default_rng(4))
    cpu = augment(params, image, target, weight)
    gpu = augment(params, image.cuda(), target.cuda(), weight.cuda())
    assert gpu[0].device.type == "cuda"
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=1e-4, rtol=0)
    assert (gpu[1].cpu() != cpu[1]).float().mean() < 0.001  # rounding ties may differ
