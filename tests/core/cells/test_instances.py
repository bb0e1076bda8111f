"""Instances from probabilities: components, and seeded growth for outline networks."""

import numpy as np

from napari_unet.core.cells.instances import label_instances


def test_outline_probability_splits_touching_cells():
    cell = np.zeros((12, 20), np.float32)
    cell[2:10, 2:18] = 1.0  # one connected region of "cell"
    outline = np.zeros_like(cell)
    outline[2:10, 9:11] = 1.0  # the contact between two cells
    assert label_instances(cell, min_size=1).max() == 1
    labels = label_instances(cell, outline_probability=outline, min_size=1)
    assert labels.max() == 2
    assert len(np.unique(labels[2:10, 2:9])) == 1 and len(np.unique(labels[2:10, 11:18])) == 1
    assert labels[5, 4] != labels[5, 15]
    assert (labels[cell > 0.5] > 0).all()  # the outline pixels are given to a cell


def test_cells_are_their_interiors_grown_by_the_outline_and_regions_without_one_dropped():
    cell = np.zeros((16, 30), np.float32)
    cell[2:14, 2:14] = 1.0
    cell[2:8, 20:26] = 1.0
    outline = np.zeros_like(cell)
    outline[2:14, 2:14] = 1.0
    outline[6:10, 6:10] = 0.0  # a 4 x 4 interior in a 12 x 12 cell
    outline[2:8, 20:26] = 1.0  # all outline: no interior, not a cell
    labels = label_instances(cell, outline_probability=outline, min_size=1)
    assert labels.max() == 1 and labels.dtype == np.uint16
    rows, cols = np.nonzero(labels)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 11, 4, 11)  # grown by 2


def test_interiors_never_sure_of_themselves_are_dropped():
    cell = np.zeros((12, 40), np.float32)
    cell[2:10, 2:10] = cell[2:10, 16:24] = cell[2:10, 30:38] = 1.0
    outline = np.zeros_like(cell)
    outline[2:10, 16:24] = 0.3  # interior probability 0.7 at best: a faint, unsure blob
    outline[2:10, 30:38] = 0.3
    outline[5, 33] = 0.05  # 0.95 at one pixel: a cell with a sure core
    sure = label_instances(cell, outline_probability=outline, min_size=1, core_threshold=0.9)
    assert sure.max() == 2 and sure[5, 5] > 0 and sure[5, 20] == 0 and sure[5, 34] > 0
    assert label_instances(cell, outline_probability=outline, min_size=1).max() == 3  # off
