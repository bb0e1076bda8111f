"""The warping error of a membrane map (Jain et al. 2010), one of the ISBI 2012 scores.

The true cell map is relaxed toward the predicted one by flipping *simple* pixels only
(pixels whose flip changes no object's topology: cells 4-connected, membrane
8-connected), as long as any such flip brings the two closer; the pixels that still
differ are the prediction's topological mistakes (merges, splits, holes, objects added or
lost), counted as a fraction of all pixels. As the reference implementation (Fiji's
Trainable Segmentation, ``WarpingError``): a 3 x 3 neighbourhood decides simplicity, the
image is padded with membrane, there is no geometric mask, and the pixels are taken in its
order (for a binary prediction, whose flips are all equally sure: column by column).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["cell_map", "is_simple", "warp", "warping_error"]

# the 8 neighbours of a pixel, (row, column) offsets; bit k of a code is neighbour k
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)  # 4-connectivity


def is_simple(patch: np.ndarray) -> bool:
    """Whether flipping the centre of a 3 x 3 binary ``patch`` keeps the topology: its
    neighbours hold one 4-connected component of cell touching it side-on and one
    8-connected component of membrane (Bertrand & Malandain 1994)."""
    cells = np.asarray(patch, bool).copy()
    cells[1, 1] = False
    labelled, _ = ndi.label(cells, structure=FOUR)
    sides = labelled[[0, 1, 1, 2], [1, 0, 2, 1]]
    membrane = ~np.asarray(patch, bool)
    membrane[1, 1] = False
    around, _ = ndi.label(membrane, structure=np.ones((3, 3), bool))
    return len(set(sides[sides > 0])) == 1 and len(set(around[around > 0].ravel())) == 1


def _simple_table() -> np.ndarray:
    """:func:`is_simple` for each of the 256 neighbourhoods, indexed by their code."""
    table = np.zeros(256, bool)
    for code in range(256):
        patch = np.zeros((3, 3), bool)
        for bit, (dr, dc) in enumerate(NEIGHBOURS):
            patch[1 + dr, 1 + dc] = bool(code >> bit & 1)
        table[code] = is_simple(patch)
    return table


SIMPLE = _simple_table()


def warp(truth: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``truth`` (bool, True = cell) relaxed toward ``target`` by simple-pixel flips, as
    the reference does: sweeps over the pixels that differ at the sweep's start, column by
    column (its order for a binary target), each flipped at once where simple, until a
    sweep flips none."""
    truth, target = np.asarray(truth, bool), np.asarray(target, bool)
    if truth.shape != target.shape or truth.ndim != 2:
        raise ValueError(f"two planes of one shape, not {truth.shape} and {target.shape}")
    rows, cols = truth.shape
    width = cols + 2
    padded = np.pad(truth, 1)  # (outside the image: membrane, never flipped)
    source = bytearray(padded.astype(np.uint8).tobytes())  # (flat: fast single pixels)
    offsets = [dr * width + dc for dr, dc in NEIGHBOURS]
    simple = SIMPLE.tolist()
    flipped = True
    while flipped:
        flipped = False
        differ = padded[1:-1, 1:-1] != target
        columns, rows_ = np.nonzero(differ.T)  # (column by column)
        for i in ((rows_ + 1) * width + columns + 1).tolist():
            code = 0
            for bit, offset in enumerate(offsets):
                code |= source[i + offset] << bit
            if simple[code]:
                source[i] ^= 1
                flipped = True
        padded = np.frombuffer(bytes(source), np.uint8).reshape(rows + 2, width).astype(bool)
    return padded[1:-1, 1:-1].copy()


def cell_map(labels: np.ndarray) -> np.ndarray:
    """The binary map (True = cell) of a label image: the background and, where two
    objects touch side-on, one of the two touching pixels are membrane, so that no two
    objects join."""
    labels = np.asarray(labels)
    cells = labels > 0
    for axis in (0, 1):
        ahead = [slice(None)] * 2
        ahead[axis] = slice(1, None)
        behind = [slice(None)] * 2
        behind[axis] = slice(None, -1)
        a, b = labels[tuple(behind)], labels[tuple(ahead)]
        cells[tuple(behind)] &= ~((a != b) & (a > 0) & (b > 0))
    return cells


def warping_error(truth: np.ndarray, prediction: np.ndarray) -> float:
    """The fraction of pixels at which the prediction's cell map still differs from the
    true one after the true one is warped toward it (:func:`warp`): 0 when the two differ
    only in where the membranes run, not in how many cells and holes there are. Both are
    label images (0 = membrane); touching objects are parted first (:func:`cell_map`)."""
    true_map, predicted_map = cell_map(truth), cell_map(prediction)
    return float(np.mean(warp(true_map, predicted_map) != predicted_map))
