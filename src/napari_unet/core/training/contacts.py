"""Touching cells made from painted ones, so that sparse paint teaches contacts.

A user paints a few cells, and few of them touch another painted cell, so the network
rarely sees the contact between two cells with both sides annotated, and learns to merge
them. :func:`paste_neighbours` makes a copy of a training plane in which each painted cell
gets a neighbour: another painted cell (turned by a multiple of 90 degrees, maybe
mirrored, its contrast maybe lowered) put down beside it, where it covers no other
painted cell. The pasted cell is annotated like any painted cell, so the targets and
weights of the copy (outline class, border term) come from the same code as for real
paint. This is copy-paste augmentation (Ghiasi et al., CVPR 2021) aimed at contacts.
It is for roundish cells only: two rods end to end look like one dividing rod
(the shape policy, docs/decisions/2026-12-01-shape-policy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Cell", "cut_cells", "paste_neighbours"]

TRIES = 8  # directions tried per host cell before it is left without a neighbour
RING = 3  # px around a cell whose median is its local background


@dataclass(frozen=True)
class Cell:
    """One painted cell to paste: its pixels and where they are in its box."""

    image: np.ndarray  # (C, h, w) float32, the image in the cell's bounding box
    mask: np.ndarray  # (h, w) bool, the cell in that box
    background: np.ndarray  # (C,) the image's median on a ring around the cell
    noise: np.ndarray  # (C,) its standard deviation there (from the median absolute deviation)


def cut_cells(image: np.ndarray, labels: np.ndarray, values) -> list[Cell]:
    """The cells ``values`` of a (C, H, W) plane with (H, W) ``labels``, as :class:`Cell`."""
    boxes = ndi.find_objects(labels.astype(np.int64))
    height, width = labels.shape
    cells = []
    for value in values:
        box = boxes[int(value) - 1] if int(value) <= len(boxes) else None
        if box is None:
            continue
        rows, cols = box
        wide = (
            slice(max(rows.start - RING, 0), min(rows.stop + RING, height)),
            slice(max(cols.start - RING, 0), min(cols.stop + RING, width)),
        )
        cell = labels[wide] == value
        ring = ndi.binary_dilation(cell, iterations=RING) & ~cell
        around = image[(slice(None), *wide)][:, ring]
        background = np.median(around, axis=1)
        noise = 1.4826 * np.median(np.abs(around - background[:, None]), axis=1)
        cells.append(
            Cell(image[(slice(None), *box)].copy(), labels[box] == value, background, noise)
        )
    return cells


def paste_neighbours(
    image: np.ndarray,
    labels: np.ndarray,
    hosts,
    donors: list[Cell],
    rng: np.random.Generator,
    *,
    gap: tuple[int, int] = (0, 2),
    contrast: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """A copy of a plane in which the cells ``hosts`` each gain a touching neighbour.

    image: (C, H, W) float; labels: (H, W) int, > 1 for cells (any sparse convention in
    which 0 and 1 are not cells). For each host a donor is drawn, turned and mirrored at
    random, and moved out from the host's centre in a random direction to the first
    place where it keeps ``g`` px from the host (``g`` drawn from the integers in
    ``gap``; 0: the two touch; -1, -2: the donor overlaps the host's edge by 1 or 2 px,
    for contacts without a visible seam). It is pasted there (image pixels and a new
    label, also over the host's edge) if it stays inside the plane, covers no other cell
    and leaves most of the host; else other directions are tried. The donor's contrast
    to its local background is scaled by a factor drawn from ``contrast``, with noise
    added so that the noise level stays that of the background (dimmer copies of bright
    cells teach that dim cells are cells too). Returns new arrays.
    """
    image, labels = image.copy(), labels.copy()
    height, width = labels.shape
    next_value = int(labels.max()) + 1
    boxes = ndi.find_objects(labels.astype(np.int64))
    for host in hosts:
        box = boxes[int(host) - 1] if int(host) <= len(boxes) else None
        if box is None or not donors:
            continue
        rows, cols = np.nonzero(labels[box] == host)
        rows, cols = rows + box[0].start, cols + box[1].start
        donor = donors[rng.integers(len(donors))]
        turns, mirror = int(rng.integers(4)), bool(rng.integers(2))
        mask = np.rot90(donor.mask[:, ::-1] if mirror else donor.mask, turns)
        pixels = np.rot90(donor.image[:, :, ::-1] if mirror else donor.image, turns, axes=(1, 2))
        d_rows, d_cols = np.nonzero(mask)
        factor = rng.uniform(*contrast)
        background, noise = donor.background[:, None], donor.noise[:, None]
        values = background + factor * (pixels[:, d_rows, d_cols] - background)
        if factor != 1.0:  # the noise scaled down with the contrast: add it back
            spread = noise * np.sqrt(max(1.0 - factor**2, 0.0))
            values = values + spread * rng.standard_normal(values.shape)
        d_rows, d_cols = d_rows - d_rows.mean(), d_cols - d_cols.mean()
        keep = int(rng.integers(gap[0], gap[1] + 1))
        reach = (np.ptp(rows) + np.ptp(cols) + np.ptp(d_rows) + np.ptp(d_cols)) / 2 + 6
        for _ in range(TRIES):
            angle = rng.uniform(0.0, 2 * np.pi)
            step = np.array([np.sin(angle), np.cos(angle)])
            placed = _first_clear(rows, cols, d_rows, d_cols, step, keep, reach)
            if placed is None:
                continue
            r, c = placed
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            if not inside.all():
                continue
            covered = labels[r, c]
            on_host = int((covered == host).sum())
            if ((covered > 1) & (covered != host)).any() or 2 * on_host > len(rows):
                continue
            image[:, r, c] = values
            labels[r, c] = next_value
            next_value += 1
            break
    return image, labels


def _first_clear(rows, cols, d_rows, d_cols, step, keep, reach):
    """Pixels of the donor (offsets ``d_rows``, ``d_cols`` from its centre) moved from the
    host's centre along ``step`` to the first whole-pixel place where no donor pixel is
    within ``keep`` px (chessboard distance) of a host pixel (``keep`` < 0: none is
    more than ``-keep`` px inside the host); None if none within ``reach``."""
    margin = int(reach) + int(max(np.abs(d_rows).max(), np.abs(d_cols).max())) + abs(keep) + 2
    top, left = rows.min() - margin, cols.min() - margin
    near = np.zeros((np.ptp(rows) + 2 * margin + 1, np.ptp(cols) + 2 * margin + 1), bool)
    near[rows - top, cols - left] = True
    square = np.ones((3, 3), bool)
    if keep > 0:
        near = ndi.binary_dilation(near, square, iterations=keep)
    elif keep < 0:
        near = ndi.binary_erosion(near, square, iterations=-keep)
    centre = np.array([rows.mean(), cols.mean()])
    for distance in range(int(reach) + 1):
        offset = centre + distance * step
        r = np.round(d_rows + offset[0]).astype(np.int64)
        c = np.round(d_cols + offset[1]).astype(np.int64)
        if not near[r - top, c - left].any():
            return r, c
    return None
