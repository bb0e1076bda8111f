"""Sparse labels that look like complete masks: a warning, not an error."""

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.config import LabelConfig, TrainConfig
from napari_unet.core.labels import looks_complete, read_annotation
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.training.trainset import TrainingSet


def sample(seed=0):
    return touching_cells((128, 128), rng=np.random.default_rng(seed))


def test_a_complete_mask_read_as_sparse_looks_complete():
    for seed in range(3):
        truth = sample(seed).truth  # 0 = background, 1 .. N cells
        assert truth.min() == 0 and (truth == 1).any()
        assert looks_complete(truth)


def test_painted_labels_do_not():
    for seed in range(3):
        assert not looks_complete(sample(seed).annotation)  # strokes of background
    truth = sample().truth
    block = np.where(truth > 0, truth + 1, 0)
    block[:40, :40] = np.where(block[:40, :40] == 0, 1, block[:40, :40])  # a filled area
    assert not looks_complete(block)
    stroke = np.where(truth > 0, truth + 1, 0)
    stroke[100:103, 10:60] = 1  # one thin stroke, about a cell's area
    assert not looks_complete(stroke)
    assert not looks_complete(np.where(truth > 4, 0, truth))  # too few cells to tell


def test_training_data_warns_about_complete_masks_only_when_read_as_sparse():
    cells = sample()
    pairs = [(cells.image, cells.annotation), (cells.image, cells.truth)]
    data = TrainingSet(pairs, rng=np.random.default_rng(0))
    assert len(data.warnings) == 1 and data.warnings[0].startswith("pair 2: the background")
    assert "a label from 2 up" in data.warnings[0] and "dense" in data.warnings[0]  # both fixes
    dense = TrainingSet(
        pairs[1:], TrainConfig(labels=LabelConfig(dense=True)), rng=np.random.default_rng(0)
    )
    assert dense.warnings == []


def test_training_data_warns_when_no_background_is_painted():
    cells = sample()
    only_cells = np.where(cells.annotation == 1, 0, cells.annotation)
    data = TrainingSet([(cells.image, only_cells)], rng=np.random.default_rng(0))
    assert len(data.warnings) == 1 and data.warnings[0].startswith("no background is painted")
    both = [(cells.image, only_cells), (cells.image, cells.annotation)]  # painted in one pair
    assert TrainingSet(both, rng=np.random.default_rng(0)).warnings == []
    dense = TrainingSet(
        [(cells.image, cells.truth)],
        TrainConfig(labels=LabelConfig(dense=True)),
        rng=np.random.default_rng(0),
    )
    assert dense.warnings == []  # (0 is background there)


def test_a_label_painted_on_separate_cells_becomes_one_cell_per_piece():
    labels = np.zeros((8, 10), np.int64)
    labels[1:3, 1:3] = 5
    labels[3, 3] = 5  # touches the first piece at a corner: the same piece
    labels[5:7, 6:9] = 5
    labels[5:7, 1:3] = 7
    labels[0, 5:9] = 1  # background
    annotation = read_annotation(labels)
    assert annotation.pieces == {5: 2}
    assert annotation.cells[3, 3] == annotation.cells[1, 1] == 5 and annotation.cells[5, 1] == 7
    assert (annotation.cells[5:7, 6:9] == 8).all()  # a new label above the largest
    assert (annotation.cells[0] == 0).all() and annotation.annotated[0, 5:9].all()
    huge = read_annotation(np.where(labels > 1, labels * 10**9, labels))  # sparse values
    assert huge.pieces == {5 * 10**9: 2} and len(np.unique(huge.cells)) == 4
    dense = read_annotation(np.where(labels > 1, 1, 0), LabelConfig(dense=True))  # binary
    assert dense.pieces == {1: 3} and len(np.unique(dense.cells)) == 4


def test_training_data_splits_and_warns_when_cells_share_a_label():
    cells = sample()
    one_label = np.where(cells.annotation > 1, 2, cells.annotation)
    data = TrainingSet([(cells.image, one_label)], rng=np.random.default_rng(0))
    separate = ndi.label(cells.annotation > 1, structure=np.ones((3, 3)))[1]
    assert 1 < data.cell_count == separate  # one cell per piece (touching cells stay one)
    assert len(data.warnings) == 1 and "label 2: " in data.warnings[0]
    assert data.warnings[0].startswith("pair 1: 1 label(s) cover separate cells")
    painted = TrainingSet([(cells.image, cells.annotation)], rng=np.random.default_rng(0))
    assert painted.warnings == [] and painted.cell_count >= data.cell_count


def test_cell_1_cut_by_the_image_edge_still_counts():
    # numbered in raster order, cell 1 of a real mask often touches the top edge
    ratios = []
    for seed in range(3):
        truth = sample(seed).truth
        rows = np.nonzero(truth == 1)[0]
        cut = truth[(rows.min() + 3 * rows.max()) // 4 :]  # most of cell 1 cut away
        assert looks_complete(cut)
        ratios.append((cut == 1).sum() / np.median(np.unique(cut[cut > 1], return_counts=True)[1]))
    assert min(ratios) < 0.3  # smaller than a whole cell may be
