"""napari sample data: a synthetic image of touching cells with a few cells painted."""

from __future__ import annotations

import numpy as np

from .core.synthetic import touching_cells


def touching_cells_sample() -> list[tuple]:
    """An image of touching nuclei and a labels layer with 12 painted cells and
    background strokes (label 1), ready for training (2 of the 12 are held back to
    validate on). The same image every time."""
    sample = touching_cells((256, 256), rng=np.random.default_rng(2015), painted_cells=12)
    return [
        (sample.image, {"name": "touching cells"}, "image"),
        (sample.annotation, {"name": "painted cells"}, "labels"),
    ]
