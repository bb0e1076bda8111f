"""The maxima that seed the neck basins, found fast: what ``h_maxima`` finds, without its
grey-level reconstruction (docs/decisions/2026-12-05-fast-neck-maxima.md)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima

from .regions import flood

__all__ = ["highest_saddles", "root", "significant_maxima"]

EIGHT = np.ones((3, 3), bool)
# px: a maximum seeds a basin of its own where every path to a higher maximum falls at
# least this far below it (h_maxima's h before; merge_basins then decides on the necks).
DEPTH = 1.0


# the pixel pairs of a plane: (first, second) slices of each 4-neighbour direction, then
# of the two diagonal ones
_RIGHT = ((slice(None), slice(None, -1)), (slice(None), slice(1, None)))
_DOWN = ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))
_DIAGONALS = (
    ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
    ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
)


def highest_saddles(
    basins: np.ndarray, height: np.ndarray, *, diagonal: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Each pair of touching ``basins`` (4-adjacent, or also diagonally) and its saddle:
    the highest ``height`` a path from one to the other keeps across their common border
    (the lower of two neighbouring pixels). Returns the pairs as first x (count + 1) +
    second (first < second), sorted, and their saddles."""
    count = int(basins.max())
    firsts, seconds, saddles = [], [], []
    for a, b in (_RIGHT, _DOWN, *(_DIAGONALS if diagonal else ())):
        la, lb = basins[a], basins[b]
        border = (la != lb) & (la > 0) & (lb > 0)
        la, lb = la[border], lb[border]
        firsts.append(np.minimum(la, lb))
        seconds.append(np.maximum(la, lb))
        saddles.append(np.minimum(height[a][border], height[b][border]))
    first, second, saddle = (np.concatenate(x) for x in (firsts, seconds, saddles))
    key = first.astype(np.int64) * (count + 1) + second
    order = np.lexsort((-saddle, key))  # per pair, its highest saddle first
    key, saddle = key[order], saddle[order]
    unique = np.r_[True, key[1:] != key[:-1]] if key.size else np.zeros(0, bool)
    return key[unique], saddle[unique]


def root(parent: np.ndarray, i: int) -> int:
    """The root of ``i`` in the union-find forest ``parent`` (paths halved on the way)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _deep_enough(peak: np.ndarray, pair: np.ndarray, saddle: np.ndarray) -> np.ndarray:
    """(count + 1,) bool: the maxima whose dynamic is at least ``DEPTH``: each maximum
    falls at least ``DEPTH`` below its own height on every path to a strictly higher
    maximum (a maximum with none is kept). Kruskal's order, highest saddle first: two
    groups of maxima meet at a saddle; the maxima at the lower group's top learn their
    dynamic there (equal tops stay undecided together)."""
    count = len(peak) - 1
    parent = np.arange(count + 1)
    top = {i: [i] for i in range(1, count + 1)}  # a group's maxima at its highest value
    keep = np.ones(count + 1, bool)
    keep[0] = False
    for k in np.argsort(-saddle, kind="stable"):
        x = root(parent, int(pair[k] // (count + 1)))
        y = root(parent, int(pair[k] % (count + 1)))
        if x == y:
            continue
        if peak[x] > peak[y]:
            x, y = y, x  # x: the lower group (or an equal one)
        if peak[x] < peak[y]:
            for i in top.pop(x):
                keep[i] = peak[i] - saddle[k] >= DEPTH
        else:
            top[y] += top.pop(x)
        parent[x] = y
    return keep


def significant_maxima(distance: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Int labels (4-connected) of the regional maxima of ``distance`` (the distance
    transform of ``mask``) whose dynamic is at least ``DEPTH``: the same as
    ``ndi.label(h_maxima(distance, DEPTH))[0]`` (a distance transform's values are at
    least 1 inside the mask and its distinct values lie far apart; tests compare the two),
    but the dynamics come from a watershed of all regional maxima and their saddles
    (8-connected paths, as ``h_maxima``'s reconstruction takes)."""
    plateaus = local_maxima(distance) & mask  # 8-connected plateaus
    every, count = ndi.label(plateaus, EIGHT)
    if count == 0:
        return every
    peak = np.zeros(count + 1)
    peak[every[plateaus]] = distance[plateaus]
    basins = flood(-distance, every, mask, connectivity=2)  # (paths as h_maxima)
    keep = _deep_enough(peak, *highest_saddles(basins, distance, diagonal=True))
    return ndi.label(plateaus & keep[every])[0]
