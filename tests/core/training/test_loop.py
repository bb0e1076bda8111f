"""The training loop: its events, stopping, resuming, reproducibility, new paint during
training and the errors a user can act on."""

import math

import numpy as np
import pytest
import torch

from napari_unet.core.cells.metrics import match_instances
from napari_unet.core.cells.rules import NECK_RATIOS
from napari_unet.core.config import AugmentConfig, LabelConfig, TrainConfig, UNetConfig
from napari_unet.core.events import (
    Checkpoint,
    LabelsIgnored,
    Status,
    TrainingStarted,
    TrainStep,
    Validation,
    drain,
)
from napari_unet.core.network.model import UNet
from napari_unet.core.segment import segment
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.training import TrainingControl, augmented_samples, train
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


def test_training_yields_its_events_in_order_and_returns_the_model():
    sample = cells()
    events, result = events_of(
        train([(sample.image, sample.annotation)], quick(iterations=5), start=tiny())
    )
    assert [type(e) for e in events[:2]] == [Status, TrainingStarted]  # said what it does
    assert events[0].message == "reading the images and the paint" and events[1].device == "cpu"
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
    control = TrainingControl()

    def on_event(event):
        if isinstance(event, TrainStep) and event.step == 3:
            control.stop()

    pairs = [(sample.image, sample.annotation)]
    result = drain(train(pairs, quick(iterations=50), start=tiny(), control=control), on_event)
    assert result.stopped and len(result.history["steps"]) == 3 and result.best_step == 3


def test_stop_while_the_data_is_prepared_takes_no_step_and_times_nothing(monkeypatch):
    from napari_unet.core.training import loop

    def no_timing(*args, **kwargs):
        raise AssertionError("precision timed after Stop")

    monkeypatch.setattr(loop, "choose_precision", no_timing)
    sample = cells()
    control = TrainingControl()
    control.stop()  # pressed while the images and paint were read
    pairs = [(sample.image, sample.annotation)]
    result = drain(train(pairs, quick(iterations=50, precision="auto"), control=control))
    assert result.steps == 0 and result.stopped


def test_validation_keeps_the_best_model():
    sample = cells(shape=(128, 128), painted_cells=14)
    config = quick(iterations=6, validate_every=0.0)
    events, result = events_of(train([(sample.image, sample.annotation)], config, start=tiny()))
    validations = [e for e in events if isinstance(e, Validation)]
    assert len(validations) == 6
    # the rule: the latest within 0.03 + 1 / (held-back cells) of the best so far
    tolerance = 0.03 + 1 / events[1].validation_cells
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
    control = TrainingControl()
    generator = train([(sample.image, sample.annotation)], quick(iterations=3), control=control)
    assert isinstance(next(generator), Status) and isinstance(next(generator), TrainingStarted)
    square = np.where(sample.annotation > 1, 1, sample.annotation)  # cells painted over...
    square[10:40, 10:40] = 2  # ...but one cell of 30 x 30 px
    control.update_labels(0, square)
    square[:] = 0  # the caller paints on: training keeps its own copy
    next(generator)  # the first step, on the new paint
    control.update_labels(0, np.full(square.shape, 0.5))
    events, result = events_of(generator)
    assert any(isinstance(e, LabelsIgnored) and "whole numbers" in e.reason for e in events)
    assert result.rules.min_size == round(0.2 * 30 * 30)  # measured on the new paint


def test_training_learns_to_segment_touching_cells():
    sample = cells(seed=2, shape=(128, 128))
    model = UNet(UNetConfig(classes=3, depth=3, base_channels=8, dropout=0.0))
    model.reset_parameters(torch.Generator().manual_seed(0))
    dense = TrainConfig(
        minutes=None,
        iterations=150,
        batch_size=4,
        tile_size=92,
        learning_rate=3e-3,
        labels=LabelConfig(dense=True),
    )
    result = drain(train([(sample.image, sample.truth)], dense, start=model))
    labels = drain(segment(result.model, sample.image)).labels
    assert match_instances(sample.truth, labels).f1 >= 0.8


def test_fine_tuning_resumes_from_a_saved_file(tmp_path):
    sample = cells()
    pairs = [(sample.image, sample.annotation)]
    first = drain(train(pairs, quick(), start=tiny()))
    path = save_trained(tmp_path / "m.safetensors", first)
    loaded = load_model(path)
    assert loaded.training["steps"] == 4
    assert loaded.rules == first.rules and first.rules.min_size >= 10
    assert first.rules.neck_ratio in (0.0, *NECK_RATIOS)
    saved_steps = [s["step"] for s in loaded.optimizer_state["state"].values()]
    assert all(float(s) == 4 for s in saved_steps)
    again = drain(train(pairs, quick(), start=loaded))
    assert all(float(s["step"]) == 8 for s in again.optimizer_state["state"].values())
    assert again.model.config == loaded.model.config


def test_stacks_and_channels_train():
    sample = cells()
    stack = np.stack([sample.image, sample.image[::-1]])
    labels = np.stack([sample.annotation, np.zeros_like(sample.annotation)])  # plane 2 unpainted
    result = drain(train([(stack, labels)], quick(), start=tiny()))
    assert len(result.history["steps"]) == 4
    two = np.stack([sample.image, sample.image * 2])
    result = drain(train([(two, sample.annotation)], quick(), start=tiny(channels=2)))
    assert result.model.config.in_channels == 2


def test_an_image_smaller_than_a_tile_trains():
    sample = cells(shape=(24, 24), painted_cells=2)
    result = drain(train([(sample.image, sample.annotation)], quick(tile_size=60), start=tiny()))
    assert len(result.history["steps"]) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda image, labels: (image, np.where(labels > 1, 1, labels)),
            "no cell is painted: everything painted has label 1, which means background",
        ),
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
    generator = train([(image, labels)], quick(), start=tiny())
    assert isinstance(next(generator), Status)  # reading...
    with pytest.raises(ValueError, match=message):
        next(generator)  # ...and refused before any step


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
        train([(sample.image, sample.annotation)], quick(augmentation=None), start=tiny())
    )
    assert len(result.history["steps"]) == 4
    assert AugmentConfig().elastic  # on by default


def test_a_budget_shorter_than_preparing_the_data_still_trains_one_step():
    sample = cells()
    config = quick(minutes=1e-5, iterations=None)  # spent before the first step
    result = drain(train([(sample.image, sample.annotation)], config, start=tiny()))
    assert len(result.history["steps"]) == 1


def test_new_networks_get_batch_norm_for_roundish_cells_only(rods):
    sample = cells()

    def batch_norm(pair, **settings):
        result = drain(train([pair], quick(iterations=1, **settings)))
        has_layers = any(isinstance(m, torch.nn.BatchNorm2d) for m in result.model.modules())
        assert has_layers == result.model.config.batch_norm
        # and only their interiors need a sure core (calibrated on the paint)
        assert (result.rules.core_threshold > 0) <= has_layers
        # and segmenting with flips is for roundish cells, whatever the layers
        assert result.rules.flips == (pair is not rod_pair)
        return result.model.config.batch_norm

    rod_pair = rods

    assert batch_norm((sample.image, sample.annotation))
    assert not batch_norm(rod_pair)
    assert not batch_norm((sample.image, sample.annotation), batch_norm=False)
    assert batch_norm(rod_pair, batch_norm=True)


@pytest.mark.parametrize(("tile_size", "sizes"), [(100, (100, 12)), (None, (276, 188))])
def test_the_augmentation_preview_draws_the_tiles_training_draws(tile_size, sizes):
    sample = cells()
    config = TrainConfig(tile_size=tile_size)
    pairs = [(sample.image, sample.annotation)]
    rng = np.random.default_rng(0)
    images, targets, weights = augmented_samples(pairs, config, count=3, rng=rng)
    assert images.shape == (3, 1, sizes[0], sizes[0]) and targets.shape == (3, sizes[1], sizes[1])
    assert weights.shape == targets.shape
    assert set(np.unique(targets)) <= {0, 1, 2}  # background, interior, outline
    assert (weights[targets > 0] > 0).all()  # cells are painted; not painted weighs 0


def test_the_rules_are_calibrated_and_checked_on_what_segment_labels(monkeypatch):
    """Roundish cells are segmented with test-time flips: the calibration and the check
    that calls a model ready predict the painted cells with them too (an undertrained
    model's mirrored predictions disagree, and their mean can stay below a threshold
    each one reaches: a model called ready that segment found 2 cells with)."""
    from napari_unet._sample_data import sample_cells
    from napari_unet.core.training import validation

    flips = []
    original = validation.predict_tiled

    def spy(*args, **kwargs):
        flips.append(kwargs.get("flips", False))
        return original(*args, **kwargs)

    calibrated = {}
    calibrate = validation.rules_from_paint

    def spy_rules(crops, *args, **kwargs):
        calibrated.update(crops=crops, unseen=kwargs["unseen"])
        return calibrate(crops, *args, **kwargs)

    counted = []
    count = validation.painted_cells_found

    def spy_count(*args, **kwargs):
        counted.append(kwargs.get("leak_px"))
        return count(*args, **kwargs)

    monkeypatch.setattr(validation, "predict_tiled", spy)
    monkeypatch.setattr(validation, "rules_from_paint", spy_rules)
    monkeypatch.setattr(validation, "painted_cells_found", spy_count)
    sample = sample_cells()
    config = TrainConfig(minutes=None, iterations=2, validate_every=0.0)
    result = drain(train([(sample.image, sample.annotation)], config))
    checked = result.painted_found[1]
    assert result.rules.flips and checked > 0
    # the interior threshold comes from the held-back cells among the painted ones
    unseen = calibrated["unseen"]
    assert len(unseen) == result.validation_cells > 0 and len(calibrated["crops"]) == checked
    assert all(any(u is crop for crop in calibrated["crops"]) for u in unseen)
    first = flips.index(True)  # training validates without; the calibration with
    assert not any(flips[:first]) and first > 0
    assert all(flips[first:]) and len(flips) - first >= checked
    # the painted cells found are counted as the whole image would: no leaks past LEAK_PX
    assert counted == [validation.LEAK_PX]


def test_forty_steps_give_a_model_that_finds_its_painted_cells():
    from napari_unet._sample_data import sample_cells

    sample = sample_cells()
    config = TrainConfig(minutes=None, iterations=40)
    result = drain(train([(sample.image, sample.annotation)], config))
    found, checked = result.painted_found
    assert checked == 12 and found >= 6 and result.ready
    labels = drain(segment(result.model, sample.image, rules=result.rules)).labels
    assert labels.max() >= 20  # of the sample's 73 cells
