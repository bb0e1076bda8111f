"""The training set: planes, targets, held-back cells, tiles and new paint."""

import dataclasses

import numpy as np
import pytest
import torch

from napari_unet.core.config import TrainConfig
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.training.trainset import VALIDATION_MARGIN, TrainingSet
from napari_unet.core.training.validation import calibration_held_back


def cells(seed=0, shape=(96, 96), **kwargs):
    return touching_cells(shape, rng=np.random.default_rng(seed), **kwargs)


def test_held_back_cells_weigh_nothing_in_training_and_are_the_validation_truth():
    sample = cells(shape=(128, 128), painted_cells=14)
    data = TrainingSet([(sample.image, sample.annotation)], rng=np.random.default_rng(0))
    assert len(data.held_back) == 3 and data.cell_count == 11
    plane = data.planes[0]
    regions = data.validation_regions()
    assert len(regions) == 3
    held = set()
    for region in regions:
        inside = np.unique(sample.annotation[region.window][region.truth > 0])
        assert len(inside) == 1 and inside[0] > 1  # one painted cell, the user's value
        held.add(int(inside[0]))
        cell = sample.annotation == inside[0]
        assert (plane.weight.numpy()[cell] == 0).all()  # not trained on
        rows, cols = np.nonzero(cell)
        m = VALIDATION_MARGIN
        assert region.window == (
            slice(max(rows.min() - m, 0), min(rows.max() + 1 + m, 128)),
            slice(max(cols.min() - m, 0), min(cols.max() + 1 + m, 128)),
        )
        np.testing.assert_array_equal(region.truth, cell[region.window])
    assert len(held) == 3
    more = sample.annotation.copy()
    more[:4, :4] = 99  # a new cell: the same cells stay held back
    data.apply_labels({0: more})
    assert [r.window for r in data.validation_regions()] == [r.window for r in regions]
    every = data.validation_regions(cells="all")
    assert len(every) == 15 and all(r.held_back for r in regions)
    flagged = [r.window for r in every if r.held_back]
    assert flagged == [r.window for r in regions]  # exactly the held-back cells, in order
    assert calibration_held_back(data) == [r.held_back for r in every]  # (<= 40 cells)
    some = data.validation_regions(cells="all", at_most=4)  # spread evenly, ends included
    assert [r.window for r in some] == [every[i].window for i in (0, 5, 9, 14)]


def test_training_tiles_are_centred_on_annotated_pixels():
    sample = cells()
    labels = np.zeros_like(sample.annotation)
    labels[60:80, 10:30] = sample.annotation[60:80, 10:30]
    labels[62:66, 12:16] = 9  # make sure a cell is there
    config = TrainConfig(augmentation=None)
    data = TrainingSet([(sample.image, labels)], config, rng=np.random.default_rng(0))
    images, targets, weights = data.sample_batch(16, 44, 20, np.random.default_rng(1))
    assert images.shape == (16, 1, 44, 44) and targets.shape == weights.shape == (16, 20, 20)
    assert (weights[:, 10, 10] > 0).all()  # the centre pixel of every tile is annotated
    assert images.dtype == torch.float32 and targets.dtype == torch.uint8


def test_training_tiles_carry_noise_scaled_to_their_plane(still):
    sample = cells()
    tiles = {}
    for noise in ((1, 1), (3, 3)):  # 3 x the plane's noise: sqrt(8) x it added
        augmentation = dataclasses.replace(still, noise=noise)  # (no pasted planes)
        config = TrainConfig(augmentation=augmentation, paste_neighbours=False)
        data = TrainingSet(
            [(sample.image, sample.annotation)], config, rng=np.random.default_rng(0)
        )
        tiles[noise] = data.sample_batch(8, 44, 20, np.random.default_rng(1))
    level = data.planes[0].noise
    assert level.shape == (1,) and level[0] > 0
    added = (tiles[(3, 3)][0] - tiles[(1, 1)][0]).numpy()
    np.testing.assert_allclose(added.std(), np.sqrt(8) * level[0], rtol=0.1)
    assert tiles[(3, 3)][1].equal(tiles[(1, 1)][1])  # the targets are untouched


def test_label_updates_are_picked_up_and_bad_ones_refused():
    sample = cells()
    data = TrainingSet([(sample.image, sample.annotation)], rng=np.random.default_rng(0))
    before = data.planes[0].weight.clone()
    assert not data.apply_labels({}) and not data.apply_labels({0: sample.annotation})
    more = sample.annotation.copy()
    more[:5, :] = 1  # a background stroke
    assert data.apply_labels({0: more})
    assert (data.planes[0].weight[:5] > 0).all() and not torch.equal(before, data.planes[0].weight)
    painted = data.cells.count
    fewer = np.where(more == more.max(), 1, more)  # a cell painted over as background
    assert data.apply_labels({0: fewer}) and data.cells.count == painted - 1
    areas = np.bincount(fewer.ravel())[2:]
    assert data.cells.median_area == np.median(areas[areas > 0])
    with pytest.raises(ValueError, match="shape"):
        data.apply_labels({0: more[:10]})
    assert (data.planes[0].weight[:5] > 0).all()  # the good labels are kept


def test_the_painted_cells_decide_the_shape_policy(rods):
    sample = cells()
    round_cells = TrainingSet([(sample.image, sample.annotation)], rng=np.random.default_rng(0))
    assert round_cells.cells.median_elongation < 1.6 and round_cells.cells.roundish
    assert round_cells.pasting and round_cells.contact_planes
    data = TrainingSet([rods], rng=np.random.default_rng(0))
    assert data.cells.median_elongation > 5 and data.cells.rods
    assert not data.pasting and data.contact_planes == []
    squares = np.ones((60, 60), np.uint8)
    for k in range(4):  # each rod cut into 6 x 6 px squares
        for j in range(8):
            squares[5 + 12 * k : 11 + 12 * k, 5 + 6 * j : 11 + 6 * j] = 2 + 8 * k + j
    assert data.apply_labels({0: squares}) and data.cells.roundish and data.pasting
    off = TrainingSet(
        [(sample.image, sample.annotation)],
        TrainConfig(paste_neighbours=False),
        rng=np.random.default_rng(0),
    )
    assert not off.pasting and off.contact_planes == []


def test_memory_follows_the_painted_cells_not_the_largest_label_value():
    sample = cells()
    huge = np.where(sample.annotation > 1, sample.annotation.astype(np.int64) + 2**40, 0)
    huge[sample.annotation == 1] = 1
    data = TrainingSet([(sample.image, huge)], rng=np.random.default_rng(0))
    small = TrainingSet([(sample.image, sample.annotation)], rng=np.random.default_rng(0))
    assert data.planes[0].labels.max() < 100  # ids 2, 3, ... whatever was painted
    np.testing.assert_array_equal(data.planes[0].labels, small.planes[0].labels)
    assert data.cells == small.cells and len(data.validation_regions(cells="all")) == 8


def test_a_calibration_crop_shows_a_leak_before_it_reaches_the_crops_edge():
    # painted_cells_found calls a cell not found where its object reaches LEAK_PX outside
    # it; an object cut off by the crop's edge must still reach that far inside the crop
    from napari_unet.core.training.validation import LEAK_PX

    assert 0 < LEAK_PX < VALIDATION_MARGIN
