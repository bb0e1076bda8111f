"""Cells inside cells: a cell, or a piece of unlabelled pixels, that lies in a hole of
another cell joins it (docs/decisions/2026-12-07-enclosed-cells-joined.md).

What the network rings with outline inside a cell (a mitochondrion in an EM section, a
dark speck in cytoplasm) comes out as a cell of its own, where the cell is one. The rule:
a cell or unlabelled piece *lies in a hole* of cell E when every path from it to the
image's edge, in steps between 4-adjacent pixels, passes through E; it joins the
outermost such cell.

Whether it does depends on the whole of E, which may reach across a whole slide, so the
rule works on a graph, as :func:`~.blocks.find_holes` does for the holes of the cell
mask: its nodes are the cells and the unlabelled pieces (4-connected) of each block, and
one node for the image's edge; its edges join what touches. Every path from X to the edge
node passes through E exactly when E *dominates* X, found with one depth-first search
(:func:`outermost_dominators`). A whole image is one block of it.

Ids follow :mod:`.blocks`: a cell keeps its id; an unlabelled piece is numbered
``PIECE | (1 + flat index of its first pixel in the block)``, so that it never meets a
cell's id.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .grid import facing_edges, global_ids, image_edges
from .regions import sequential

__all__ = ["Contacts", "block_contacts", "find_enclosed", "join_block", "join_enclosed"]

PIECE = np.uint64(1 << 63)  # the bit that marks an unlabelled piece's id


@dataclass(frozen=True)
class Contacts:
    """The cells and unlabelled pieces of one block and which of them touch.

    cells, pieces: their ids (sorted uint64). pairs: (n, 2) ids of two that touch
    (4-adjacent) in the block. open: the ids on the image's edge in the block.
    edges: the ids along the block's first and last row and column (top, bottom, left,
    right), to join with the neighbouring blocks'.
    """

    cells: np.ndarray
    pieces: np.ndarray
    pairs: np.ndarray
    open: np.ndarray
    edges: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _nodes(labels: np.ndarray, core: tuple[slice, slice], width: int) -> np.ndarray:
    """(h, w) uint64: the cells' ids, and the unlabelled pieces' (``PIECE`` | one plus the
    flat image index of the piece's first pixel in the block)."""
    pieces, count = ndi.label(labels == 0)  # 4-connected
    ids = labels.astype(np.uint64)
    if count:
        ids = np.where(pieces > 0, global_ids(pieces, core, core, width) | PIECE, ids)
    return ids


def _touching(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(n, 2) the pairs of different ids where ``before`` meets ``after`` (raveled
    neighbours), smaller id first, each pair once."""
    apart = before != after
    low, high = before[apart], after[apart]
    low, high = np.minimum(low, high), np.maximum(low, high)
    if not len(low):
        return np.zeros((0, 2), np.uint64)
    keep = np.r_[True, (low[1:] != low[:-1]) | (high[1:] != high[:-1])]
    low, high = low[keep], high[keep]  # (a border between two is a run of one pair)
    order = np.lexsort((high, low))
    low, high = low[order], high[order]
    keep = np.r_[True, (low[1:] != low[:-1]) | (high[1:] != high[:-1])]
    return np.stack([low[keep], high[keep]], axis=1)


def block_contacts(
    labels: np.ndarray, core: tuple[slice, slice], shape: tuple[int, int]
) -> Contacts:
    """The :class:`Contacts` of the cells ``labels`` (h, w; ids as :mod:`.blocks` gives
    them, 0 = unlabelled) of the block ``core`` of an image of ``shape``."""
    ids = _nodes(np.asarray(labels), core, shape[1])
    across = ids.T  # (columns first: a border between two columns is a run)
    pairs = np.concatenate(
        [
            _touching(across[:-1].ravel(), across[1:].ravel()),
            _touching(ids[:-1].ravel(), ids[1:].ravel()),
        ]
    )
    edges = (ids[0], ids[-1], ids[:, 0], ids[:, -1])
    on_edge = [e for e, at in zip(edges, image_edges(core, shape), strict=True) if at]
    # (each node touches another, or fills the block and lines its edges)
    found = np.unique(np.concatenate([pairs.ravel(), *edges]))
    piece = (found & PIECE) > 0
    return Contacts(
        cells=found[~piece],
        pieces=found[piece],
        pairs=pairs,
        open=np.unique(np.concatenate(on_edge)) if on_edge else np.zeros(0, np.uint64),
        edges=edges,
    )


def find_enclosed(
    contacts: dict[int, Contacts], cores: list[tuple[slice, slice]]
) -> tuple[np.ndarray, np.ndarray]:
    """The ids (sorted uint64) of the cells and unlabelled pieces that lie in a hole of
    another cell, and the id of the outermost such cell for each. ``contacts`` maps a
    block's index in ``cores`` to its :func:`block_contacts`."""
    parts = list(contacts.values())
    cells = np.unique(np.concatenate([c.cells for c in parts] + [np.zeros(0, np.uint64)]))
    nodes = np.concatenate([cells] + [c.pieces for c in parts])  # pieces are per block
    nodes = np.sort(nodes)
    first = [c.pairs[:, 0] for c in parts]
    second = [c.pairs[:, 1] for c in parts]
    for mine, facing in facing_edges({k: c.edges for k, c in contacts.items()}, cores):
        apart = mine != facing  # (a cell cut by the block line meets itself)
        first.append(mine[apart])
        second.append(facing[apart])
    empty = np.zeros(0, np.uint64)
    edge = len(nodes)  # the image's edge
    opened = np.unique(np.concatenate([c.open for c in parts] + [empty]))
    a = np.concatenate([_index(nodes, first + [empty]), _index(nodes, [opened])])
    b = np.concatenate([_index(nodes, second + [empty]), np.full(len(opened), edge, np.int32)])
    del first, second
    is_cell = np.zeros(len(nodes) + 1, bool)
    is_cell[np.searchsorted(nodes, cells)] = True
    outer = outermost_dominators(len(nodes) + 1, a, b, edge, is_cell)
    joined = np.flatnonzero(outer[:-1] >= 0)
    return nodes[joined], nodes[outer[joined]]


def _index(nodes: np.ndarray, ids: list[np.ndarray]) -> np.ndarray:
    """Where each of ``ids`` (concatenated) is in the sorted ``nodes``: int32 (a graph of a
    whole slide's cells holds tens of millions of them)."""
    return np.concatenate([np.searchsorted(nodes, i).astype(np.int32) for i in ids])


def outermost_dominators(
    count: int, a: np.ndarray, b: np.ndarray, root: int, candidate: np.ndarray
) -> np.ndarray:
    """For each of ``count`` nodes of the undirected graph with edges ``a[i]``-``b[i]``,
    the node nearest ``root`` among the ``candidate`` nodes (bool) that every path from it
    to ``root`` passes through (-1: none; also for nodes ``root`` does not reach).

    One depth-first search from ``root``: a node's dominators are its parent's and the
    parent itself where the parent is a cut vertex for it (no edge from its subtree
    reaches above the parent), since every dominator is an ancestor. The search's state
    lives in ``array`` (4 bytes a node or edge, where a list of ints takes 36)."""
    # each node's neighbours one after another: the edges both ways as (node << 32 |
    # neighbour), sorted in place (a whole slide's graph has tens of millions of them)
    key = np.empty(2 * len(a), np.int64)
    key[: len(a)], key[len(a) :] = a, b
    key <<= 32
    key[: len(a)] |= b
    key[len(a) :] |= a
    key.sort()
    neighbours = array("i", [0]) * len(key)
    np.frombuffer(neighbours, np.int32)[:] = key  # (the low 32 bits: the neighbour)
    del key
    counts = np.bincount(a, minlength=count) + np.bincount(b, minlength=count)
    starts = array("i", np.concatenate([[0], np.cumsum(counts)]).astype(np.int32).tobytes())
    found = array("i", [-1]) * count  # discovery time
    low = array("i", [0]) * count
    parent = array("i", [-1]) * count
    preorder = array("i")
    found[root] = low[root] = 0
    path, at_edge = array("i", [root]), array("i", [starts[root]])  # the search's stack
    clock = 1
    while path:
        node, at = path[-1], at_edge[-1]
        if at < starts[node + 1]:
            at_edge[-1] = at + 1
            other = neighbours[at]
            if found[other] < 0:
                found[other] = low[other] = clock
                clock += 1
                parent[other] = node
                preorder.append(other)
                path.append(other)
                at_edge.append(starts[other])
            elif other != parent[node] and found[other] < low[node]:
                low[node] = found[other]
        else:
            path.pop()
            at_edge.pop()
            if path and low[node] < low[path[-1]]:
                low[path[-1]] = low[node]
    is_candidate = array("b", np.asarray(candidate, np.int8).tobytes())
    outer = array("i", [-1]) * count
    for node in preorder:
        up = parent[node]
        if outer[up] >= 0:
            outer[node] = outer[up]
        elif up != root and is_candidate[up] and low[node] >= found[up]:
            outer[node] = up
    return np.frombuffer(outer, np.int32).astype(np.int64)


def join_block(
    labels: np.ndarray,
    core: tuple[slice, slice],
    shape: tuple[int, int],
    enclosed: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """The cells ``labels`` of the block ``core`` with those of :func:`find_enclosed`'s
    ``enclosed`` (ids, and the cell each joins) joined, and the unlabelled pieces in their
    holes too. Labels already joined come out the same (a task may run twice)."""
    ids, into = enclosed
    labels = np.asarray(labels)
    if not len(ids):
        return labels
    nodes = _nodes(labels, core, shape[1])
    at = np.minimum(np.searchsorted(ids, nodes), len(ids) - 1)
    hit = ids[at] == nodes
    return np.where(hit, into[at], labels).astype(labels.dtype)


def join_enclosed(labels: np.ndarray) -> np.ndarray:
    """``labels`` (H, W; 0 = unlabelled) with each cell or unlabelled piece that lies in a
    hole of another cell joined to the outermost such cell, renumbered 1..n in the order
    of the cells' ids (int64)."""
    labels = np.asarray(labels)
    whole = (slice(0, labels.shape[0]), slice(0, labels.shape[1]))
    contacts = block_contacts(labels, whole, labels.shape)
    enclosed = find_enclosed({0: contacts}, [whole])
    return sequential(
        join_block(labels.astype(np.uint64), whole, labels.shape, enclosed).astype(np.int64)
    )
