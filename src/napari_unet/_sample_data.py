"""napari sample data: a synthetic image of touching cells with a few cells painted."""

from __future__ import annotations

import numpy as np

from .core.synthetic import SyntheticCells, touching_cells


def sample_cells() -> SyntheticCells:
    """The sample: an image of touching nuclei, their truth, and 12 painted cells with
    background strokes (label 1). The same every time."""
    return touching_cells((256, 256), rng=np.random.default_rng(2015), painted_cells=12)


def touching_cells_sample() -> list[tuple]:
    """The sample as napari layers: the image and a labels layer with 12 painted cells and
    background strokes, ready for training (2 of the 12 are held back to validate on)."""
    sample = sample_cells()
    return [
        (sample.image, {"name": "touching cells"}, "image"),
        (sample.annotation, {"name": "painted cells"}, "labels"),
    ]
