"""The warping error (ISBI 2012) on hand-made cases, and its relaxation against the
obvious one: every pixel's simplicity decided from its patch's connected components."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.core.cells.warping import SIMPLE, cell_map, is_simple, warp, warping_error

FOUR = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def reference_warp(truth, target):
    """Sweeps, column by column, over the pixels that differ; each checked on its patch."""
    source = np.pad(np.asarray(truth, bool), 1)
    rows, cols = target.shape
    while True:
        differ = [
            (r, c) for c in range(cols) for r in range(rows) if source[r + 1, c + 1] != target[r, c]
        ]
        flipped = False
        for r, c in differ:
            if is_simple(source[r : r + 3, c : c + 3]):
                source[r + 1, c + 1] = not source[r + 1, c + 1]
                flipped = True
        if not flipped:
            return source[1:-1, 1:-1]


def topology(cells):
    """(cells, 4-connected; membrane regions, 8-connected, the outside one of them)."""
    membrane = np.pad(~cells, 1, constant_values=True)
    return ndi.label(cells, FOUR)[1], ndi.label(membrane, np.ones((3, 3)))[1]


def frame(shape=(16, 27)):
    return np.zeros(shape, np.int32)


def test_simple_pixels_change_no_topology_and_the_others_do():
    edge = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0]], bool)  # centre: on a straight edge
    bridge = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]], bool)  # centre joins two cells
    alone = np.zeros((3, 3), bool)  # centre would be a new cell
    hole = np.ones((3, 3), bool)  # centre would be a hole in a cell
    corner = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]], bool)  # 4-connected: apart
    assert is_simple(edge)
    assert not any(map(is_simple, (bridge, alone, hole, corner)))
    # the table, code by code: bit k is the k-th neighbour in reading order
    assert SIMPLE.tolist() == [
        is_simple(
            np.insert(np.array([(code >> b) & 1 for b in range(8)], bool), 4, 0).reshape(3, 3)
        )
        for code in range(256)
    ]


@pytest.mark.parametrize("seed", range(6))
def test_the_relaxation_is_the_reference_one_and_keeps_the_topology(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(12, 30)), int(rng.integers(12, 30)))
    truth, target = (ndi.gaussian_filter(rng.random(shape), 2) > 0.5 for _ in range(2))
    warped = warp(truth, target)
    np.testing.assert_array_equal(warped, reference_warp(truth, target))
    assert topology(warped) == topology(truth)
    assert (warped != target).sum() < (truth != target).sum()


def test_membranes_moved_by_a_pixel_cost_nothing_and_further_across_cells_do():
    truth = frame()
    truth[2:14, 2:13], truth[2:14, 14:25] = 1, 2
    moved = frame()
    moved[3:12, 4:14], moved[4:13, 15:22] = 5, 9  # outer edges moved, the membrane by 1 px
    assert warping_error(truth, moved) == 0.0
    # moved by 2 px, the pixel between stays a cell's: only pixels that differ may flip,
    # so the old membrane cannot cross it (the metric's own rule)
    moved[3:12, 14], moved[4:13, 15] = 5, 0
    left = warp(truth > 0, moved > 0) != (moved > 0)
    assert left[3:12, 13].all() and warping_error(truth, moved) == left.mean()


def test_a_merge_costs_the_membrane_it_removed():
    truth = frame()
    truth[3:13, 3:13], truth[3:13, 14:24] = 1, 2  # parted by a 10 px membrane line
    merged = frame()
    merged[3:13, 3:24] = 1
    assert warping_error(truth, merged) * truth.size == 10  # no pixel of it may go


def test_a_split_costs_one_pixel():
    truth = frame()
    truth[3:13, 3:24] = 1
    split = truth.copy()
    split[3:13, 13] = 0  # a membrane line across the cell: all but one pixel warp away
    assert warping_error(truth, split) * truth.size == 1


def test_a_missing_cell_costs_what_cannot_shrink_away():
    truth = frame()
    truth[3:13, 3:13], truth[5:8, 17:20] = 1, 2
    missed = np.where(truth == 2, 0, truth)
    assert warping_error(truth, missed) * truth.size == 1  # the cell shrinks to one pixel


def test_touching_labels_are_parted_by_one_pixel():
    labels = frame()
    labels[3:13, 3:13], labels[3:13, 13:24] = 4, 7  # side by side, no membrane between
    cells = cell_map(labels)
    assert topology(cells) == (2, 1)
    assert (labels > 0).sum() - cells.sum() == 10
    assert warping_error(labels, labels) == 0.0


def test_planes_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        warp(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
