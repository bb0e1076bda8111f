"""The maxima that seed the neck basins: the fast version against h_maxima (the slow,
obvious one it replaces), and its parts on hand-made cases."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima

from napari_unet.core.cells.maxima import highest_saddles, significant_maxima


def random_masks(count: int, seed: int = 0):
    """Smooth blobs, overlapping discs and salt-and-pepper masks (many plateaus, diagonal
    paths and maxima on the image's edge)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:72, :72]
    for i in range(count):
        if i % 3 == 0:
            yield ndi.gaussian_filter(rng.random((72, 72)), rng.uniform(1, 4)) > 0.5
        elif i % 3 == 1:
            mask = np.zeros((72, 72), bool)
            for _ in range(rng.integers(1, 10)):
                y, x, r = rng.uniform(0, 72), rng.uniform(0, 72), rng.uniform(3, 14)
                mask |= (rows - y) ** 2 + (cols - x) ** 2 < r * r
            yield mask
        else:
            yield rng.random((48, 60)) > rng.uniform(0.2, 0.6)


@pytest.mark.parametrize("seed", [0, 1])
def test_significant_maxima_are_the_labelled_h_maxima_of_the_distance(seed):
    differing = []
    for i, mask in enumerate(random_masks(60, seed)):
        distance = ndi.distance_transform_edt(mask)
        reference = ndi.label(h_maxima(distance, 1))[0]
        if not np.array_equal(significant_maxima(distance, mask), reference):
            differing.append(i)
    assert differing == []


def test_one_disc_or_rod_has_one_maximum_and_two_discs_with_a_neck_two():
    rows, cols = np.mgrid[:40, :80]
    for gap, expected in ((0, 1), (1, 1), (2, 2), (16, 2)):  # centres apart (radius 10)
        mask = ((rows - 20) ** 2 + (cols - 20) ** 2 <= 100) | (
            (rows - 20) ** 2 + (cols - 20 - gap) ** 2 <= 100
        )
        distance = ndi.distance_transform_edt(mask)
        assert significant_maxima(distance, mask).max() == expected, gap
    rod = (abs(rows - 20) <= 5) & (abs(cols - 40) <= 25)  # a ridge of equal maxima
    assert significant_maxima(ndi.distance_transform_edt(rod), rod).max() == 1


def test_an_empty_mask_has_no_maxima():
    mask = np.zeros((10, 12), bool)
    assert significant_maxima(ndi.distance_transform_edt(mask), mask).max() == 0


def test_highest_saddles_cross_diagonal_contacts_only_when_asked():
    basins = np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 2, 2],
            [0, 3, 2, 2],
        ]
    )
    height = np.array(
        [
            [1.0, 2.0, 0, 0],
            [2.0, 3.0, 0, 0],
            [0, 0, 5.0, 1.0],
            [0, 4.0, 1.0, 1.0],
        ]
    )
    pairs, saddles = highest_saddles(basins, height)
    assert pairs.tolist() == [2 * 4 + 3] and saddles.tolist() == [1.0]  # 2-3, 4-adjacent
    pairs, saddles = highest_saddles(basins, height, diagonal=True)
    assert pairs.tolist() == [1 * 4 + 2, 2 * 4 + 3]  # 1 and 3 never meet
    assert saddles.tolist() == [3.0, 4.0]  # 2-3: the diagonal (2, 2)-(3, 1) is higher
