"""Where training tiles come from, and which painted cells are held back."""

import numpy as np
import pytest

from napari_unet.core.training.sampling import MAX_VALIDATION_CELLS, WeightedPixels, hold_back_cells


def test_pixels_are_drawn_in_proportion_to_their_weight_and_never_at_weight_0():
    weights = [np.zeros((4, 5)), np.zeros((3, 3))]
    weights[0][1, 2], weights[0][3, 4], weights[1][2, 0] = 1.0, 3.0, 4.0
    draws = WeightedPixels(weights).draw(8000, np.random.default_rng(0))
    found, counts = np.unique(np.array(draws), axis=0, return_counts=True)
    assert [tuple(f) for f in found] == [(0, 1, 2), (0, 3, 4), (1, 2, 0)]
    np.testing.assert_allclose(counts / 8000, [1 / 8, 3 / 8, 4 / 8], atol=0.02)
    with pytest.raises(ValueError, match="nothing is annotated"):
        WeightedPixels([np.zeros((3, 3))])


def test_cells_are_held_back_only_when_there_are_enough():
    rng = np.random.default_rng(0)
    assert hold_back_cells([(0, v) for v in range(2, 11)], 0.2, rng) == set()  # 9 cells
    held = hold_back_cells([(0, v) for v in range(2, 22)], 0.2, rng)  # 20 cells
    assert len(held) == 4 and held <= {(0, v) for v in range(2, 22)}
    many = [(p, v) for p in range(5) for v in range(2, 202)]  # complete masks: 1000 cells
    assert len(hold_back_cells(many, 0.2, rng)) == MAX_VALIDATION_CELLS
