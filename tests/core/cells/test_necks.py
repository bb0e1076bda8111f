"""Cutting cell interiors at necks: two touching discs are two cells, one disc or one rod
stays one."""

import numpy as np
import pytest
from skimage.morphology import convex_hull_image

from napari_unet.core.cells.instances import NECK_SOLIDITY, label_instances, split_at_necks


def disc(shape, centre, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def test_two_discs_joined_by_a_neck_are_cut_in_two():
    shape = (40, 70)
    mask = disc(shape, (20, 20), 12) | disc(shape, (20, 42), 12)  # overlap: a neck
    labels = split_at_necks(mask, 0.8)
    assert labels.max() == 2 and labels[20, 15] != labels[20, 47]
    assert (labels[mask] > 0).all() and (labels[~mask] == 0).all()
    assert split_at_necks(mask, 0.3).max() == 1  # a gentler ratio keeps them together


def test_two_small_discs_with_a_shallow_neck_are_cut_in_two():
    """Small nuclei (interiors 6 px in radius) touch with a neck only ~1.3 px thinner than
    the discs: as deep as the neck of small touching HeLa nuclei, which a depth of 2 px
    left joined. One such disc on its own stays whole."""
    shape = (40, 60)
    mask = disc(shape, (20, 20), 6) | disc(shape, (20, 29.5), 6)
    labels = split_at_necks(mask, 0.8)
    assert labels.max() == 2 and labels[20, 16] != labels[20, 34]
    cells = label_instances(
        mask.astype(np.float32), outline_probability=0 * mask, min_size=1, neck_ratio=0.8
    )
    assert cells.max() == 2  # not convex together: not joined again
    assert split_at_necks(disc(shape, (20, 20), 6), 0.8).max() == 1


@pytest.mark.parametrize("apart", [7.5, 8.0])
def test_a_saddle_one_pixel_below_the_thinner_side_is_a_neck(apart):
    """Two interiors 5 px in radius whose saddle is one pixel below the thinner maximum
    (1.0 and 1.1 px: the distance transform's 4 against 5 and 5.1) are two cells: one
    grid step is a neck (docs/decisions/2026-12-07-how-sensitive-the-constants-are.md)."""
    shape = (40, 60)
    mask = disc(shape, (20, 20), 5) | disc(shape, (20, 20 + apart), 5)
    labels = split_at_necks(mask, 0.9)
    assert labels.max() == 2 and labels[20, 16] != labels[20, round(24 + apart)]
    assert split_at_necks(disc(shape, (20, 20), 5), 0.9).max() == 1


@pytest.mark.parametrize("ratio", [0.5, 0.8])
def test_one_disc_and_one_rod_stay_whole(ratio):
    shape = (40, 90)
    assert split_at_necks(disc(shape, (20, 20), 12), ratio).max() == 1
    rod = np.zeros(shape, bool)
    rod[17:24, 5:85] = True  # 7 px wide, long: a ridge of equal maxima
    assert split_at_necks(rod, ratio).max() == 1


def test_a_notched_interior_is_one_cell_when_its_outline_is_convex():
    """The network notched one round cell's interior along its texture: cut at the neck,
    the two grown pieces fill the disc, which is convex, so they are one cell again. Two
    overlapping discs leave a notch where they meet and stay two."""
    shape = (40, 70)
    cell = disc(shape, (20, 20), 14).astype(np.float32)
    outline = cell - disc(shape, (20, 20), 12)  # the rim
    outline[19:22, 4:19] = outline[19:22, 22:37] = 1.0  # notches from both sides
    interior = (cell - outline) > 0.5
    assert split_at_necks(interior, 0.8).max() == 2  # the neck is cut...
    one = label_instances(cell, outline_probability=outline, min_size=1, neck_ratio=0.8)
    assert one.max() == 1  # ...and joined again

    two_discs = (disc(shape, (20, 20), 12) | disc(shape, (20, 42), 12)).astype(np.float32)
    two = label_instances(two_discs, outline_probability=0 * two_discs, min_size=1, neck_ratio=0.8)
    assert two.max() == 2 and two[20, 10] != two[20, 52]


def _two_discs(apart=22, shape=(44, 80)):
    return disc(shape, (22, 24), 12) | disc(shape, (22, 24 + apart), 12)


def _cells(mask, ratio=0.9):
    """Cells of an outline network that sees ``mask`` as interior, without outlines."""
    cells = mask.astype(np.float32)
    return label_instances(cells, outline_probability=0 * cells, min_size=1, neck_ratio=ratio)


def test_a_kidney_shaped_nucleus_cut_across_its_waist_is_joined_again():
    """A nucleus notched on one side only (two discs with the lower notch filled) is cut
    at its waist like two touching discs, and, not being convex either, was two cells;
    two touching cells leave a notch at both ends of the line between them, so it is one
    cell again. Two touching discs stay two."""
    lobes = _two_discs(apart=26)
    kidney = lobes | (convex_hull_image(lobes) & (np.arange(lobes.shape[0])[:, None] >= 22))
    assert split_at_necks(kidney, 0.9).max() == 2  # the waist is cut...
    assert kidney.sum() / convex_hull_image(kidney).sum() < NECK_SOLIDITY  # ...not convex
    assert _cells(kidney).max() == 1  # ...and joined again
    two = _two_discs()  # (overlapping: one interior)
    assert split_at_necks(two, 0.9).max() == 2
    two_cells = _cells(two)
    assert two_cells.max() == 2 and two_cells[22, 14] != two_cells[22, 56]


@pytest.mark.parametrize("rows", [20, 24, 26])
def test_two_cells_cut_off_by_the_image_edge_stay_two(rows):
    """Where the image's edge cuts off the lower half of two touching discs, the line
    between them ends on the edge, which may have cut off its notch: they stay two."""
    cells = _cells(_two_discs()[:rows])
    assert cells.max() == 2 and cells[rows - 1, 14] != cells[rows - 1, 56]


@pytest.mark.parametrize(
    ("line_cell", "line_outline", "cells"),
    [
        (0.45, 0.0, 1),  # background wins by a little: a speck line, mended
        (1.0, 1.0, 2),  # the outline wins: a contact between two cells
        (0.0, 0.0, 2),  # background is sure: a real gap
    ],
)
def test_background_specks_do_not_cut_an_interior(line_cell, line_outline, cells):
    """A network dithering inside a large textured nucleus lets background win by a
    little along a line across its interior: still one cell. The same line as outline
    or as sure background divides it."""
    shape = (40, 40)
    cell = disc(shape, (20, 20), 14).astype(np.float32)
    outline = cell - disc(shape, (20, 20), 12)  # the rim
    cell[20, 8:33] = line_cell  # across the interior, from rim to rim
    outline[20, 8:33] = line_outline
    labels = label_instances(cell, outline_probability=outline, min_size=1)
    assert labels.max() == cells
    assert (labels[disc(shape, (20, 20), 11)] > 0).all()  # the whole cell is covered


def test_a_memo_kept_between_calls_gives_the_cells_of_fresh_calls():
    """Tune the cells keeps the stages that a moved rule does not change (the interiors
    and their basins): labels made with the memo equal labels made from scratch, whichever
    rule moves, in whatever order."""
    from scipy import ndimage as ndi

    from napari_unet.core.synthetic import touching_cells

    rng = np.random.default_rng(5)
    truth = touching_cells((160, 160), rng=rng, coverage=0.5).truth
    edge = ndi.binary_dilation(truth == 0) & (truth > 0)  # contacts unmarked: necks decide
    noise = rng.normal(0, 0.15, (2, *truth.shape))
    outline = np.clip(ndi.gaussian_filter(edge * 1.0, 1) * 2 + noise[0], 0, 1) * (truth > 0)
    cell = np.clip((truth > 0) * 0.95 + noise[1] * 0.3, 0, 1)
    outline = np.minimum(outline, cell)
    memo: dict = {}
    moves = [
        dict(neck_ratio=0.8),
        dict(neck_ratio=0.5),
        dict(neck_ratio=0.0),
        dict(neck_ratio=0.8, interior_threshold=0.3),
        dict(neck_ratio=0.9, interior_threshold=0.3, growth=0),
        dict(neck_ratio=0.9, core_threshold=0.7, min_size=30),
        dict(neck_ratio=0.8),
    ]
    counts = set()
    for move in moves:
        fresh = label_instances(cell, outline_probability=outline, **move)
        again = label_instances(cell, outline_probability=outline, memo=memo, **move)
        np.testing.assert_array_equal(again, fresh)
        counts.add(int(fresh.max()))
    assert len(counts) > 2  # the moves do change the cells
    assert memo["interior threshold"] == 0.5  # the last interior threshold's stage is kept
