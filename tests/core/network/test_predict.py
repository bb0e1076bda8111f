"""Whole-image prediction, normalisation, instance labels and device choice."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_unet.core.cells.instances import label_instances
from napari_unet.core.config import NormalizationConfig, UNetConfig
from napari_unet.core.images import normalize
from napari_unet.core.network.device import pick_device
from napari_unet.core.network.model import UNet, halo, nearest_valid_input_sizes
from napari_unet.core.network.predict import predict_image


def two_squares(shape=(61, 47)):
    image = np.zeros(shape, np.float32)
    image[5:20, 5:20] = 1.0
    image[30:50, 25:40] = 1.0
    return image


@pytest.mark.parametrize("depth", [1, 2])
def test_prediction_keeps_the_image_grid(make_threshold_unet, depth):
    """A thresholding network must reproduce the thresholded image, pixel for pixel."""
    image = two_squares()
    probabilities = predict_image(make_threshold_unet(depth), image, NormalizationConfig(0, 100))
    assert probabilities.shape == (2, *image.shape)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-6)
    np.testing.assert_array_equal(probabilities[1] > 0.5, image > 0.5)


def test_border_pixels_see_the_mirrored_image():
    """Two 3x3 box filters over the mirror-padded image, checked against scipy."""
    config = UNetConfig(depth=1, base_channels=1, dropout=0.0)
    net = UNet(config)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for module in (net.down[0][0], net.down[0][2]):
            module.weight[0, 0] = 1.0 / 9  # 3x3 box filter
        net.head.weight[1, 0] = 4.0
    yy, xx = np.mgrid[:20, :30]
    image = (yy * 30 + xx * xx).astype(np.float32)
    probabilities = predict_image(net, image, NormalizationConfig(0, 100))
    x = (image - image.min()) / (image.max() - image.min())
    twice = ndi.uniform_filter(ndi.uniform_filter(x, 3, mode="mirror"), 3, mode="mirror")
    expected = 1 / (1 + np.exp(-4.0 * twice))
    # scipy's "mirror" is numpy's "reflect"; ours is numpy's "symmetric" = scipy's "reflect"
    assert not np.allclose(probabilities[1], expected, atol=1e-4)
    twice = ndi.uniform_filter(ndi.uniform_filter(x, 3, mode="reflect"), 3, mode="reflect")
    expected = 1 / (1 + np.exp(-4.0 * twice))
    np.testing.assert_allclose(probabilities[1], expected, atol=1e-5)


def test_flips_make_the_prediction_mirror_with_the_image():
    """A random network is not mirror-symmetric; the mean over the 4 mirror images is (for
    an image whose padded size needs no extra rows and columns, so that the padding
    mirrors too)."""
    config = UNetConfig(depth=3, base_channels=4, dropout=0.0)
    net = UNet(config)
    net.reset_parameters(torch.Generator().manual_seed(0))
    size = nearest_valid_input_sizes(config, 60)[1] - 2 * halo(config)
    image = np.random.default_rng(0).random((size, size + 2**config.poolings), np.float32)
    for axes in ((0,), (1,), (0, 1)):
        mirrored = np.flip(image, axes).copy()
        for flips, same in ((False, False), (True, True)):
            expected = np.flip(predict_image(net, image, flips=flips), [a + 1 for a in axes])
            got = predict_image(net, mirrored, flips=flips)
            assert np.allclose(got, expected, atol=1e-5) == same, (axes, flips)


def test_prediction_checks_the_channels():
    net = UNet(UNetConfig(in_channels=2, depth=1, base_channels=2))
    with pytest.raises(ValueError, match=r"shape \(2, H, W\)"):
        predict_image(net, np.zeros((20, 20), np.float32))
    grey = UNet(UNetConfig(depth=1, base_channels=2))
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        predict_image(grey, np.zeros((3, 20, 20), np.float32))
    image = np.random.default_rng(0).random((20, 20), dtype=np.float32)
    np.testing.assert_array_equal(predict_image(grey, image[None]), predict_image(grey, image))


def test_normalize_maps_percentiles_to_0_and_1():
    out = normalize(np.arange(1001, dtype=np.uint16), NormalizationConfig(10, 90))
    assert out.dtype == np.float32
    assert out[100] == pytest.approx(0.0, abs=1e-6) and out[900] == pytest.approx(1.0, abs=1e-6)
    assert out[0] < 0 and out[1000] > 1  # not clipped


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((8, 8), 3.0), "constant"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN"),
        (np.zeros((0, 4)), "empty"),
    ],
)
def test_normalize_refuses_images_without_information(image, message):
    with pytest.raises(ValueError, match=message):
        normalize(image)


def test_sparse_bright_pixels_fall_back_to_the_full_range():
    image = np.zeros((100, 100), np.float32)
    image[0, 0] = 5.0  # 99.8th percentile is 0: use min and max instead of failing
    assert normalize(image)[0, 0] == pytest.approx(1.0)


def test_label_instances_numbers_regions_and_drops_small_ones():
    probability = np.zeros((30, 30), np.float32)
    probability[2:10, 2:10] = 0.9
    probability[2:10, 11:20] = 0.8  # separated by one background column: another object
    probability[25, 25] = 0.99  # one pixel: below min_size
    labels = label_instances(probability, min_size=5)
    assert labels.dtype == np.uint16
    assert labels.max() == 2
    assert np.unique(labels[2:10, 2:10]).tolist() == [1]
    assert np.unique(labels[2:10, 11:20]).tolist() == [2]
    assert labels[25, 25] == 0


def test_label_instances_uses_uint32_beyond_65535_objects():
    probability = np.zeros((520, 520), np.float32)
    probability[::2, ::2] = 1.0  # 67,600 single-pixel objects
    labels = label_instances(probability, min_size=1)
    assert labels.dtype == np.uint32 and labels.max() == 260 * 260


def test_pick_device_prefers_accelerators_and_checks_requests(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="not available here; use cpu"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="not a device"):
        pick_device("gpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")


def two_overlapping_discs():
    yy, xx = np.mgrid[:40, :60]
    return (
        ((yy - 20) ** 2 + (xx - 20) ** 2 < 121) | ((yy - 20) ** 2 + (xx - 38) ** 2 < 121)
    ).astype(np.float32)


def test_watershed_splits_cells_the_network_merged():
    probability = two_overlapping_discs()
    assert label_instances(probability).max() == 1
    split = label_instances(probability, method="watershed")
    assert split.max() == 2
    assert split[20, 12] != split[20, 46] and split[20, 12] > 0 and split[20, 46] > 0
    assert ((split > 0) == (probability > 0.5)).all()  # the cells keep their pixels


def test_holes_are_filled_unless_asked_not_to():
    ring = np.zeros((30, 30), np.float32)
    ring[5:25, 5:25] = 1.0
    ring[10:20, 10:20] = 0.0
    assert (label_instances(ring)[10:20, 10:20] == 1).all()
    kept = label_instances(ring, fill_holes=False, join_enclosed=False)
    assert (kept[10:20, 10:20] == 0).all()
    assert (label_instances(ring, fill_holes=False)[10:20, 10:20] == 1).all()  # (joined)
    with pytest.raises(ValueError, match="use one of components, watershed"):
        label_instances(ring, method="magic")
