"""Instances from probabilities: components, and seeded growth for outline networks."""

import numpy as np

from napari_unet.core.instances import label_instances


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


def test_a_cell_region_without_interior_stays_one_object():
    cell = np.zeros((10, 30), np.float32)
    cell[2:8, 2:8] = 1.0
    cell[2:8, 20:26] = 1.0
    outline = np.zeros_like(cell)
    outline[2:8, 20:26] = 1.0  # all outline: no seed, still a cell
    labels = label_instances(cell, outline_probability=outline, min_size=1)
    assert labels.max() == 2 and labels.dtype == np.uint16
    assert (labels[2:8, 20:26] == labels[4, 22]).all() and labels[4, 22] != labels[4, 4]
