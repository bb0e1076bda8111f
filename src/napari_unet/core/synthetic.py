"""Synthetic fluorescence images of touching cells, with ground truth and painted annotations.

Used by the sample data in napari, the demo, the tests and the benchmarks: realistic enough
to exercise everything (cells of different sizes and brightness that touch along straight
or curved borders, a dimmer line where two cells meet, blur and shot noise), small enough to
generate in milliseconds. Nothing here is random unless an ``rng`` is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line as draw_line
from skimage.segmentation import find_boundaries

__all__ = ["SyntheticCells", "touching_cells"]


@dataclass(frozen=True)
class SyntheticCells:
    """One synthetic image and what is known about it.

    image: (H, W) float32, arbitrary units (a camera-like offset plus signal and noise).
    truth: (H, W) int32 instance labels, 0 = background, 1..n one cell each (dense).
    annotation: (H, W) uint8 labels as a user paints them in napari: 0 = not annotated,
        1 = background strokes, 2.. = a few fully painted cells.
    """

    image: np.ndarray
    truth: np.ndarray
    annotation: np.ndarray


def touching_cells(
    shape: tuple[int, int] = (256, 256),
    *,
    rng: np.random.Generator,
    cell_radius: tuple[float, float] = (7.0, 13.0),
    coverage: float = 0.35,
    painted_cells: int = 8,
    background_strokes: int = 6,
) -> SyntheticCells:
    """Draw nuclei-like cells, many of them touching, and a sparse annotation of them.

    Cells are the Voronoi cells of random centres, each cut to a disc of random radius in
    ``cell_radius`` (pixels), so neighbours closer than the sum of their radii touch along a
    straight border. ``coverage`` is the fraction of the image covered by cells, roughly.
    ``painted_cells`` whole cells (chosen at random) and ``background_strokes`` straight
    strokes of background, kept 2 px away from any cell, form the annotation.
    """
    height, width = shape
    if height < 16 or width < 16:
        raise ValueError(f"shape {shape} is too small for synthetic cells; use at least 16 x 16")
    mean_area = np.pi * np.mean(cell_radius) ** 2
    n_cells = max(1, int(round(coverage * height * width / mean_area)))
    centres = rng.uniform((0, 0), (height, width), size=(n_cells, 2))
    radii = rng.uniform(*cell_radius, size=n_cells)

    # Nearest centre for every pixel (Voronoi), kept where it lies within that cell's radius.
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    distance = np.full(shape, np.inf, np.float32)
    owner = np.zeros(shape, np.int32)
    for index, (cy, cx) in enumerate(centres, start=1):
        d = np.hypot(yy - cy, xx - cx)
        closer = d < distance
        distance[closer] = d[closer]
        owner[closer] = index
    inside = distance <= radii[owner - 1]
    truth = np.where(inside, owner, 0)
    truth = _relabel_sequential(_drop_tiny(truth, min_pixels=12))

    image = _render(truth, rng)
    annotation = _annotate(truth, rng, painted_cells, background_strokes)
    return SyntheticCells(image=image, truth=truth.astype(np.int32), annotation=annotation)


def _drop_tiny(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel())
    small = sizes < min_pixels
    small[0] = False
    return np.where(small[labels], 0, labels)


def _relabel_sequential(labels: np.ndarray) -> np.ndarray:
    values = np.unique(labels)
    lookup = np.zeros(int(values.max()) + 1, np.int32)
    lookup[values] = np.arange(len(values), dtype=np.int32)  # 0 stays 0
    return lookup[labels]


def _render(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = int(truth.max())
    brightness = np.concatenate([[0.0], rng.uniform(0.5, 1.0, size=n)])
    signal = brightness[truth]
    # a dimmer line where two cells meet, as where two nuclei press against each other
    borders = find_boundaries(truth, mode="inner") & (truth > 0)
    signal = np.where(borders, 0.55 * signal, signal)
    texture = ndi.gaussian_filter(rng.normal(0.0, 1.0, truth.shape), 2.0)
    signal = signal * (1.0 + 0.5 * texture)
    signal = ndi.gaussian_filter(signal, 1.2)  # optics
    photons = rng.poisson(np.clip(signal, 0, None) * 200.0 + 20.0)  # shot noise
    return (photons + 100.0).astype(np.float32)  # camera offset


def _annotate(
    truth: np.ndarray, rng: np.random.Generator, painted_cells: int, strokes: int
) -> np.ndarray:
    annotation = np.zeros(truth.shape, np.uint8)
    cells = rng.permutation(np.arange(1, int(truth.max()) + 1))[:painted_cells]
    for value, cell in enumerate(cells, start=2):
        annotation[truth == cell] = value
    far_from_cells = ~ndi.binary_dilation(truth > 0, iterations=2)
    height, width = truth.shape
    for _ in range(strokes):
        r0, r1 = rng.integers(0, height, size=2)
        c0, c1 = rng.integers(0, width, size=2)
        rr, cc = draw_line(int(r0), int(c0), int(r1), int(c1))
        stroke = np.zeros(truth.shape, bool)
        stroke[rr, cc] = True
        stroke = ndi.binary_dilation(stroke, iterations=1) & far_from_cells & (annotation == 0)
        annotation[stroke] = 1
    return annotation
