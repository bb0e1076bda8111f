"""Images as the network takes them: axes, colour, normalisation and the pixel scale
(large painted cells are trained and segmented shrunk, and the labels come back at the
image's own pixels)."""

import dataclasses
import math

import dask.array as da
import numpy as np
import pytest
import torch

from napari_unet.core.cells.metrics import match_instances
from napari_unet.core.config import LabelConfig, TrainConfig, UNetConfig
from napari_unet.core.events import Preview, drain
from napari_unet.core.images import (
    MAX_DIAMETER,
    TARGET_DIAMETER,
    choose_scale,
    colour_channels,
    count_planes,
    is_colour,
    labels_to_image,
    network_shape,
    network_window,
    pair_channels,
    resize_image,
    resize_labels,
)
from napari_unet.core.network.model import UNet
from napari_unet.core.segment import segment
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.training import TrainingControl, train
from napari_unet.core.training.trainset import TrainingSet


@pytest.mark.parametrize(
    ("shape", "channels", "planes"),
    [((5, 6), 1, 1), ((4, 5, 6), 1, 4), ((3, 5, 6), 3, 1), ((2, 3, 5, 6), 3, 2)],
)
def test_count_planes_reads_the_axes(shape, channels, planes):
    assert count_planes(shape, channels) == planes


@pytest.mark.parametrize(
    ("shape", "channels"), [((5,), 1), ((2, 2, 5, 6), 1), ((2, 5, 6), 3), ((5, 6), 2)]
)
def test_shapes_that_do_not_fit_the_model_are_explained(shape, channels):
    with pytest.raises(ValueError, match="Move the channel axis first"):
        count_planes(shape, channels)


def test_the_channels_of_a_pair_come_from_its_labels():
    assert pair_channels((5, 6), (5, 6)) == 1
    assert pair_channels((3, 5, 6), (3, 5, 6)) == 1  # a stack
    assert pair_channels((2, 5, 6), (5, 6)) == 2
    assert pair_channels((4, 2, 5, 6), (4, 5, 6)) == 2
    with pytest.raises(ValueError, match="the labels have shape"):
        pair_channels((3, 5, 6), (2, 5, 6))
    with pytest.raises(ValueError, match="the labels have shape"):
        pair_channels((5, 6), (5, 7))


def grey_and_colour(shape=(2, 12, 14)):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, shape[1:], dtype=np.uint8)
    colour = rng.integers(0, 255, (*shape[1:], 3), dtype=np.uint8)
    return grey, colour


@pytest.mark.parametrize(
    ("shape", "colour"),
    [
        ((5, 6), False),
        ((5, 6, 3), True),
        ((5, 6, 4), True),
        ((2, 5, 6, 3), True),
        ((3, 5, 6), False),
        ((5, 6, 2), False),
        ((3,), False),
    ],
)
def test_napari_rule_for_colour(shape, colour):
    assert is_colour(shape) is colour


def test_grey_saved_in_colour_becomes_grey_and_alpha_is_dropped():
    grey, _ = grey_and_colour()
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    np.testing.assert_array_equal(colour_channels(rgba), grey)
    np.testing.assert_array_equal(colour_channels(rgba, in_channels=1), grey)
    as_three = colour_channels(rgba, in_channels=3)  # a colour model gets three channels
    assert as_three.shape == (3, 12, 14)
    np.testing.assert_array_equal(as_three, np.stack([grey] * 3))


def test_colour_goes_channels_first_for_a_new_or_colour_model():
    _, colour = grey_and_colour()
    for wanted in (None, 3):
        moved = colour_channels(colour, in_channels=wanted)
        assert moved.shape == (3, 12, 14)
        for c in range(3):
            np.testing.assert_array_equal(moved[c], colour[..., c])
    stack = np.stack([colour, colour[::-1]])  # (Z, H, W, 3) -> (Z, 3, H, W)
    moved = colour_channels(stack)
    assert moved.shape == (2, 3, 12, 14)
    np.testing.assert_array_equal(moved[1, 2], colour[::-1, :, 2])


def test_colour_for_a_grey_model_is_refused():
    _, colour = grey_and_colour()
    with pytest.raises(ValueError, match="in colour .* takes 1 channel"):
        colour_channels(colour, in_channels=1)


def test_other_images_pass_unchanged_and_dask_stays_lazy():
    grey, colour = grey_and_colour()
    assert colour_channels(grey) is grey
    lazy = colour_channels(da.from_array(colour, chunks=(6, 7, 3)))
    assert isinstance(lazy, da.Array) and lazy.shape == (3, 12, 14)
    np.testing.assert_array_equal(lazy.compute(), np.moveaxis(colour, -1, 0))


def disc_area(diameter):
    return math.pi * diameter**2 / 4


def enlarged(sample, factor):
    """A synthetic sample ``factor`` times larger: image linear, labels nearest."""
    shape = tuple(round(n * factor) for n in sample.image.shape)
    return (
        resize_image(sample.image, shape),
        resize_labels(sample.truth, shape),
        resize_labels(sample.annotation, shape),
    )


def test_cells_up_to_the_largest_diameter_keep_their_pixels_larger_ones_shrink():
    assert choose_scale(0) == 1.0
    assert choose_scale(disc_area(18)) == 1.0
    assert choose_scale(disc_area(MAX_DIAMETER)) == 1.0
    assert choose_scale(disc_area(60)) == pytest.approx(TARGET_DIAMETER / 60, abs=1e-4)
    # shrunk cells are TARGET_DIAMETER across
    assert 60 * choose_scale(disc_area(60)) == pytest.approx(TARGET_DIAMETER, abs=0.01)


def test_resizing_keeps_label_values_and_gives_the_asked_shape():
    labels = np.zeros((40, 50), np.int32)
    labels[4:20, 5:30] = 7
    labels[22:38, 10:45] = 3
    small = resize_labels(labels, network_shape(labels.shape, 0.5))
    assert small.shape == (20, 25)
    assert set(np.unique(small)) == {0, 3, 7}
    assert np.array_equal(resize_labels(small, labels.shape)[4:20, 5:30], labels[4:20, 5:30])
    image = np.random.default_rng(0).random((2, 40, 50)).astype(np.float32)
    shrunk = resize_image(image, (20, 25))
    assert shrunk.shape == (2, 20, 25) and shrunk.dtype == np.float32
    # smoothed before it is shrunk: noise averages out, the mean stays
    assert shrunk.std() < image.std() / 1.5
    assert shrunk.mean() == pytest.approx(image.mean(), abs=0.01)
    assert resize_image(image, (40, 50)) is not None
    assert np.array_equal(resize_image(image, (40, 50)), image)


def test_a_window_maps_to_the_network_pixels_that_cover_it():
    window = network_window((slice(10, 31), slice(0, 7)), 0.5)
    assert window == (slice(5, 16), slice(0, 4))


def test_labels_come_back_at_the_image_pixels_with_smooth_outlines():
    yy, xx = np.mgrid[:120, :160]
    truth = np.zeros((120, 160), np.int32)
    truth[np.hypot(yy - 60, xx - 50) < 30] = 1
    truth[(np.hypot(yy - 60, xx - 108) < 30) & (truth == 0)] = 2  # touches the first
    shape = network_shape(truth.shape, 0.4)
    small = resize_labels(truth, shape).astype(np.uint16)
    back = labels_to_image(small, truth.shape)
    assert back.shape == truth.shape and back.max() == 2
    scores = match_instances(truth, back)
    assert scores.tp == 2 and scores.mean_matched_iou > 0.95
    # better than the blocky nearest-neighbour labels
    blocky = match_instances(truth, resize_labels(small, truth.shape)).mean_matched_iou
    assert scores.mean_matched_iou > blocky


def test_a_training_set_of_large_cells_is_shrunk_and_takes_updates_in_image_pixels():
    sample = touching_cells((96, 96), rng=np.random.default_rng(1))
    image, truth, annotation = enlarged(sample, 3)  # cells of 40-80 px
    data = TrainingSet([(image, annotation)], rng=np.random.default_rng(0))
    diameter = math.sqrt(4 * data.cells.median_area / math.pi)  # network px
    assert data.scale < 1 and diameter == pytest.approx(TARGET_DIAMETER, rel=0.15)
    assert data.planes[0].image.shape[-2:] == network_shape(image.shape, data.scale)
    assert data.planes[0].labels.shape == network_shape(image.shape, data.scale)
    before = data.cell_count
    update = annotation.copy()
    unpainted = [v for v in np.unique(truth)[1:] if not annotation[truth == v].any()]
    update[truth == unpainted[0]] = 99  # one more painted cell
    assert data.apply_labels({0: update}) and data.cell_count == before + 1
    window = (slice(30, 90), slice(0, 60))
    assert data.preview_target(0, 0, window) == (0, network_window(window, data.scale))
    small = TrainingSet([(sample.image, sample.annotation)], rng=np.random.default_rng(0))
    assert small.scale == 1.0 and small.planes[0].labels.shape == sample.annotation.shape
    fixed = TrainingSet([(image, annotation)], scale=1.0, rng=np.random.default_rng(0))
    assert fixed.planes[0].labels.shape == annotation.shape


def test_large_cells_train_shrunk_and_segment_at_the_image_pixels():
    sample = touching_cells((128, 128), rng=np.random.default_rng(2))
    image, truth, _ = enlarged(sample, 2.5)
    model = UNet(UNetConfig(classes=3, depth=3, base_channels=8, dropout=0.0))
    model.reset_parameters(torch.Generator().manual_seed(0))
    config = TrainConfig(
        minutes=None, iterations=150, batch_size=4, tile_size=92, learning_rate=3e-3
    )
    # a new network takes the scale from the painted cells (a fine-tuned one keeps its own)
    config = dataclasses.replace(config, labels=LabelConfig(dense=True))
    one_step = dataclasses.replace(config, iterations=1)
    fresh = drain(train([(image, truth)], one_step))
    assert fresh.model.config.scale < 1
    model = UNet(dataclasses.replace(model.config, scale=fresh.model.config.scale))
    model.reset_parameters(torch.Generator().manual_seed(0))
    result = drain(train([(image, truth)], config, start=model))
    assert result.model.config.scale == fresh.model.config.scale
    labels = drain(segment(result.model, image)).labels
    assert labels.shape == truth.shape
    scores = match_instances(truth, labels)
    assert scores.f1 >= 0.8 and scores.mean_matched_iou > 0.8


WINDOW = (slice(20, 170), slice(100, 199))


def previews_of_a_shrunk_model(monkeypatch, iterations, unsure=0) -> list:
    """The previews of ``WINDOW`` of a model at scale 0.4 training ``iterations`` steps
    on a sample enlarged 3 times, the unsure map asked for ``unsure`` of them."""
    monkeypatch.setattr("napari_unet.core.training.loop.PREVIEW_EVERY", 0.0)
    sample = touching_cells((96, 96), rng=np.random.default_rng(1))
    image, _, annotation = enlarged(sample, 3)
    model = UNet(UNetConfig(classes=3, depth=2, base_channels=4, scale=0.4))
    config = TrainConfig(minutes=None, iterations=iterations, batch_size=2, tile_size=60)
    control = TrainingControl()
    control.set_preview_window(0, 0, WINDOW)
    control.ask_unsure(unsure)
    events = []
    drain(train([(image, annotation)], config, start=model, control=control), events.append)
    assert not control.take_unsure()  # (nothing left asked for)
    return [event for event in events if isinstance(event, Preview)]


def test_the_live_preview_of_a_shrunk_model_is_in_image_pixels(monkeypatch):
    previews = previews_of_a_shrunk_model(monkeypatch, iterations=2)
    assert previews and all(p.window == WINDOW for p in previews)
    assert all(p.probability.shape == (150, 99) for p in previews)
    assert all(0 <= p.probability.min() and p.probability.max() <= 1 for p in previews)
    assert all(p.unsure is None for p in previews)  # (not asked for)


def test_the_unsure_map_comes_with_as_many_previews_as_asked_in_image_pixels(monkeypatch):
    previews = previews_of_a_shrunk_model(monkeypatch, iterations=5, unsure=2)
    assert len(previews) == 5
    assert [p.unsure is not None for p in previews] == [True, True, False, False, False]
    for p in previews[:2]:
        assert p.unsure.shape == (150, 99) and p.unsure.dtype == np.float32
        assert 0 <= p.unsure.min() and p.unsure.max() <= 1
