"""The rules record, the shape policy and the calibration on painted cells."""

import numpy as np
import pytest

from napari_unet.core.cells.instances import labels_from_probabilities
from napari_unet.core.cells.rules import (
    CORE_THRESHOLD,
    CellShape,
    InstanceRules,
    calibrate_neck_ratio,
    measure_cells,
    rules_for,
)


def rods(count=4):
    cells = np.zeros((60, 60), np.int64)
    for k in range(count):
        cells[5 + 12 * k : 11 + 12 * k, 5:55] = 1 + k  # 6 x 50 px rods
    return cells


def test_cells_are_measured_by_count_area_and_shape():
    shape = measure_cells([rods()])
    assert shape.count == 4 and shape.median_area == 300 and shape.median_elongation > 5
    assert shape.rods and not shape.roundish and not shape.cuts_necks(outlines=True)
    discs = np.zeros((40, 40), np.int64)
    discs[5:15, 5:15], discs[20:30, 20:32] = 7, 9
    assert measure_cells([discs, discs]).count == 4
    assert measure_cells([discs]).roundish and measure_cells([discs]).cuts_necks(True)
    assert not measure_cells([discs]).cuts_necks(False)  # two-class networks
    assert measure_cells([np.zeros((5, 5), int)]) == CellShape()


def test_memory_follows_the_cells_not_the_largest_label_value():
    cells = np.zeros((30, 30), np.int64)
    cells[2:8, 2:8], cells[10:20, 10:20] = 2**40, 2**27  # would be TiBs as a bincount
    shape = measure_cells([cells])
    assert shape.count == 2 and shape.median_area == (36 + 100) / 2


def test_the_rules_follow_the_network_and_the_painted_cells():
    round_cells = CellShape(count=20, median_area=400.0, median_elongation=1.2)
    rules = rules_for(round_cells, outlines=True, batch_norm=True)
    assert rules == InstanceRules(min_size=80, core_threshold=CORE_THRESHOLD, flips=True)
    assert rules_for(round_cells, outlines=True, batch_norm=False).core_threshold == 0.0
    assert not rules_for(round_cells, outlines=False, batch_norm=True).flips
    small = CellShape(count=20, median_area=20.0, median_elongation=3.0)  # small rods
    assert rules_for(small, outlines=True, batch_norm=False) == InstanceRules(min_size=10)


def outline_crop(cells):
    """Probabilities of a sure three-class network for ``cells`` (0 = background)."""
    from skimage.segmentation import find_boundaries

    outline = find_boundaries(cells, mode="inner") & (cells > 0)
    interior = (cells > 0) & ~outline
    return np.stack([cells == 0, interior, outline]).astype(np.float32)


def test_the_neck_ratio_is_the_most_eager_that_leaves_painted_cells_whole():
    yy, xx = np.mgrid[:40, :60]
    # a dumbbell: two discs of radius 10 joined by a waist 8 px wide
    dumbbell = ((yy - 20) ** 2 + (xx - 15) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 45) ** 2 <= 100)
    dumbbell |= (abs(yy - 20) <= 4) & (xx > 15) & (xx < 45)
    whole = (outline_crop(dumbbell.astype(int)), dumbbell)
    cut = labels_from_probabilities(whole[0], neck_ratio=0.5)
    assert len(np.unique(cut[dumbbell])) == 2  # even the gentlest ratio cuts the waist...
    # ...so, painted as one cell, it turns neck cutting off
    assert calibrate_neck_ratio([whole], InstanceRules()) == 0.0
    disc = (yy - 20) ** 2 + (xx - 30) ** 2 <= 144
    assert calibrate_neck_ratio([(outline_crop(disc.astype(int)), disc)], InstanceRules()) == 0.8


def test_rules_are_read_from_a_model_files_training_record():
    record = {"steps": 40, "min_size": 25, "neck_ratio": 0.7, "flips": True, "history": {}}
    assert InstanceRules.from_training(record) == InstanceRules(25, 0.7, 0.0, True)
    assert InstanceRules.from_training({}) == InstanceRules()
    with pytest.raises(ValueError, match="neck_ratio"):
        InstanceRules.from_training({"neck_ratio": 2})
