"""Interiors parted where their probability dips: cells that tile the image, run together
through a gap in the membrane between them."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.core.cells.instances import label_instances, split_at_dips
from napari_unet.core.cells.rules import InstanceRules


def two_cells_and_a_gap(bridge: float, size=(40, 70)):
    """Three-class probabilities of two discs (radius 12) whose membrane has a gap: a
    band 8 px wide across the contact where the interior probability is ``bridge``; and
    the two discs' masks."""
    yy, xx = np.mgrid[: size[0], : size[1]]
    left = (yy - 20) ** 2 + (xx - 20) ** 2 <= 12**2
    right = (yy - 20) ** 2 + (xx - 45) ** 2 <= 12**2
    interior = np.where(left, 1.0, np.where(right, 0.95, 0.0))  # (peaks of equal height
    # would both count, whatever the dip: h_maxima's rule)
    outline = ((left | right) & ~ndi.binary_erosion(left | right, iterations=2)).astype(float)
    interior[outline > 0] = 0.0
    gap = (abs(yy - 20) < 4) & (xx >= 28) & (xx <= 38)
    interior[gap], outline[gap] = bridge, 1 - bridge
    cell = np.clip(interior + outline, 0, 1)
    return np.stack([1 - cell, interior, outline]).astype(np.float32), left, right


def cells_of(probabilities: np.ndarray, **rules) -> np.ndarray:
    return label_instances(
        probabilities[1] + probabilities[2], outline_probability=probabilities[2], **rules
    )


def test_an_interior_run_through_a_gap_is_parted_at_the_dip():
    probabilities, left, right = two_cells_and_a_gap(bridge=0.7)
    assert cells_of(probabilities).max() == 1  # the gap joins the two interiors
    parted = cells_of(probabilities, dip=0.2)
    assert parted.max() == 2
    for disc in (left, right):  # each object is one of the discs, the gap shared out
        values, counts = np.unique(parted[disc], return_counts=True)
        assert values[counts.argmax()] > 0 and counts.max() >= 0.9 * disc.sum()
    # the dip is 0.95 - 0.7, a little less once smoothed: not one of 0.3
    assert cells_of(probabilities, dip=0.3).max() == 1


def test_texture_shallower_than_the_dip_leaves_a_cell_whole():
    probabilities, left, _ = two_cells_and_a_gap(bridge=0.0)
    rng = np.random.default_rng(0)
    inner = probabilities[1] > 0
    probabilities[1][inner] = rng.uniform(0.85, 1.0, int(inner.sum()))  # speckled interior
    probabilities[0] = 1 - probabilities[1] - probabilities[2]
    cells = cells_of(probabilities, dip=0.2)
    assert cells.max() == 2  # the two discs, neither cut at its speckles
    assert len(np.unique(cells[left & (cells > 0)])) == 1


def test_parts_cover_the_interior_and_each_region_is_parted_on_its_own():
    rng = np.random.default_rng(3)
    probability = ndi.gaussian_filter(rng.random((80, 90)), 2.0)
    probability = (probability - probability.min()) / np.ptp(probability)
    interior = probability > 0.45
    regions, count = ndi.label(interior)
    parts = split_at_dips(interior, probability, 0.05)
    assert np.array_equal(parts > 0, interior)  # every interior pixel, nothing else
    assert parts.max() > count  # some regions parted
    for k in range(1, count + 1):
        region = regions == k
        assert not np.isin(parts[region], parts[interior & ~region]).any()  # never joined
        # the same parts when the region is the only one (what blocks rely on)
        alone = split_at_dips(region, probability, 0.05)
        pairs = np.unique(np.stack([alone[region], parts[region]]), axis=1)
        assert pairs.shape[1] == len(np.unique(alone[region])) == len(np.unique(parts[region]))


def test_necks_or_dips_not_both():
    with pytest.raises(ValueError, match="necks .* or parted at dips"):
        InstanceRules(neck_ratio=0.5, dip=0.2)
    with pytest.raises(ValueError, match="dip"):
        InstanceRules(dip=1.0)
    probabilities, _, _ = two_cells_and_a_gap(bridge=0.7)
    with pytest.raises(ValueError, match="not both"):
        cells_of(probabilities, neck_ratio=0.5, dip=0.2)
    assert InstanceRules.from_dict({**InstanceRules().to_dict(), "dip": 0.3}).dip == 0.3
