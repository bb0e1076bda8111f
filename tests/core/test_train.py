"""The training engine: sampling, held-back cells, live label updates, the loop's events,
stopping, resuming, reproducibility and the errors a user can act on."""

import math
import threading

import numpy as np
import pytest
import torch

from napari_unet.core.config import (
    AugmentConfig,
    InstanceRules,
    LabelConfig,
    TrainConfig,
    UNetConfig,
)
from napari_unet.core.events import (
    Checkpoint,
    LabelsIgnored,
    TrainingStarted,
    TrainStep,
    Validation,
    drain,
)
from napari_unet.core.instances import CORE_THRESHOLD
from napari_unet.core.metrics import match_instances
from napari_unet.core.model import UNet
from napari_unet.core.sampling import MAX_VALIDATION_CELLS, WeightedPixels, hold_back_cells
from napari_unet.core.segment import segment
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.train import (
    CALIBRATION_COST,
    NECK_CELLS,
    _calibrate_necks,
    _finishing_time,
    _progress,
    infer_channels,
    train,
)
from napari_unet.core.trainset import VALIDATION_MARGIN, TrainingSet
from napari_unet.model_io import load_model, save_trained


def tiny(classes=3, channels=1):
    model = UNet(UNetConfig(in_channels=channels, classes=classes, depth=2, base_channels=4))
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


def quick(**overrides):
    settings = {"minutes": None, "iterations": 4, "batch_size": 2, "tile_size": 60}
    return TrainConfig(**{**settings, **overrides})


def cells(seed=0, shape=(96, 96), **kwargs):
    return touching_cells(shape, rng=np.random.default_rng(seed), **kwargs)


def events_of(generator):
    seen = []
    result = drain(generator, seen.append)
    return seen, result


def test_pixels_are_drawn_in_proportion_to_their_weight_and_never_at_weight_0():
    weights = [np.zeros((4, 5)), np.zeros((3, 3))]
    weights[0][1, 2], weights[0][3, 4], weights[1][2, 0] = 1.0, 3.0, 4.0
    draws = WeightedPixels(weights).draw(8000, np.random.default_rng(0))
    found, counts = np.unique(np.array(draws), axis=0, return_counts=True)
    assert [tuple(f) for f in found] == [(0, 1, 2), (0, 3, 4), (1, 2, 0)]
    np.testing.assert_allclose(counts / 8000, [1 / 8, 3 / 8, 4 / 8], atol=0.02)
    with pytest.raises(ValueError, match="nothing is annotated"):
        WeightedPixels([np.zeros((3, 3))])


def test_cells_are_held_back_only_when_there_are_enough():
    rng = np.random.default_rng(0)
    assert hold_back_cells([(0, v) for v in range(2, 11)], 0.2, rng) == set()  # 9 cells
    held = hold_back_cells([(0, v) for v in range(2, 22)], 0.2, rng)  # 20 cells
    assert len(held) == 4 and held <= {(0, v) for v in range(2, 22)}
    many = [(p, v) for p in range(5) for v in range(2, 202)]  # complete masks: 1000 cells
    assert len(hold_back_cells(many, 0.2, rng)) == MAX_VALIDATION_CELLS


def test_held_back_cells_weigh_nothing_in_training_and_are_the_validation_truth():
    sample = cells(shape=(128, 128), painted_cells=14)
    data = TrainingSet([(sample.image, sample.annotation)], rng=np.random.default_rng(0))
    assert len(data.held_back) == 3 and data.cell_count == 11
    plane = data.planes[0]
    for _, value in data.held_back:
        assert (plane.weight.numpy()[sample.annotation == value - 1] == 0).all()
    regions = data.validation_regions()
    assert len(regions) == 3
    for region, (_, value) in zip(regions, sorted(data.held_back), strict=True):
        cell = sample.annotation == value - 1  # back to the user's value
        rows, cols = np.nonzero(cell)
        m = VALIDATION_MARGIN
        assert region.window == (
            slice(max(rows.min() - m, 0), min(rows.max() + 1 + m, 128)),
            slice(max(cols.min() - m, 0), min(cols.max() + 1 + m, 128)),
        )
        np.testing.assert_array_equal(region.truth, cell[region.window])
    every = data.validation_regions(cells="all")
    assert len(every) == 14
    some = data.validation_regions(cells="all", at_most=4)  # spread evenly, ends included
    assert [r.window for r in some] == [every[i].window for i in (0, 4, 9, 13)]


def test_training_tiles_are_centred_on_annotated_pixels():
    sample = cells()
    labels = np.zeros_like(sample.annotation)
    labels[60:80, 10:30] = sample.annotation[60:80, 10:30]
    labels[62:66, 12:16] = 9  # make sure a cell is there
    data = TrainingSet([(sample.image, labels)], rng=np.random.default_rng(0))
    images, targets, weights = data.sample_batch(16, 44, 20, np.random.default_rng(1))
    assert images.shape == (16, 1, 44, 44) and targets.shape == weights.shape == (16, 20, 20)
    assert (weights[:, 10, 10] > 0).all()  # the centre pixel of every tile is annotated
    assert images.dtype == torch.float32 and targets.dtype == torch.uint8


def test_label_updates_are_picked_up_and_bad_ones_refused():
    sample = cells()
    data = TrainingSet([(sample.image, sample.annotation)], rng=np.random.default_rng(0))
    before = data.planes[0].weight.clone()
    assert not data.refresh()
    more = sample.annotation.copy()
    more[:5, :] = 1  # a background stroke
    data.update_labels(0, more)
    assert data.refresh()
    assert (data.planes[0].weight[:5] > 0).all() and not torch.equal(before, data.planes[0].weight)
    painted = data.painted_cells
    fewer = np.where(more == more.max(), 1, more)  # a cell painted over as background
    data.update_labels(0, fewer)
    assert data.refresh() and data.painted_cells == painted - 1
    areas = np.bincount(fewer.ravel())[2:]
    assert data.median_cell_area() == np.median(areas[areas > 0])
    data.update_labels(0, more[:10])
    with pytest.raises(ValueError, match="shape"):
        data.refresh()
    assert (data.planes[0].weight[:5] > 0).all()  # the good labels are kept


def test_training_yields_its_events_in_order_and_returns_the_model():
    sample = cells()
    events, result = events_of(
        train([(sample.image, sample.annotation)], quick(iterations=5), model=tiny())
    )
    assert isinstance(events[0], TrainingStarted) and events[0].device == "cpu"
    steps = [e for e in events if isinstance(e, TrainStep)]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(s.loss) and s.loss > 0 for s in steps)
    assert steps[-1].progress == 1.0 and steps[0].learning_rate == pytest.approx(1e-3)
    # cosine from 1x to 0.1x over the budget, read at the start of each step
    cosine = [1e-3 * (0.55 + 0.45 * math.cos(math.pi * k / 5)) for k in range(5)]
    assert [s.learning_rate for s in steps] == pytest.approx(cosine)
    assert isinstance(events[-1], Checkpoint) and events[-1].step == 5
    assert [row[0] for row in result.history["steps"]] == [1, 2, 3, 4, 5]
    assert not result.model.training and next(result.model.parameters()).device.type == "cpu"
    assert not result.stopped and result.best_step == 5


def test_the_same_seed_gives_the_same_model_on_the_cpu():
    sample = cells()
    pairs = [(sample.image, sample.annotation)]
    first = drain(train(pairs, quick(seed=3)))
    again = drain(train(pairs, quick(seed=3)))
    other = drain(train(pairs, quick(seed=4)))
    losses = [[(step, loss) for step, _, loss in r.history["steps"]] for r in (first, again)]
    assert losses[0] == losses[1]
    for a, b in zip(
        first.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert not torch.equal(first.model.head.weight, other.model.head.weight)


def test_stop_ends_training_within_one_step_and_keeps_the_model():
    sample = cells()
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, TrainStep) and event.step == 3:
            stop.set()

    result = drain(
        train([(sample.image, sample.annotation)], quick(iterations=50), model=tiny(), stop=stop),
        on_event,
    )
    assert result.stopped and len(result.history["steps"]) == 3 and result.best_step == 3


def test_validation_keeps_the_best_model():
    sample = cells(shape=(128, 128), painted_cells=14)
    config = quick(iterations=6, validate_every=0.0)
    events, result = events_of(train([(sample.image, sample.annotation)], config, model=tiny()))
    validations = [e for e in events if isinstance(e, Validation)]
    assert len(validations) == 6
    # the rule: the latest within 0.03 + 1 / (held-back cells) of the best so far
    tolerance = 0.03 + 1 / events[0].validation_cells
    kept, best_quality = None, None
    for v in validations:
        quality = v.f1 * v.mean_iou
        if best_quality is None or quality >= best_quality - tolerance:
            kept, best_quality = v, max(quality, best_quality or 0.0)
    assert result.best_step == kept.step and result.best_f1 == kept.f1
    checkpoints = [e.step for e in events if isinstance(e, Checkpoint)]
    assert checkpoints[-1] == result.best_step


def test_labels_painted_during_training_are_used():
    sample = cells()
    labels = sample.annotation.copy()
    generator = train([(sample.image, labels)], quick(iterations=3), model=tiny())
    started = next(generator)
    assert isinstance(started, TrainingStarted)
    more = labels.copy()
    more[:6, :] = 1
    started.data.update_labels(0, more)
    next(generator)  # first step
    assert (started.data.planes[0].weight[:6] > 0).all()
    started.data.update_labels(0, np.full(labels.shape, 0.5))
    events, _ = [], None
    try:
        while True:
            events.append(next(generator))
    except StopIteration:
        pass
    assert any(isinstance(e, LabelsIgnored) and "whole numbers" in e.reason for e in events)


def test_training_learns_to_segment_touching_cells():
    sample = cells(seed=2, shape=(128, 128))
    model = UNet(UNetConfig(classes=3, depth=3, base_channels=8, dropout=0.0))
    model.reset_parameters(torch.Generator().manual_seed(0))
    config = TrainConfig(
        minutes=None, iterations=150, batch_size=4, tile_size=92, learning_rate=3e-3
    )
    result = drain(
        train([(sample.image, sample.truth)], config, model=model, labels=LabelConfig(dense=True))
    )
    labels = drain(segment(result.model, sample.image)).labels
    assert match_instances(sample.truth, labels).f1 >= 0.8


def test_fine_tuning_resumes_from_a_saved_file(tmp_path):
    sample = cells()
    pairs = [(sample.image, sample.annotation)]
    first = drain(train(pairs, quick(), model=tiny()))
    path = save_trained(tmp_path / "m.safetensors", first)
    loaded = load_model(path)
    assert loaded.training["steps"] == 4
    assert loaded.rules == first.rules and first.rules.min_size >= 10
    assert first.rules.neck_ratio in (0.0, 0.5, 0.6, 0.7, 0.8)
    saved_steps = [s["step"] for s in loaded.optimizer_state["state"].values()]
    assert all(float(s) == 4 for s in saved_steps)
    again = drain(train(pairs, quick(), model=loaded.model, optimizer_state=loaded.optimizer_state))
    assert all(float(s["step"]) == 8 for s in again.optimizer_state["state"].values())
    assert again.model.config == loaded.model.config


def test_channel_axes_are_inferred_from_the_labels():
    assert infer_channels(np.zeros((5, 6)), np.zeros((5, 6))) == 1
    assert infer_channels(np.zeros((3, 5, 6)), np.zeros((3, 5, 6))) == 1  # a stack
    assert infer_channels(np.zeros((2, 5, 6)), np.zeros((5, 6))) == 2
    assert infer_channels(np.zeros((4, 2, 5, 6)), np.zeros((4, 5, 6))) == 2


def test_stacks_and_channels_train():
    sample = cells()
    stack = np.stack([sample.image, sample.image[::-1]])
    labels = np.stack([sample.annotation, np.zeros_like(sample.annotation)])  # plane 2 unpainted
    result = drain(train([(stack, labels)], quick(), model=tiny()))
    assert len(result.history["steps"]) == 4
    two = np.stack([sample.image, sample.image * 2])
    result = drain(train([(two, sample.annotation)], quick(), model=tiny(channels=2)))
    assert result.model.config.in_channels == 2


def test_an_image_smaller_than_a_tile_trains():
    sample = cells(shape=(24, 24), painted_cells=2)
    result = drain(train([(sample.image, sample.annotation)], quick(tile_size=60), model=tiny()))
    assert len(result.history["steps"]) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda image, labels: (image, np.where(labels > 1, 1, labels)), "no cell is painted"),
        (lambda image, labels: (image, labels[:-3]), "labels have shape"),
        (lambda image, labels: (np.where(labels == 1, np.nan, image), labels), "NaN"),
        (lambda image, labels: (np.stack([image] * 3), labels), "channel"),
        (lambda image, labels: (image, labels * 0.5), "whole numbers"),
        (lambda image, labels: (image > image.mean(), labels), "data type bool"),
    ],
)
def test_bad_input_is_explained_before_any_step(change, message):
    sample = cells()
    image, labels = change(sample.image, sample.annotation)
    generator = train([(image, labels)], quick(), model=tiny())
    with pytest.raises(ValueError, match=message):
        next(generator)


def test_train_config_is_checked():
    with pytest.raises(ValueError, match="minutes"):
        TrainConfig(minutes=None, iterations=None)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig(preset="huge")
    with pytest.raises(ValueError, match="validation_fraction"):
        TrainConfig(validation_fraction=1.5)
    with pytest.raises(ValueError, match="batch_norm"):
        TrainConfig(batch_norm="auto")
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_augmentation_can_be_switched_off():
    sample = cells()
    result = drain(
        train([(sample.image, sample.annotation)], quick(), model=tiny(), augmentation=None)
    )
    assert len(result.history["steps"]) == 4
    assert AugmentConfig().elastic  # on by default


def rods():
    labels = np.ones((60, 60), np.uint8)
    for k in range(4):
        labels[5 + 12 * k : 11 + 12 * k, 5:55] = 2 + k  # 6 x 50 px rods
    return np.random.default_rng(0).random((60, 60)), labels


def test_necks_are_cut_only_for_roundish_painted_cells():
    sample = cells()
    round_cells = TrainingSet([(sample.image, sample.annotation)], rng=np.random.default_rng(0))
    assert round_cells.median_elongation() < 1.6 and not round_cells.elongated()
    data = TrainingSet([rods()], rng=np.random.default_rng(0))
    assert data.median_elongation() > 5 and data.elongated()
    assert _calibrate_necks(tiny(), data, InstanceRules(), "cpu") == 0.0
    squares = np.ones((60, 60), np.uint8)
    for k in range(4):  # each rod cut into 6 x 6 px squares
        for j in range(8):
            squares[5 + 12 * k : 11 + 12 * k, 5 + 6 * j : 11 + 6 * j] = 2 + 8 * k + j
    data.update_labels(0, squares)
    assert data.refresh() and not data.elongated() and data.pasting


def test_the_time_budget_keeps_a_reserve_for_what_follows_the_last_step():
    one_minute = TrainConfig(minutes=1.0)
    assert _progress(one_minute, 10, 30.0) == 0.5
    assert _progress(one_minute, 10, 25.0, reserve=10.0) == 0.5  # 50 s for steps
    assert _progress(one_minute, 10, 50.0, reserve=10.0) == 1.0
    assert _progress(one_minute, 10, 15.0, reserve=100.0) == 0.5  # at most half the budget
    both = TrainConfig(minutes=1.0, iterations=40)
    assert _progress(both, 30, 15.0, reserve=10.0) == 0.75  # the larger fraction
    # after the last step: a validation, then the neck calibration on the painted cells
    roundish = TrainingSet([(cells().image, cells().annotation)], rng=np.random.default_rng(0))
    painted = roundish.cell_count + len(roundish.held_back)
    assert roundish.painted_cells == painted < NECK_CELLS
    expected = 0.1 * (3 + CALIBRATION_COST * painted)
    assert math.isclose(_finishing_time(0.1, 3, tiny(), roundish), expected)
    assert math.isclose(_finishing_time(0.1, 3, tiny(classes=2), roundish), 0.3)
    rod_data = TrainingSet([rods()], rng=np.random.default_rng(0))
    assert math.isclose(_finishing_time(0.1, 3, tiny(), rod_data), 0.3)  # no calibration


def test_a_budget_shorter_than_preparing_the_data_still_trains_one_step():
    sample = cells()
    config = quick(minutes=1e-5, iterations=None)  # spent before the first step
    result = drain(train([(sample.image, sample.annotation)], config, model=tiny()))
    assert len(result.history["steps"]) == 1


def test_new_networks_get_batch_norm_for_roundish_cells_only():
    sample = cells()

    def batch_norm(pair, **settings):
        result = drain(train([pair], quick(iterations=1, **settings)))
        has_layers = any(isinstance(m, torch.nn.BatchNorm2d) for m in result.model.modules())
        assert has_layers == result.model.config.batch_norm
        # and only their interiors need a sure core
        assert result.rules.core_threshold == (CORE_THRESHOLD if has_layers else 0.0)
        # and segmenting with flips is for roundish cells, whatever the layers
        assert result.rules.flips == (pair is not rod_pair)
        return result.model.config.batch_norm

    rod_pair = rods()

    assert batch_norm((sample.image, sample.annotation))
    assert not batch_norm(rod_pair)
    assert not batch_norm((sample.image, sample.annotation), batch_norm=False)
    assert batch_norm(rod_pair, batch_norm=True)
