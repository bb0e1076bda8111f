"""The grid of blocks that :mod:`.blocks` and :mod:`.enclosed` share: which of a block's
edges are the image's, which block edges face each other, and the ids that name a region
the same in every block that sees it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage as ndi

__all__ = ["facing_edges", "global_ids", "image_edges"]


def image_edges(core: tuple[slice, slice], shape) -> tuple[bool, bool, bool, bool]:
    """Whether the block's top, bottom, left and right edges are the image's."""
    return (
        core[0].start == 0,
        core[0].stop == shape[0],
        core[1].start == 0,
        core[1].stop == shape[1],
    )


def facing_edges(
    edges: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    cores: list[tuple[slice, slice]],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each block of ``edges`` (a block's index in ``cores`` -> its values along its
    top, bottom, left and right edges), its bottom edge with the top edge of the block
    below, and its right edge with the left edge of the block to its right: pixel by
    pixel, the values that touch across block borders."""
    index = {(c[0].start, c[1].start): k for k, c in enumerate(cores)}
    for k, (_, bottom, _, right) in edges.items():
        rows, columns = cores[k]
        below = index.get((rows.stop, columns.start))
        beside = index.get((rows.start, columns.stop))
        if below is not None:
            yield bottom, edges[below][0]
        if beside is not None:
            yield right, edges[beside][2]


def global_ids(labels: np.ndarray, core, window, width: int) -> np.ndarray:
    """``labels`` (1..n) of the window, cropped to the core, each region numbered one
    plus the flat index, in an image ``width`` px wide, of its first pixel (raster order):
    its top row's leftmost pixel. (uint64; 0 stays 0.)"""
    count = int(labels.max())
    out = np.zeros((core[0].stop - core[0].start, core[1].stop - core[1].start), np.uint64)
    if count == 0:
        return out
    ids = np.zeros(count + 1, np.uint64)
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        if box is not None:
            rows, columns = box
            column = columns.start + int(np.argmax(labels[rows.start, columns] == k))
            ids[k] = 1 + (rows.start + window[0].start) * width + column + window[1].start
    inner = tuple(
        slice(c.start - w.start, c.stop - w.start) for c, w in zip(core, window, strict=True)
    )
    out[:] = ids[labels[inner]]
    return out
