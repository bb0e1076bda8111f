"""From class probabilities to instance labels: one integer per cell."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import convex_hull_image, h_maxima
from skimage.segmentation import expand_labels

from . import enclosed
from .borders import cut_along_membranes
from .maxima import highest_saddles, root, significant_maxima
from .regions import flood, largest_per_label, sequential, with_holes_filled

__all__ = [
    "cell_probability",
    "label_instances",
    "labels_from_probabilities",
    "split_at_dips",
    "split_at_necks",
]

METHODS = ("components", "watershed")
# px a cell's interior is grown by (within the cell probability) to give the whole cell:
# networks trained on sparse paint put the interior edge about 2 px inside the cell
# (docs/decisions/2026-11-22-outline-class.md).
OUTLINE_GROWTH = 2
# px: a saddle must be at least this much thinner than both maxima: one pixel of the grid
# (less is pixel noise, not a neck; docs/decisions/2026-12-07-how-sensitive-the-constants-are.md).
NECK_DEPTH = 1.0
# Two cells cut apart at a neck join again when, grown to whole cells, they make a convex
# shape (area / convex hull area at least this): two touching cells leave a notch where
# they meet, a nucleus whose interior the network notched along its texture does not. The
# default of files without calibrated rules; training calibrates it on the painted cells
# (docs/decisions/2026-12-05-rules-from-the-paint.md).
NECK_SOLIDITY = 0.915
# px: two touching cells leave a notch at both ends of the line between them; a notch
# one pixel deep (1 or 1.41 px, straight or diagonal) is the pixel grid's, not a notch
# (docs/decisions/2026-12-07-necks-pinched-from-both-sides.md).
NOTCH_DEPTH = 1.5
# px: the interior probability is smoothed by a Gaussian of this sigma before its dips are
# found (pixel noise is not a dip; docs/decisions/2026-12-06-dips-for-cells-that-tile.md).
DIP_SMOOTHING = 1.0
# Background this sure is a real gap between cells, not a speck inside one (_mend_interior;
# docs/decisions/2026-11-22-outline-class.md).
GAP_PROBABILITY = 0.9


@dataclass(frozen=True)
class Basins:
    """A mask's distance transform split into basins around its maxima, and what
    :func:`merge_basins` needs to merge them again for any ratio: each basin's ``peak``
    (its largest distance), and each pair of touching basins (``pair`` = first x (count + 1)
    + second) with its ``saddle`` (the largest distance value on their common border)."""

    labels: np.ndarray
    peak: np.ndarray
    pair: np.ndarray
    saddle: np.ndarray


def neck_basins(mask: np.ndarray) -> Basins:
    """The basins of :func:`split_at_necks`, before any merging (the slow part, which does
    not depend on the ratio)."""
    distance = ndi.distance_transform_edt(mask)
    basins = flood(-distance, significant_maxima(distance, mask), mask)
    count = int(basins.max())
    peak = np.zeros(count + 1)
    if count:
        peak[1:] = largest_per_label(distance, basins, count)[1:]
    return Basins(basins, peak, *highest_saddles(basins, distance))


def merge_basins(basins: Basins, ratio: float) -> np.ndarray:
    """Int labels: neighbouring ``basins`` merged, widest contact first, unless their
    saddle is below ``ratio`` times the smaller of their two maxima and at least
    ``NECK_DEPTH`` px below it."""
    count = len(basins.peak) - 1
    if count < 2 or basins.pair.size == 0:
        return basins.labels
    peak = basins.peak.copy()
    parent = np.arange(count + 1)
    for k in np.argsort(-basins.saddle, kind="stable"):
        pair, height = basins.pair[k], basins.saddle[k]
        x, y = root(parent, int(pair // (count + 1))), root(parent, int(pair % (count + 1)))
        if x == y:
            continue
        smaller = min(peak[x], peak[y])
        if height > ratio * smaller or smaller - height < NECK_DEPTH:
            parent[y] = x
            peak[x] = max(peak[x], peak[y])
    lookup = np.array([root(parent, i) for i in range(count + 1)])
    return np.unique(lookup, return_inverse=True)[1][basins.labels]  # (roots numbered 1..n)


def split_at_necks(mask: np.ndarray, ratio: float) -> np.ndarray:
    """Label the regions of ``mask``, cutting a region in two where it has a neck.

    The distance transform of the mask is split into basins around its maxima (a
    watershed); then neighbouring basins are merged again, widest contact first, unless
    their saddle (the largest distance value on their common border) is below ``ratio``
    times the smaller of their two maxima and at least ``NECK_DEPTH`` px below it. A
    single round cell has one basin; an elongated one has several on a ridge, whose
    saddles are nearly as high as their maxima, so they merge back. Returns int labels.
    """
    return merge_basins(neck_basins(mask), ratio)


def split_at_dips(interior: np.ndarray, probability: np.ndarray, dip: float) -> np.ndarray:
    """Label the 4-connected regions of ``interior``, parting a region where its
    ``probability`` (smoothed by ``DIP_SMOOTHING`` px) has two maxima with a dip of at
    least ``dip`` between them: a watershed of the smoothed probability from its maxima of
    dynamic ``dip`` or more (``h_maxima``: maxima of equal height each count, whatever
    the dip between them), within each region; a region without such a maximum stays
    whole. Where a gap in the predicted membrane lets one cell's interior
    run into the next, the probability still dips there. Returns int labels."""
    regions, count = ndi.label(interior)
    if count == 0:
        return regions
    smooth = ndi.gaussian_filter(probability.astype(np.float64), DIP_SMOOTHING)
    smooth = np.where(interior, smooth, 0.0)
    cross = ndi.generate_binary_structure(2, 1)  # (maxima joined as the regions are)
    peaks, found = ndi.label(h_maxima(smooth, dip, footprint=cross).astype(bool) & interior)
    seeded = np.zeros(count + 1, bool)
    seeded[regions[peaks > 0]] = True
    lone = ~seeded[regions] & interior
    peaks[lone] = regions[lone] + found
    return sequential(flood(-smooth, peaks, interior))


def _keep_sure(seeds: np.ndarray, probability: np.ndarray, core: float) -> np.ndarray:
    """``seeds`` without the regions whose ``probability`` stays below ``core``."""
    count = int(seeds.max())
    if count == 0:
        return seeds
    sure = np.zeros(count + 1, bool)
    sure[1:] = largest_per_label(probability, seeds, count)[1:] >= core
    return np.where(sure[seeds], seeds, 0)


def _mend_interior(interior: np.ndarray, background: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """``interior`` with its background specks filled.

    Some networks let background win by a little at scattered pixels inside large
    textured nuclei (a dither), so their interiors fall into pieces. A speck is a pixel
    where background is likelier than outline (an outline pixel may mark a contact
    between cells and is kept); it becomes interior where the interior encloses it, or
    where a 3x3 closing of the interior covers it and background is not nearly sure there
    (``GAP_PROBABILITY``: a real gap between two cells).
    """
    speck = ~interior & (background > outline)
    closed = ndi.binary_closing(interior, np.ones((3, 3), bool))
    interior = interior | (closed & speck & (background < GAP_PROBABILITY))
    return interior | (with_holes_filled(interior) & speck)


def _join_convex(labels: np.ndarray, regions: np.ndarray, solidity_to_join: float) -> np.ndarray:
    """``labels`` with the touching pairs of cells cut from one interior (same label in
    ``regions``) joined where their union looks like one cell: convex
    (``solidity_to_join``), or notched at one end of the line between them only (a
    kidney-shaped nucleus cut across its waist; :func:`_notched_at_both_ends`). The most
    convex pair first, each cell joined once."""
    pairs = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        touching = (a != b) & (a > 0) & (b > 0)
        pairs.update(zip(a[touching].tolist(), b[touching].tolist(), strict=True))
    if not pairs:
        return labels
    region = np.zeros(int(labels.max()) + 1, np.int64)
    region[labels[regions > 0]] = regions[regions > 0]  # a cell's interior region
    boxes = ndi.find_objects(labels)
    edge = np.ones(labels.shape, bool)
    edge[1:-1, 1:-1] = False  # (the image's edge: a cell cut by it may have lost a notch)
    joined = []
    for a, b in {(min(p), max(p)) for p in pairs if region[p[0]] == region[p[1]]}:
        box = tuple(
            slice(min(p.start, q.start), max(p.stop, q.stop))
            for p, q in zip(boxes[a - 1], boxes[b - 1], strict=True)
        )
        first, second = labels[box] == a, labels[box] == b
        union = first | second
        hull = convex_hull_image(union)
        solidity = union.sum() / hull.sum()
        if solidity >= solidity_to_join or not _notched_at_both_ends(
            first, second, hull, edge[box]
        ):
            joined.append((solidity, a, b))
    lookup = np.arange(len(region))
    done: set[int] = set()
    for _, a, b in sorted(joined, reverse=True):
        if a not in done and b not in done:
            lookup[b] = a
            done.update((a, b))
    return lookup[labels]


def _notched_at_both_ends(
    first: np.ndarray, second: np.ndarray, hull: np.ndarray, edge: np.ndarray
) -> bool:
    """Whether the union of two touching cells (masks ``first`` and ``second``, its convex
    ``hull``) is notched at both ends of the line between them: two convex cells that
    touch leave a notch where their outlines meet, on either side; a kidney-shaped nucleus
    cut across its waist has its notch on one side only. A notch is a piece of the hull
    outside the union, next to the line and at least ``NOTCH_DEPTH`` px deep; an end of
    the line on the image's ``edge`` counts as notched (the edge may have cut it off)."""
    line = (first & ndi.binary_dilation(second)) | (second & ndi.binary_dilation(first))
    gaps, count = ndi.label(hull & ~(first | second), np.ones((3, 3), bool))
    if count == 0:  # (the union is convex: no notch, whatever the edge)
        return False
    depth = ndi.distance_transform_edt(np.pad(hull, 1))[1:-1, 1:-1]
    deep = largest_per_label(depth, gaps, count) >= NOTCH_DEPTH
    near = np.unique(gaps[ndi.binary_dilation(line, np.ones((3, 3), bool))])
    notches = int(deep[near[near > 0]].sum())
    return notches + bool((line & edge).any()) >= 2


def _outline_cells(
    foreground: np.ndarray,
    probability: np.ndarray,
    outline_probability: np.ndarray,
    rules: tuple[float, int, float, float, float, float],
    memo: dict,
) -> np.ndarray:
    """Cells of an outline network: the interiors above the interior threshold (specks
    mended), cut at necks or parted at dips, kept where sure, grown within the foreground.
    ``memo`` keeps the interiors, their basins and their parts at the last dip, of the
    last interior threshold (see label_instances)."""
    interior_threshold, growth, neck_ratio, core_threshold, join_solidity, dip = rules
    interior_probability = probability - outline_probability
    if memo.get("interior threshold") != interior_threshold:  # (what follows depends on it)
        interior = foreground & _mend_interior(
            interior_probability > interior_threshold, 1 - probability, outline_probability
        )
        memo["interior threshold"] = interior_threshold
        memo["interior"], memo["regions"], memo["basins"] = interior, ndi.label(interior)[0], None
        memo["dip"] = None
    if neck_ratio > 0 and memo["basins"] is None:
        memo["basins"] = neck_basins(memo["interior"])
    if dip > 0 and memo["dip"] != dip:
        memo["dip"], memo["parts"] = dip, split_at_dips(memo["interior"], interior_probability, dip)
    regions = memo["regions"]
    seeds = merge_basins(memo["basins"], neck_ratio) if neck_ratio > 0 else regions
    seeds = memo["parts"] if dip > 0 else seeds
    seeds = _keep_sure(seeds, interior_probability, core_threshold)
    labels = expand_labels(seeds, growth)
    labels[~foreground] = 0
    if neck_ratio > 0:
        labels = _join_convex(labels, regions, join_solidity)
    return sequential(labels)


def label_instances(
    cell_probability: np.ndarray,
    *,
    threshold: float = 0.5,
    min_size: int = 10,
    fill_holes: bool = True,
    method: str = "components",
    min_distance: int = 4,
    outline_probability: np.ndarray | None = None,
    neck_ratio: float = 0.0,
    core_threshold: float = 0.0,
    interior_threshold: float = 0.5,
    growth: int = OUTLINE_GROWTH,
    join_solidity: float = NECK_SOLIDITY,
    dip: float = 0.0,
    borders: bool = False,
    join_enclosed: bool = True,
    foreground: np.ndarray | None = None,
    memo: dict | None = None,
) -> np.ndarray:
    """Label the cells in a probability map.

    cell_probability: (H, W) floats in [0, 1]. Pixels above ``threshold`` are cell.
    outline_probability: (H, W), for networks with an outline class (three classes): the
        probability of a cell's outline, included in ``cell_probability``. Then each
        connected region where the interior (cell minus outline) is above
        ``interior_threshold``, background specks in it filled (``_mend_interior``), is a
        cell, grown by ``growth`` px (not into other cells, and only where the cell
        probability is above ``threshold``). ``method`` applies to two-class networks.
    neck_ratio: with ``outline_probability``, also cut interiors at necks: where an
        interior's distance transform has two maxima whose saddle is below
        ``neck_ratio`` x the smaller maximum (and at least ``NECK_DEPTH`` px below it),
        the interior is two cells (touching cells whose contact the network missed),
        unless the two grown cells together are convex (their solidity at least
        ``join_solidity``). 0 = off. Training calibrates it on the painted cells.
    dip: with ``outline_probability``, part interiors where the interior probability dips
        this much between two maxima (:func:`split_at_dips`); 0 = off; not with necks.
    borders: cut cells along membranes (:func:`~.borders.cut_along_membranes`).
    join_enclosed: what lies in a hole of a cell joins it, last (:mod:`.enclosed`).
    core_threshold: with ``outline_probability``, interiors (after cutting at necks)
        whose probability stays below this everywhere are dropped; 0 = off. Training
        sets it for networks with batch normalisation
        (:func:`~napari_unet.core.cells.rules.rules_for`).
    method: "components" (default): each 4-connected region is a cell, which is right when
        the network has learned the gaps between touching cells; "watershed": regions are
        further split by a watershed of their distance transform seeded at its maxima
        (at least ``min_distance`` px apart), for cells the network did not separate.
    fill_holes: holes inside a cell become part of it (without, they join it all the
        same with ``join_enclosed``, at the end).
    foreground: the cell mask (``cell_probability > threshold``, holes filled as
        ``fill_holes`` says) where the caller knows it better than this crop does: a
        block of a larger image, whose holes are holes of the whole image
        (:mod:`.blocks`).
    memo: a dict kept between calls on the *same* probabilities: the stages a moved rule
        does not change are kept in it and reused (Tune the cells).
    Cells smaller than ``min_size`` pixels are dropped. Returns (H, W) labels numbered
    1..n without gaps, 0 for background, uint16 or uint32 as n needs.
    """
    probability = np.asarray(cell_probability)
    _check_options(probability, method, neck_ratio, dip)
    memo = {} if memo is None else memo
    if foreground is None:
        foreground = _foreground(probability, threshold, fill_holes, memo)
    labels, count = ndi.label(foreground)
    if outline_probability is not None and count:
        labels = _outline_cells(
            foreground,
            probability,
            outline_probability,
            (interior_threshold, growth, neck_ratio, core_threshold, join_solidity, dip),
            memo,
        )
        count = int(labels.max())
    elif method == "watershed" and count:
        labels = _distance_watershed(foreground, labels, min_distance)
        count = int(labels.max())
    if borders and count:
        labels = _cut_once(labels, probability, memo)
        count = int(labels.max())
    return _finished(labels, count, min_size, join_enclosed)


def _finished(labels: np.ndarray, count: int, min_size: int, join_enclosed: bool) -> np.ndarray:
    """The last steps of :func:`label_instances`: small objects dropped, cells inside
    cells joined, the labels in the smallest dtype that holds them."""
    if count and min_size > 1:
        labels, count = _drop_small(labels, min_size)
    if join_enclosed and count:
        labels = enclosed.join_enclosed(labels)
        count = int(labels.max())
    dtype = np.uint16 if count < 2**16 else np.uint32
    return labels.astype(dtype)


def _cut_once(labels: np.ndarray, probability: np.ndarray, memo: dict) -> np.ndarray:
    """:func:`~.borders.cut_along_membranes` of ``labels``, kept in ``memo`` while the
    labels it cuts stay the same (a moved smallest-cell slider does not cut again)."""
    kept = memo.get("cut")
    if kept is None or not np.array_equal(kept[0], labels):
        memo["cut"] = (labels.copy(), cut_along_membranes(labels, 1.0 - probability))
    return memo["cut"][1]


def _distance_watershed(foreground: np.ndarray, regions: np.ndarray, min_distance: int):
    """``foreground`` split by a watershed of its distance transform, seeded at its maxima
    (at least ``min_distance`` px apart, within each of ``regions``)."""
    distance = ndi.distance_transform_edt(foreground)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=regions)
    markers = np.zeros(regions.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return flood(-distance, markers, foreground)


def _check_options(probability: np.ndarray, method: str, neck_ratio: float, dip: float) -> None:
    if probability.ndim != 2:
        raise ValueError(f"expected a 2D probability map; got shape {probability.shape}")
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not known; use one of {', '.join(METHODS)}")
    if neck_ratio > 0 and dip > 0:
        raise ValueError("interiors are cut at necks or parted at dips, not both")


def _foreground(probability: np.ndarray, threshold: float, fill_holes: bool, memo: dict):
    """The cell mask: ``probability`` above ``threshold``, holes filled if asked (kept in
    ``memo``)."""
    key = ("foreground", threshold, fill_holes)
    if key not in memo:
        mask = probability > threshold
        memo[key] = with_holes_filled(mask) if fill_holes else mask
    return memo[key]


def _drop_small(labels: np.ndarray, min_size: int) -> tuple[np.ndarray, int]:
    """``labels`` without the cells under ``min_size`` pixels, renumbered 1..n; and n."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    lookup = np.zeros(len(sizes), np.int64)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1)
    return lookup[labels], int(keep.sum())


def cell_probability(probabilities: np.ndarray) -> np.ndarray:
    """(H, W) probability of "cell" from (classes, H, W) class probabilities: class 1, plus
    the outline class 2 of three-class networks."""
    return probabilities[1:].sum(axis=0) if len(probabilities) > 2 else probabilities[1]


def labels_from_probabilities(probabilities: np.ndarray, **options) -> np.ndarray:
    """(H, W) instance labels from (classes, H, W) class probabilities of a two- or
    three-class network; ``options`` (threshold, method, and the fields of
    :class:`~napari_unet.core.config.InstanceRules`) go to
    :func:`~napari_unet.core.cells.instances.label_instances`."""
    return label_instances(
        cell_probability(probabilities),
        outline_probability=probabilities[2] if len(probabilities) > 2 else None,
        **options,
    )
