"""Reading label images in the plugin's label convention, with errors a user can act on.

Sparse (as painted in napari): 0 = not annotated, ``background`` (1) = painted background,
every other value one cell. Dense (complete masks): 0 = background, every other value a cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from .config import LabelConfig

__all__ = ["Annotation", "check_labels", "looks_complete", "read_annotation", "separate_pieces"]

MIN_CELLS = 5  # cells needed to tell what a cell looks like


@dataclass(frozen=True)
class Annotation:
    """What a label image says, pixel by pixel (all arrays (H, W)).

    cells: int64 cell identities, 0 where there is no cell (values are the user's labels;
        see :func:`separate_pieces` for labels painted on several cells).
    annotated: bool, True where the pixel is known (cell or background).
    pieces: {label: separate pieces} for the labels that were split into several cells.
    """

    cells: np.ndarray
    annotated: np.ndarray
    pieces: dict[int, int] = field(default_factory=dict)


def check_labels(labels: np.ndarray, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a 2D label image and return it as an int64 array.

    Accepts integer and boolean arrays, and float arrays holding whole numbers (as some
    TIFF writers store masks). Raises ``ValueError`` naming the problem and the fix for
    other dimensions, fractional or negative values, and a shape different from
    ``image_shape`` (the image's last two axes).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"labels must be a 2D image (H, W); got shape {labels.shape}. For a stack, pass "
            "one plane at a time (labels[t])"
        )
    if image_shape is not None and tuple(image_shape[-2:]) != labels.shape:
        raise ValueError(
            f"the labels have shape {labels.shape} but the image is {tuple(image_shape[-2:])} "
            "(last two axes); paint the labels on a layer made for this image"
        )
    if labels.dtype == bool:
        return labels.astype(np.int64)
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise ValueError(
                "labels must be whole numbers; this label image holds fractions or NaN (is it "
                "an image layer rather than a labels layer?)"
            )
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers; got data type {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"labels must not be negative (found {labels.min()}); 0 = not annotated, "
            "1 = background, 2 and up = cells"
        )
    return labels.astype(np.int64, copy=False)


def read_annotation(
    labels: np.ndarray,
    config: LabelConfig | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> Annotation:
    """Split a label image into cells and annotated pixels by the label convention.

    Raises ``ValueError`` (see :func:`check_labels`) and, for sparse labels, when nothing
    is annotated at all.
    A label whose pixels form separate pieces is taken as that many cells
    (:func:`separate_pieces`; ``Annotation.pieces`` says which).
    """
    config = config or LabelConfig()
    labels = check_labels(labels, image_shape)
    if config.dense:
        cells, pieces = separate_pieces(labels)
        return Annotation(cells=cells, annotated=np.ones(labels.shape, bool), pieces=pieces)
    annotated = labels != 0
    if not annotated.any():
        raise ValueError(
            "nothing is annotated: paint some cells (each its own label, 2 and up) and some "
            f"background (label {config.background}); or, for complete masks where 0 is "
            "background, use dense labels"
        )
    cells, pieces = separate_pieces(np.where(labels == config.background, 0, labels))
    return Annotation(cells=cells, annotated=annotated, pieces=pieces)


def separate_pieces(cells: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Cells with every label that covers separate pieces split into one cell per piece.

    In napari the brush keeps its label until the next is chosen (M), so a user may paint
    several cells with one label; training on them as one cell teaches nothing
    (docs/decisions/2026-12-02-paint-warnings.md). Pieces are 8-connected; the first (in raster
    order) keeps the label, the others get new labels above the largest, in order, so the
    same paint gives the same cells. Cells that touch under one label stay one cell.
    Returns the cells (the input itself when nothing is split) and {label: pieces}.
    """
    split: dict[int, int] = {}
    out = cells
    largest = int(cells.max(initial=0))
    values, compact = None, cells
    if largest > cells.size:  # few, large label values: number them 1, 2, ... to find them
        values, compact = np.unique(np.append(cells.ravel(), 0), return_inverse=True)
        compact = compact[:-1].reshape(cells.shape)  # values[0] is 0
    new_label = largest + 1
    for index, box in enumerate(ndi.find_objects(compact)):
        label = index + 1
        if box is None:
            continue
        pieces, count = ndi.label(compact[box] == label, structure=np.ones((3, 3), bool))
        if count < 2:
            continue
        if out is cells:
            out = cells.copy()
        window = out[box]
        for piece in range(2, count + 1):
            window[pieces == piece] = new_label
            new_label += 1
        split[int(values[label]) if values is not None else label] = count
    return out, split


def looks_complete(labels: np.ndarray, background: int = 1) -> bool:
    """Whether sparse labels look like a complete mask (0 = background) read as sparse.

    In a complete mask ``background`` (1) is one more cell; painted background is strokes
    or large areas. So: the background value is one connected object, of 0.3-3 times the
    median area of the other (at least ``MIN_CELLS``) objects (at most 3 times where it
    touches the image edge: numbered in raster order, cell 1 is often cut by the edge)
    and 0.5-2 times their median thickness (the largest distance from an object's pixel
    to its edge; measured on up to 25 of them).
    """
    labels = np.asarray(labels)
    one = labels == background
    if not one.any() or ndi.label(one)[1] != 1:
        return False
    values, index = np.unique(labels, return_inverse=True)
    index = index.reshape(labels.shape)
    areas = np.bincount(index.ravel())
    cells = np.flatnonzero(values > background)
    own = int(np.searchsorted(values, background))
    boxes = ndi.find_objects(index + 1)
    on_edge = any(
        s.start == 0 or s.stop == n for s, n in zip(boxes[own], labels.shape, strict=True)
    )
    smallest = 0.0 if on_edge else 0.3
    if len(cells) < MIN_CELLS or not smallest <= areas[own] / np.median(areas[cells]) <= 3:
        return False

    def thickness(k: int) -> float:
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in boxes[k])
        return float(ndi.distance_transform_edt(index[grown] == k).max())

    typical = np.median([thickness(k) for k in cells[:: math.ceil(len(cells) / 25)]])
    return 0.5 <= thickness(own) / typical <= 2
