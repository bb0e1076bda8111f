"""Cells that tile the image, cut where a border between two parts of a cell is membrane.

Where a membrane has a gap, the interiors of the two cells on either side run into each
other through it and the rules make one cell of them. Around each cell, its *zone* (the
cell grown by ``BORDER_REACH`` px into the background, not into other cells' zones) is
cut into regions by a watershed of the smoothed background probability, seeded at the
maxima of the cell's own distance transform; then neighbouring regions are merged, the
pair whose common border looks least like background first, while that border's mean
background probability stays below ``MEMBRANE``. A gap of a few pixels leaves most of
the border between the two true cells on their membrane, so their regions stay apart
and the cell is cut in two; a dark organelle inside a cell leaves most of the border
between its regions in the cell, so they join again. It only cuts: every cell it makes
lies inside one of the rules' cells
(docs/decisions/2026-12-07-tiling-cells-cut-along-membranes.md).

Each cell is cut on its zone alone, so the result is local: block by block labelling
(:mod:`.blocks`) gives the cells of the whole image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import graph
from skimage.feature import peak_local_max
from skimage.measure import label
from skimage.segmentation import expand_labels, watershed

__all__ = ["BORDER_REACH", "MEMBRANE", "cut_along_membranes", "merged_regions"]

# px: how far into the background around a cell its borders are read (about half the
# width of the membrane between two cells)
BORDER_REACH = 4
# a border is membrane where its mean background probability is at least this: the
# class decision, not a tuned value
MEMBRANE = 0.5
SMOOTHING = 1.0  # px: the Gaussian that smooths the distance and the background
SEED_DISTANCE = 3  # px: the least distance between two seeds of one cell


def _merged_border(rag, merged, into, neighbour) -> dict:
    """The border of a region merged from ``merged`` and ``into`` with ``neighbour``: its
    length and mean, the length-weighted mean of the two borders it is made of."""
    none = {"weight": 0.0, "count": 0}
    a, b = rag[merged].get(neighbour, none), rag[into].get(neighbour, none)
    count = a["count"] + b["count"]
    return {"count": count, "weight": (a["count"] * a["weight"] + b["count"] * b["weight"]) / count}


def _regions(cell: np.ndarray, zone: np.ndarray, background, smooth_background) -> np.ndarray:
    """The regions of one ``zone`` (bool, a crop) after merging, numbered from 1 (0
    outside the zone); all one region where ``cell`` has one seed."""
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(cell), SMOOTHING)
    peaks = peak_local_max(
        distance, min_distance=SEED_DISTANCE, labels=cell.astype(np.int32), exclude_border=False
    )
    if len(peaks) < 2:
        return zone.astype(np.int64)
    markers = np.zeros(cell.shape, np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    regions = watershed(smooth_background, markers, mask=zone)
    return np.where(zone, merged_regions(regions, background, MEMBRANE) + 1, 0)


def merged_regions(regions: np.ndarray, background: np.ndarray, threshold: float) -> np.ndarray:
    """``regions`` (int, 0 = none) with neighbours merged, the pair whose common border
    looks least like background first, while that border's mean ``background``
    probability is below ``threshold``: one number per merged region, from 0 (skimage's
    ``merge_hierarchical``; where 0 is not a region, read the result only inside regions)."""
    rag = graph.rag_boundary(regions, np.asarray(background, np.float64))
    if rag.has_node(0):  # (not a region)
        rag.remove_node(0)
    return graph.merge_hierarchical(
        regions,
        rag,
        thresh=threshold,
        rag_copy=False,
        in_place_merge=True,
        merge_func=lambda *_: None,
        weight_func=_merged_border,
    )


def cut_along_membranes(labels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``labels`` (int, 0 = no cell) with each cell cut where its regions stay apart
    (see the module's description); ``background``: the background probability (H, W).
    Where a cell has two regions or more, each connected piece of the cell and one region
    is a cell. Returns int64 labels, the pieces of each cell numbered after those of the
    cells before it (1..n)."""
    labels = np.asarray(labels)
    background = np.asarray(background, np.float64)
    zones = expand_labels(labels, BORDER_REACH)
    smooth = ndi.gaussian_filter(background, SMOOTHING)
    cut = np.zeros(labels.shape, np.int64)
    made = 0
    for value, box in enumerate(ndi.find_objects(zones), start=1):
        if box is None:
            continue
        cell, zone = labels[box] == value, zones[box] == value
        regions = _regions(cell, zone, background[box], smooth[box])
        if regions.max() > 1:
            pieces, count = label(np.where(cell, regions, 0), connectivity=1, return_num=True)
        else:
            pieces, count = cell.astype(np.int64), 1
        cut[box][cell] = pieces[cell] + made
        made += count
    return cut
