"""Cells that tile the image, cut where a border between their regions is membrane."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.metrics import adapted_rand_error
from skimage.segmentation import find_boundaries

from napari_unet.core.cells import instances
from napari_unet.core.cells.borders import cut_along_membranes
from napari_unet.core.cells.instances import labels_from_probabilities


def two_cells_with_a_gap(gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, background): one labelled cell made of two squares whose membrane (2 px,
    background 0.95) has a gap of ``gap`` px in its middle."""
    background = np.ones((40, 60))
    background[5:35, 5:55] = 0.05
    background[5:35, 29:31] = 0.95
    background[20 - gap // 2 : 20 + gap - gap // 2, 29:31] = 0.2
    labels = np.where(background < 0.5, 1, 0)
    return labels, background


def tiling_scene(seed: int, shape=(150, 190), cells=45, gaps=25):
    """(truth, probabilities): cells that tile the plane (nearest of random points), parted
    by membranes about 4 px wide with ``gaps`` holes (disks of radius 3) where the network
    saw no membrane; three classes, the outline class empty."""
    rng = np.random.default_rng(seed)
    points = np.zeros(shape, np.int64)
    rows, columns = rng.integers(0, shape[0], cells), rng.integers(0, shape[1], cells)
    points[rows, columns] = np.arange(1, cells + 1)
    nearest = ndi.distance_transform_edt(points == 0, return_indices=True)[1]
    truth = points[tuple(nearest)]
    membrane = ndi.binary_dilation(find_boundaries(truth, mode="thick"))
    holes = np.zeros(shape, bool)
    on = np.argwhere(membrane)
    holes[tuple(on[rng.choice(len(on), gaps, replace=False)].T)] = True
    membrane &= ~ndi.binary_dilation(holes, iterations=3)
    background = np.where(membrane, 0.95, 0.05) + rng.normal(0, 0.03, shape)
    background = np.clip(ndi.gaussian_filter(background, 0.7), 0, 1)
    probabilities = np.stack([background, 1 - background, np.zeros(shape)]).astype(np.float32)
    return np.where(membrane, 0, truth), probabilities


@pytest.mark.parametrize("gap", [2, 4, 8])
def test_a_gap_in_a_membrane_does_not_join_two_cells(gap):
    labels, background = two_cells_with_a_gap(gap)
    assert ndi.label(labels)[1] == 1  # (one cell through the gap)
    cut = cut_along_membranes(labels, background)
    assert cut.max() == 2
    left, right = cut[:, :30], cut[:, 30:]
    assert len(np.unique(left[left > 0])) == 1 and len(np.unique(right[right > 0])) == 1
    assert (cut[:, :29] > 0).sum() == (cut[:, 31:] > 0).sum()  # (cut on the membrane)


def test_a_small_dark_organelle_does_not_cut_its_cell():
    background = np.ones((40, 40))
    background[5:35, 5:35] = 0.05
    background[17:23, 17:23] = 0.9  # (an organelle the network calls background)
    labels = np.where(background < 0.5, 1, 0)
    cut = cut_along_membranes(labels, background)
    assert cut.max() == 1
    assert np.array_equal(cut > 0, labels > 0)


def test_it_only_cuts():
    truth, probabilities = tiling_scene(seed=3)
    joined = labels_from_probabilities(probabilities, min_size=1)
    cut = cut_along_membranes(joined, probabilities[0])
    assert np.array_equal(cut > 0, joined > 0)
    inside = joined > 0
    pairs = np.unique(np.stack([cut[inside], joined[inside]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1]  # (each cut cell in one cell)
    assert cut.max() > joined.max()


def test_cells_that_tile_come_out_whole_through_gaps():
    truth, probabilities = tiling_scene(seed=5)
    joined = labels_from_probabilities(probabilities, min_size=10)
    cut = labels_from_probabilities(probabilities, min_size=10, borders=True)
    merged, cut_error = adapted_rand_error(truth, joined)[0], adapted_rand_error(truth, cut)[0]
    assert merged > 0.4  # (the gaps join many cells)
    assert cut_error < 0.15
    assert joined.max() < 30 < cut.max() <= truth.max()


def test_a_kept_memo_cuts_the_same_cells_once(monkeypatch):
    """Tune the cells keeps a memo per plane: moving the smallest cell does not cut again,
    and what comes out is what labelling afresh gives."""
    _, probabilities = tiling_scene(seed=5)
    calls = []
    real = instances.cut_along_membranes
    monkeypatch.setattr(
        instances, "cut_along_membranes", lambda *args: calls.append(1) or real(*args)
    )
    memo = {}

    def cells(memo=None, **rules):
        return labels_from_probabilities(probabilities, borders=True, memo=memo, **rules)

    for min_size in (10, 60, 10):
        assert np.array_equal(cells(memo, min_size=min_size), cells(min_size=min_size))
    assert len(calls) == 1 + 3  # (once with the memo; once per labelling afresh)
    assert np.array_equal(cells(memo, min_size=10, dip=0.3), cells(min_size=10, dip=0.3))
