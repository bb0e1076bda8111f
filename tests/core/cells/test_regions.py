"""The numpy per-region helpers give what the scipy and scikit-image functions they
replace give."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

from napari_unet.core.cells.regions import largest_per_label, sequential, with_holes_filled


def test_largest_per_label_is_ndimage_maximum_and_minus_infinity_where_a_label_is_absent():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, (30, 30))
    labels[labels == 4] = 0  # label 4 absent
    values = rng.normal(size=(30, 30)).astype(np.float32)
    largest = largest_per_label(values, labels, 5)
    for label in (1, 2, 3, 5):
        assert largest[label] == ndi.maximum(values, labels, label)
    assert largest[4] == -np.inf and largest.shape == (6,) and largest.dtype == np.float32
    at_threshold = np.full((2, 2), 0.9, np.float32)  # as sure as a threshold of 0.9
    assert largest_per_label(at_threshold, np.ones((2, 2), int), 1)[1] >= 0.9
    assert ndi.maximum(at_threshold, np.ones((2, 2), int), [1])[0] >= 0.9  # (as before)


def test_sequential_is_relabel_sequential():
    rng = np.random.default_rng(4)
    labels = rng.choice([0, 3, 7, 8, 20], size=(25, 40))
    assert sequential(labels).tolist() == relabel_sequential(labels)[0].tolist()
    assert sorted(np.unique(sequential(labels)).tolist()) == [0, 1, 2, 3, 4]
    assert sequential(np.zeros((3, 3), np.int32)).max() == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_with_holes_filled_is_binary_fill_holes(seed):
    """Smooth blobs with holes, holes touching the edge (not holes), diagonal gaps."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        noise = ndi.gaussian_filter(rng.random((50, 64)), rng.uniform(0.5, 3))
        mask = noise > rng.uniform(0.45, 0.55)
        assert np.array_equal(with_holes_filled(mask), ndi.binary_fill_holes(mask))
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False
    assert with_holes_filled(ring)[4, 4] and not with_holes_filled(ring)[0, 0]
