"""The synthetic touching-cells generator behind the sample data, demo and tests."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.core.synthetic import touching_cells


def test_synthetic_cells_touch_and_the_annotation_follows_the_label_convention():
    sample = touching_cells((128, 160), rng=np.random.default_rng(1), painted_cells=5)
    truth, annotation = sample.truth, sample.annotation
    assert sample.image.shape == truth.shape == annotation.shape == (128, 160)
    assert sample.image.dtype == np.float32 and truth.dtype == np.int32
    n = truth.max()
    assert n >= 20 and np.array_equal(np.unique(truth), np.arange(n + 1))
    # touching: some cell pixel has a 4-neighbour in another cell
    right = (truth[:, :-1] > 0) & (truth[:, 1:] > 0) & (truth[:, :-1] != truth[:, 1:])
    assert right.any()
    # painted cells are whole ground-truth cells, labelled 2, 3, ...
    painted = np.unique(annotation[annotation > 1])
    assert painted.tolist() == [2, 3, 4, 5, 6]
    for value in painted:
        cells = np.unique(truth[annotation == value])
        assert len(cells) == 1 and cells[0] > 0
        assert np.array_equal(annotation == value, truth == cells[0])
    # background strokes lie on background, at least 2 px from any cell
    strokes = annotation == 1
    assert strokes.sum() > 50
    assert not (strokes & ndi.binary_dilation(truth > 0, iterations=2)).any()
    # cells are brighter than background
    assert sample.image[truth > 0].mean() > 2 * sample.image[truth == 0].mean() - 100


def test_synthetic_cells_are_reproducible_with_a_seed():
    a = touching_cells((64, 64), rng=np.random.default_rng(7))
    b = touching_cells((64, 64), rng=np.random.default_rng(7))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.annotation, b.annotation)


def test_synthetic_cells_refuse_tiny_images():
    with pytest.raises(ValueError, match="at least 16 x 16"):
        touching_cells((8, 64), rng=np.random.default_rng(0))
