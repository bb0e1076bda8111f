"""The grid of blocks that :mod:`.blocks` and :mod:`.enclosed` share: which of a block's
edges are the image's, and which block edges face each other."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["facing_edges", "image_edges"]


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
