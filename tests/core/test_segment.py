"""Segmentation of images and stacks: shapes, numbering, progress, errors."""

import numpy as np
import torch

from napari_unet.core.cells.rules import InstanceRules
from napari_unet.core.config import NormalizationConfig, UNetConfig
from napari_unet.core.events import PlaneDone, TilesDone, drain
from napari_unet.core.network.model import UNet
from napari_unet.core.network.predict import predict_image
from napari_unet.core.segment import segment


def blobs(seed, shape=(60, 70), count=3):
    image = np.zeros(shape, np.float32)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        r, c = rng.integers(5, shape[0] - 10), rng.integers(5, shape[1] - 10)
        image[r : r + 5, c : c + 5] = 1.0
    return image


def test_a_2d_image_gives_2d_labels(make_threshold_unet):
    image = np.zeros((60, 70), np.float32)
    image[5:12, 5:12] = image[30:40, 40:50] = 1.0
    events = []
    result = drain(
        segment(make_threshold_unet(2), image, NormalizationConfig(0, 100), keep_probability=True),
        events.append,
    )
    labels = result.labels
    assert result.cell_probability.shape == (60, 70)
    np.testing.assert_array_equal(labels > 0, result.cell_probability > 0.5)
    assert labels.shape == (60, 70) and labels.dtype == np.uint16 and labels.max() == 2
    assert isinstance(events[-1], PlaneDone) and events[-1] == PlaneDone(1, 1)
    assert any(isinstance(e, TilesDone) for e in events)


def test_a_stack_is_numbered_without_repeats_across_planes(make_threshold_unet):
    stack = np.stack([blobs(0), blobs(1), blobs(2)])
    events = []
    net = make_threshold_unet(2)
    labels = drain(
        segment(net, stack, NormalizationConfig(0, 100), rules=InstanceRules(min_size=1)),
        events.append,
    ).labels
    assert labels.shape == stack.shape
    per_plane = [set(np.unique(p)) - {0} for p in labels]
    assert all(per_plane) and not set.intersection(*per_plane)
    assert sorted(set.union(*per_plane)) == list(range(1, labels.max() + 1))
    for z in range(3):  # the same as segmenting each plane alone, up to the numbering
        alone = drain(
            segment(net, stack[z], NormalizationConfig(0, 100), rules=InstanceRules(min_size=1))
        ).labels
        np.testing.assert_array_equal(alone > 0, labels[z] > 0)
    assert [e.done for e in events if isinstance(e, PlaneDone)] == [0, 1, 2, 3]


def test_the_rules_say_whether_to_predict_with_flips():
    net = UNet(UNetConfig(depth=2, base_channels=4, dropout=0.0))
    net.reset_parameters(torch.Generator().manual_seed(0))
    image = np.random.default_rng(0).random((40, 50), np.float32)
    for flips in (False, True):
        result = drain(segment(net, image, keep_probability=True, rules=InstanceRules(flips=flips)))
        expected = predict_image(net, image, flips=flips)[1]
        np.testing.assert_allclose(result.cell_probability, expected, atol=1e-5)
    assert not np.allclose(predict_image(net, image, flips=True), predict_image(net, image))


def test_a_multichannel_model_takes_channel_first_images():
    net = UNet(UNetConfig(in_channels=2, depth=1, base_channels=2)).eval()
    image = np.random.default_rng(0).random((2, 30, 40), dtype=np.float32)
    assert drain(segment(net, image)).labels.shape == (30, 40)
    assert drain(segment(net, np.stack([image, image]))).labels.shape == (2, 30, 40)


def test_relabel_gives_the_same_cells_with_the_same_rules_and_others_with_others(
    make_outline_unet, tmp_path
):
    from napari_unet.core.segment import relabel
    from napari_unet.core.synthetic import touching_cells
    from napari_unet.model_io import load_model, save_model, store_rules

    image = touching_cells((160, 160), rng=np.random.default_rng(3)).image
    stack = np.stack([image, image[::-1]])
    net = make_outline_unet()
    rules = InstanceRules(min_size=10, neck_ratio=0.7)
    for data in (image, stack):
        result = drain(segment(net, data, NormalizationConfig(), rules=rules, keep_classes=True))
        kept = result.probabilities
        assert len(kept.planes) == (1 if data.ndim == 2 else 2)
        again = relabel(kept, rules)
        assert again.dtype == result.labels.dtype
        np.testing.assert_array_equal(again, result.labels)  # no network, the same cells
    areas = np.bincount(result.labels.ravel())[1:]
    cutoff = int(np.median(areas[areas > 0]))
    fewer = relabel(kept, InstanceRules(min_size=cutoff, neck_ratio=0.7))
    assert 0 < fewer.max() < result.labels.max()
    assert np.bincount(fewer.ravel())[1:].min() >= cutoff  # each kept cell is that big

    path = save_model(tmp_path / "m.safetensors", net, training={"steps": 3})
    store_rules(path, InstanceRules(min_size=cutoff, neck_ratio=0.7))
    loaded = load_model(path)
    assert loaded.rules == InstanceRules(min_size=cutoff, neck_ratio=0.7)
    assert loaded.training["steps"] == 3 and loaded.training["rules_set_by_hand"]
    for a, b in zip(loaded.model.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
