"""Cells of an image of any size, block by block, exactly as of the whole image.

Labelling (:func:`~.instances.label_instances`) is local but for two steps: filling the
holes of the cell mask, where a hole is background that does not reach the image's edge,
however far away that is, and joining the cells that lie in a hole of another cell. So it
runs in passes over a grid of blocks:

1. :func:`background_block` numbers the background pieces of one block; :func:`find_holes`
   joins the pieces that meet across block borders (a graph of the pieces on block
   edges, small) and names those that never reach the image's edge: the holes.
2. :func:`label_block` labels a block's *core* on a window around it, with the cell mask
   made from the probabilities and the holes. Every other step depends on nearby
   *units* only: for networks with an outline class, the pieces of what the mended cell
   interior can cover (:func:`_mendable`; the outlines keep them apart, even in confluent
   tissue), each cut at necks or parted at dips (with the probabilities a few px around
   it), kept, grown and
   joined as its own shape and that of its neighbours within a few pixels say, and cut
   along membranes on its zone (:mod:`.borders`); for
   two-class networks, the connected pieces of the cell mask. The window grows until the
   units the core depends on are whole in it (:func:`_dependencies_whole`), up to
   ``MAX_MARGIN`` px or a block beyond the block.
3. Where the rules join cells inside cells, :func:`~.enclosed.block_contacts` lists which
   cells and unlabelled pieces of a block touch; :func:`~.enclosed.find_enclosed` finds,
   on the graph of all blocks', those in a hole of another cell;
4. :func:`~.enclosed.join_block` joins them, block by block.

Each cell gets the same id in every block that sees it: one plus the flat index of its
first pixel (in raster order) in the whole image. A block writes its core only, so blocks
never write the same pixel and can run in any order or in parallel; two cells that touch
across a block border keep their two ids, and a cell cut by a block line has one id on
both sides: the stitching is the whole-image labelling itself.

One known limit: the mending fills an unsure patch (background likelier than outline)
that a cell's interior encloses; a window that sees only such a patch, no interior, does
not know to grow, and leaves it unlabelled. The patch must be wider than the window (the
block and ``margin`` px on each side, 64 by default); passes 3 and 4 then join it to the
cell around it, so it remains only with ``join_enclosed`` off or where more than one
cell surrounds the patch. The expected failure in tests/core/cells/test_blocks.py shows
it. Finding the holes of the interior as pass 1 finds those of the cell mask would
remove it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .borders import BORDER_REACH, SMOOTHING
from .enclosed import block_contacts, find_enclosed, join_block
from .grid import facing_edges, global_ids, image_edges
from .instances import DIP_SMOOTHING, GAP_PROBABILITY, cell_probability, label_instances
from .regions import with_holes_filled
from .rules import InstanceRules

__all__ = [
    "BackgroundPieces",
    "background_block",
    "find_holes",
    "label_block",
    "label_in_blocks",
    "plan_blocks",
]

# px: the most a window may reach beyond its block on each side (or the block's size, if
# larger): memory stays bounded by about 9 blocks' worth of labelling
MAX_MARGIN = 512


def plan_blocks(shape: tuple[int, int], block: int) -> list[tuple[slice, slice]]:
    """The cores of the blocks of ``block`` px that tile an image of ``shape``."""
    if block < 1:
        raise ValueError(f"block size {block} must be a whole number of pixels above 0")
    return [
        (slice(r, min(r + block, shape[0])), slice(c, min(c + block, shape[1])))
        for r in range(0, shape[0], block)
        for c in range(0, shape[1], block)
    ]


@dataclass(frozen=True)
class BackgroundPieces:
    """The background pieces of one block, numbered like cells (:func:`_global_ids`).

    ids: (h, w) uint64, 0 where the cell probability is above the threshold.
    found: the ids in the block. open: those that touch the image's edge in it.
    edges: the ids along the block's first and last row and column (top, bottom, left,
        right), to join with the neighbouring blocks'.
    """

    ids: np.ndarray
    found: np.ndarray
    open: np.ndarray
    edges: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def background_block(
    probabilities, core: tuple[slice, slice], *, threshold: float = 0.5
) -> BackgroundPieces:
    """Pass 1 for the block ``core`` of ``probabilities`` (classes, H, W; numpy, zarr or
    dask: only the core is read)."""
    height, width = probabilities.shape[-2:]
    p = cell_probability(np.asarray(probabilities[(slice(None), *core)], np.float32))
    pieces, _ = ndi.label(p <= threshold)  # 4-connected, as filling holes floods
    ids = global_ids(pieces, core, core, width)
    edges = (ids[0], ids[-1], ids[:, 0], ids[:, -1])
    on_edge = [e for e, at in zip(edges, image_edges(core, (height, width)), strict=True) if at]
    touching = np.unique(np.concatenate(on_edge)) if on_edge else np.zeros(0, np.uint64)
    return BackgroundPieces(ids, np.unique(ids[ids > 0]), touching[touching > 0], edges)


def find_holes(pieces: dict[int, BackgroundPieces], cores: list[tuple[slice, slice]]) -> np.ndarray:
    """The ids (sorted uint64) of the background pieces that belong to holes: joined
    across block borders, they never touch the image's edge. ``pieces`` maps a block's
    index in ``cores`` to its :func:`background_block` (its ids need not be kept)."""
    found = np.unique(np.concatenate([p.found for p in pieces.values()] + [np.zeros(0, np.uint64)]))
    if not len(found):
        return found
    first, second = [], []
    for mine, facing in facing_edges({k: p.edges for k, p in pieces.items()}, cores):
        both = (mine > 0) & (facing > 0)
        first.append(mine[both])
        second.append(facing[both])
    a = np.searchsorted(found, np.concatenate(first + [np.zeros(0, np.uint64)]))
    b = np.searchsorted(found, np.concatenate(second + [np.zeros(0, np.uint64)]))
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(len(found),) * 2)
    _, component = connected_components(graph, directed=False)
    opened = np.zeros(component.max() + 1, bool)
    opened[component[np.searchsorted(found, np.concatenate([p.open for p in pieces.values()]))]] = (
        True
    )
    return found[~opened[component]]


def label_block(
    probabilities,
    background,
    holes: np.ndarray,
    core: tuple[slice, slice],
    rules: InstanceRules,
    *,
    margin: int = 64,
    threshold: float = 0.5,
) -> np.ndarray:
    """Pass 2: the cells in ``core`` (rows, columns) of the image whose class
    probabilities ``probabilities`` (classes, H, W) holds, as labelling the whole image
    gives them, with ids that are the same in every block (uint64, 0 = background; one
    plus the flat index of each cell's first pixel). ``background`` (H, W) holds the
    background pieces of pass 1 and ``holes`` the ids of :func:`find_holes`; the three
    may be numpy, zarr or dask: only windows are read.

    The window starts ``margin`` px around the core and doubles its margin while a unit
    the core depends on touches its edge. Raises ``ValueError`` when it would
    grow past ``MAX_MARGIN`` px (or a block) beyond the core: cells touching over a larger
    area with no boundary to cut at (a two-class network's cells in confluent tissue).
    """
    height, width = probabilities.shape[-2:]
    block = max(s.stop - s.start for s in core)
    while True:
        window = tuple(
            slice(max(s.start - margin, 0), min(s.stop + margin, n))
            for s, n in zip(core, (height, width), strict=True)
        )
        p = np.asarray(probabilities[(slice(None), *window)], np.float32)
        pieces = np.asarray(background[window])
        foreground = (pieces == 0) | np.isin(pieces, holes)
        if _dependencies_whole(p, foreground, rules, core, window, (height, width)):
            break
        if margin >= max(block, MAX_MARGIN):
            raise ValueError(
                f"cells touch over more than {block + 2 * margin} px without a boundary "
                "between them, too far to label block by block; use a network with an "
                "outline class (it keeps touching cells apart)"
            )
        margin = min(2 * margin, max(block, MAX_MARGIN))
    labels = label_instances(
        cell_probability(p),
        outline_probability=p[2] if len(p) > 2 else None,
        threshold=threshold,
        foreground=foreground,
        **{**rules.labelling(), "join_enclosed": False},  # (passes 3 and 4: :mod:`.enclosed`)
    )
    return global_ids(labels, core, window, width)


def _dependencies_whole(p, foreground, rules: InstanceRules, core, window, image) -> bool:
    """Whether ``window`` holds whole every *unit* the labels of ``core`` depend on (see
    the module's description), none touching an edge of the window that is not the
    image's.

    For networks with an outline class, a unit is a piece of what the interior can become
    once mended (:func:`_mendable`). A pixel's label depends on the
    units within ``growth`` px of it (the seeds that grow over it, cut at necks as their
    whole piece says), and those on the units within ``2 growth`` px of them (the cells
    they compete with while growing, whose shapes decide which cells of a piece join
    again). For two-class networks a unit is a connected piece of the cell mask.
    """
    square = np.ones((3, 3), bool)
    edge = np.zeros(foreground.shape, bool)
    for side, at in zip(
        (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]),
        image_edges(window, image),
        strict=True,
    ):
        edge[side] = not at
    if len(p) < 3:
        units = ndi.label(foreground)[0]
        reach = 0
    else:
        units = ndi.label(_mendable(p, rules.interior_threshold) & foreground, square)[0]
        reach = rules.growth + 1
    near = np.zeros(foreground.shape, bool)
    near[
        tuple(
            slice(max(c.start - w.start - reach, 0), c.stop - w.start + reach)
            for c, w in zip(core, window, strict=True)
        )
    ] = True
    first = np.unique(units[near])
    needed = np.isin(units, first[first > 0])
    rings = [2 * reach]
    if rules.borders:  # (a cell's zone: the cells within 2 BORDER_REACH px, and theirs)
        rings += [2 * BORDER_REACH + reach, 2 * reach]
    for ring in rings:
        if ring:
            needed = ndi.binary_dilation(needed, square, iterations=ring)
            more = np.unique(units[needed])
            needed |= np.isin(units, more[more > 0])
    if reach and rules.dip > 0:  # (dips are found in the smoothed probability around them)
        needed = ndi.binary_dilation(needed, square, iterations=_smoothing_radius(DIP_SMOOTHING))
    if rules.borders:  # (the zones, and the smoothed background around them)
        reach_around = BORDER_REACH + _smoothing_radius(SMOOTHING)
        needed = ndi.binary_dilation(needed, square, iterations=reach_around)
    return not (needed & edge).any() and not (near & edge).any()


def _smoothing_radius(sigma: float) -> int:
    """px: how far a Gaussian of ``sigma`` px reaches (scipy's default truncation at 4
    sigma)."""
    return int(4.0 * sigma + 0.5)


def _mendable(p: np.ndarray, interior_threshold: float) -> np.ndarray:
    """The pixels the mended interior of :func:`~.instances.label_instances` can cover,
    at most: the interior, the background specks next to it that its 3 x 3 closing may
    fill (background likelier than outline, and below ``GAP_PROBABILITY``), and
    everything these enclose (the holes the mending fills). Contacts the network calls
    outline never join two pieces, so in confluent tissue the pieces stay cells, not one
    piece as large as the tissue."""
    cell = cell_probability(p)
    interior = cell - p[2] > interior_threshold
    background = 1 - cell
    speck = ~interior & (background > p[2]) & (background < GAP_PROBABILITY)
    near = ndi.binary_dilation(interior, np.ones((3, 3), bool))
    return with_holes_filled(interior | (near & speck))


def label_in_blocks(
    probabilities,
    block: int,
    rules: InstanceRules,
    *,
    threshold: float = 0.5,
    margin: int = 64,
    out=None,
):
    """Every pass, block after block, here: the cells of ``probabilities`` (classes, H,
    W) into ``out`` ((H, W) uint64, numpy or zarr; a new numpy array by default). The
    reference for :mod:`napari_unet.slides`, which runs the passes as tasks."""
    shape = tuple(probabilities.shape[-2:])
    cores = plan_blocks(shape, block)
    background = np.zeros(shape, np.uint64)
    pieces = {}
    for k, core in enumerate(cores):
        pieces[k] = background_block(probabilities, core, threshold=threshold)
        background[core] = pieces[k].ids
    holes = find_holes(pieces, cores)
    out = np.zeros(shape, np.uint64) if out is None else out
    for core in cores:
        out[core] = label_block(
            probabilities, background, holes, core, rules, margin=margin, threshold=threshold
        )
    if rules.join_enclosed:
        contacts = {k: block_contacts(out[core], core, shape) for k, core in enumerate(cores)}
        joined = find_enclosed(contacts, cores)
        for core in cores:
            out[core] = join_block(out[core], core, shape, joined)
    return out
