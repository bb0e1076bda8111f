"""Preview augmentation: a few training tiles as the network sees them, laid out side by
side to the right of the image (2D layers: the viewer's dimensions stay as they were),
with their targets coloured by class and a legend."""

from __future__ import annotations

import napari
import numpy as np
from napari.utils.colormaps import DirectLabelColormap

GAP = 8  # px between tiles
TILES_NAME = "augmented tiles"
TARGETS_NAME = "augmented targets"
CLASSES = ("not painted (ignored)", "background", "cell", "outline / contact")
COLOURS = {  # shown class -> RGBA
    0: (0, 0, 0, 0),
    1: (0.25, 0.45, 1.0, 1.0),
    2: (0.2, 0.85, 0.3, 1.0),
    3: (1.0, 0.25, 0.6, 1.0),
    None: (0, 0, 0, 0),
}
LEGEND = "targets: blue = background, green = cell, pink = outline or contact, clear = not painted"


def montage(
    images: np.ndarray, targets: np.ndarray, weights: np.ndarray, columns: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """The tiles (first channel) in a grid ``columns`` wide, GAP px apart, and their
    shown classes on the same grid: 0 not painted (weight 0), 1 + the target class
    elsewhere; the targets cover each tile's output, centred."""
    count, _, size, _ = images.shape
    out = targets.shape[-1]
    margin = (size - out) // 2
    rows = -(-count // columns)
    step = size + GAP
    grid = np.zeros((rows * step - GAP, min(count, columns) * step - GAP), np.float32)
    classes = np.zeros(grid.shape, np.uint8)
    shown = np.where(weights > 0, targets.astype(np.uint8) + 1, 0)
    for index in range(count):
        top, left = (index // columns) * step, (index % columns) * step
        grid[top : top + size, left : left + size] = images[index, 0]
        top, left = top + margin, left + margin
        classes[top : top + out, left : left + out] = shown[index]
    return grid, classes


def show_augmented(
    viewer: napari.viewer.Viewer,
    beside: napari.layers.Layer,
    samples: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Show the tiles to the right of ``beside``, replacing an earlier preview."""
    grid, classes = montage(*samples)
    scale = np.asarray(beside.scale[-2:])
    extent = np.asarray(beside.data.shape[-2:]) * scale
    translate = np.asarray(beside.translate[-2:]) + [0, extent[1] + 4 * GAP * scale[1]]
    placed = {"scale": scale, "translate": translate}
    if TILES_NAME in viewer.layers and TARGETS_NAME in viewer.layers:
        viewer.layers[TILES_NAME].data = grid
        viewer.layers[TILES_NAME].contrast_limits = _limits(grid)
        viewer.layers[TARGETS_NAME].data = classes
    else:
        viewer.add_image(
            grid, name=TILES_NAME, colormap="gray", contrast_limits=_limits(grid), **placed
        )
        viewer.add_labels(
            classes,
            name=TARGETS_NAME,
            opacity=0.45,
            colormap=DirectLabelColormap(color_dict=COLOURS),
            features={"index": list(range(len(CLASSES))), "target": list(CLASSES)},
            **placed,
        )


def _limits(grid: np.ndarray) -> tuple[float, float]:
    low, high = float(grid.min()), float(grid.max())
    return low, max(high, low + 1e-3)
