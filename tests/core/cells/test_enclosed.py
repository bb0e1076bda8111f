"""Cells inside cells join the cell around them: on the whole image as the slow, obvious
pixel rule gives it, and block by block as on the whole image."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.core.cells.blocks import plan_blocks
from napari_unet.core.cells.enclosed import (
    block_contacts,
    find_enclosed,
    join_block,
    join_enclosed,
    outermost_dominators,
)
from napari_unet.core.cells.instances import labels_from_probabilities
from napari_unet.core.cells.regions import sequential, with_holes_filled
from napari_unet.core.cells.rules import InstanceRules


def by_holes(labels: np.ndarray) -> np.ndarray:
    """The reference, pixel by pixel: for each cell, its holes (the 4-connected parts of
    the rest of the image that do not reach the image's edge); the cells wholly in them
    and their unlabelled pixels take its id; a cell already taken is no longer one."""
    out = labels.copy()
    sizes = np.bincount(labels.ravel())
    taken = np.zeros(labels.max() + 1, bool)
    for cell in range(1, labels.max() + 1):
        mask = labels == cell
        if taken[cell] or not mask.any():
            continue
        hole = with_holes_filled(mask) & ~mask
        found, counts = np.unique(labels[hole], return_counts=True)
        inside = found[(found > 0) & (counts == sizes[found])]
        taken[inside] = True
        out[hole & ((labels == 0) | np.isin(labels, inside))] = cell
    return sequential(out)


def random_scene(rng: np.random.Generator, size: int = 60) -> np.ndarray:
    """Cells that tile the plane with unlabelled gaps, and rings (cells around cells,
    nested, some cut by the image's edge); every cell 4-connected, as the reference
    needs."""
    seeds = rng.random((size, size)) < rng.uniform(0.003, 0.02)
    seeds[0, 0] = True
    _, (r, c) = ndi.distance_transform_edt(~seeds, return_indices=True)
    labels = np.ravel_multi_index((r, c), seeds.shape) + 1
    labels[rng.random((size, size)) < rng.uniform(0, 0.3)] = 0
    rows, columns = np.mgrid[:size, :size]
    for _ in range(rng.integers(1, 6)):
        y, x = rng.integers(0, size, 2)
        inner, width = rng.integers(2, 18), rng.integers(1, 4)
        distance = np.hypot(rows - y, columns - x)
        labels[(distance >= inner) & (distance < inner + width)] = rng.integers(1, size**2)
        if rng.random() < 0.5:
            labels[distance < inner - rng.integers(0, 3)] = rng.choice([0, size**2 + 1])
    out, count = np.zeros(labels.shape, np.int64), 0
    for value in np.unique(labels[labels > 0]):
        pieces, n = ndi.label(labels == value)
        out[pieces > 0] = pieces[pieces > 0] + count
        count += n
    return out


def ring(shape, centre, inner, outer) -> np.ndarray:
    distance = np.hypot(*(np.indices(shape) - np.array(centre)[:, None, None]))
    return (distance >= inner) & (distance < outer)


def test_a_cell_in_a_ring_and_the_gap_between_join_the_ring():
    labels = np.zeros((40, 40), np.int64)
    labels[ring(labels.shape, (20, 20), 8, 11)] = 1
    labels[18:23, 18:23] = 2  # inside, with unlabelled pixels around it
    labels[0:3, 0:3] = 3  # outside
    out = join_enclosed(labels)
    assert out.max() == 2
    inside = with_holes_filled(labels == 1)
    assert (out[inside] == out[20, 20]).all() and out[20, 20] == out[labels == 1][0]
    assert (out[labels == 3] != out[20, 20]).all() and (out[~inside & (labels != 3)] == 0).all()


def test_nested_cells_join_the_outermost_whatever_their_ids():
    for ids in ((1, 2, 3), (3, 2, 1)):
        labels = np.zeros((50, 50), np.int64)
        labels[ring(labels.shape, (25, 25), 15, 18)] = ids[0]
        labels[ring(labels.shape, (25, 25), 6, 9)] = ids[1]
        labels[23:28, 23:28] = ids[2]
        out = join_enclosed(labels)
        assert out.max() == 1 and (out[with_holes_filled(labels == ids[0])] == 1).all()


def test_what_reaches_the_edge_or_lies_between_two_cells_is_not_enclosed():
    labels = np.zeros((40, 60), np.int64)
    labels[ring(labels.shape, (20, 0), 8, 11)] = 1  # a half ring on the image's edge
    labels[18:23, 0:3] = 2  # in it, on the edge
    labels[ring(labels.shape, (20, 28), 5, 8)] = 3
    labels[19:22, 26:39] = 4  # from inside that ring out across it (cut there)
    left = ring(labels.shape, (20, 48), 5, 8) & (np.arange(60) < 48)
    labels[ring(labels.shape, (20, 48), 5, 8)] = 5
    labels[left] = 6  # a ring of two cells
    labels[19:22, 47:50] = 7  # in it
    assert same_cells(join_enclosed(labels), labels)
    assert same_cells(by_holes(labels), labels)


def same_cells(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether one is a renumbering of the other (0 stays 0)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return np.array_equal(a > 0, b > 0) and pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def test_the_graph_rule_gives_what_the_pixel_rule_gives():
    rng = np.random.default_rng(0)
    joined = 0
    for _ in range(60):
        labels = random_scene(rng)
        want = by_holes(labels)
        np.testing.assert_array_equal(join_enclosed(labels), want)
        joined += want.max() < labels.max()
    assert joined > 20  # (the scenes have cells inside cells to join)


def as_block_ids(labels: np.ndarray) -> np.ndarray:
    """``labels`` numbered as blocks number them: one plus the flat index of each
    cell's first pixel."""
    flat = np.arange(labels.size).reshape(labels.shape)
    first = ndi.minimum(flat, labels, index=np.arange(1, labels.max() + 1))
    lookup = np.zeros(labels.max() + 1, np.uint64)
    lookup[1:] = 1 + np.asarray(first, np.int64)
    return lookup[labels]


@pytest.mark.parametrize("block", [4, 7, 16, 25])
def test_blocks_join_as_the_whole_image_and_again_changes_nothing(block):
    rng = np.random.default_rng(block)
    for _ in range(15):
        labels = as_block_ids(random_scene(rng))
        cores = plan_blocks(labels.shape, block)
        contacts = {k: block_contacts(labels[c], c, labels.shape) for k, c in enumerate(cores)}
        enclosed = find_enclosed(contacts, cores)
        out = np.zeros_like(labels)
        for core in cores:
            out[core] = join_block(labels[core], core, labels.shape, enclosed)
        np.testing.assert_array_equal(sequential(out.astype(np.int64)), join_enclosed(labels))
        for core in cores:  # (a task that runs twice)
            np.testing.assert_array_equal(
                join_block(out[core], core, labels.shape, enclosed), out[core]
            )
        flat = np.flatnonzero(out)  # (a cell keeps the id of its first pixel)
        ids, first = np.unique(out.ravel()[flat], return_index=True)
        np.testing.assert_array_equal(ids, 1 + flat[first])


def test_outermost_dominators_on_a_small_graph():
    """0 - 1 - 2 - 3 and 2 - 4 - 5 - 2 (a loop), root 0: 1 dominates everything beyond
    it, 2 dominates 3, 4 and 5; with only 2 a candidate, 3, 4 and 5 have 2; 4 dominates
    nothing (5 reaches 2 directly)."""
    a = np.array([0, 1, 2, 2, 4, 5])
    b = np.array([1, 2, 3, 4, 5, 2])
    assert outermost_dominators(6, a, b, 0, [True] * 6).tolist() == [-1, -1, 1, 1, 1, 1]
    only_two = [False, False, True, False, False, False]
    assert outermost_dominators(6, a, b, 0, only_two).tolist() == [-1, -1, -1, 2, 2, 2]
    only_four = [False, False, False, False, True, False]
    assert outermost_dominators(6, a, b, 0, only_four).tolist() == [-1] * 6


def test_labelling_joins_an_organelle_the_network_ringed_unless_the_rules_say_not():
    """A cell with an organelle inside it that the network rings with outline: the
    organelle's interior comes out as a cell of its own, unless joined."""
    shape = (60, 60)
    cell = np.hypot(*(np.indices(shape) - 30)) < 25
    organelle = ring(shape, (30, 30), 5, 8)
    probabilities = np.zeros((3, *shape), np.float32)
    probabilities[:] = np.where(
        cell, [[[0.02]], [[0.95]], [[0.03]]], [[[0.98]], [[0.01]], [[0.01]]]
    )
    probabilities[:, organelle] = [[0.02], [0.03], [0.95]]
    probabilities[:, ring(shape, (30, 30), 25, 27)] = [[0.02], [0.03], [0.95]]
    joined = labels_from_probabilities(probabilities, **InstanceRules(min_size=5).labelling())
    apart = labels_from_probabilities(
        probabilities, **InstanceRules(min_size=5, join_enclosed=False).labelling()
    )
    assert apart.max() == 2 and joined.max() == 1
    assert (joined[apart > 0] == 1).all() and (joined[30, 30] == 1)
