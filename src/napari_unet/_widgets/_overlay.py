"""The live weight-map overlay: the loss weights of a labels layer, shown over the image
and recomputed after each brush stroke.

Strokes are debounced (the map is recomputed once painting pauses), the computation runs
in a worker thread, and the layers are updated on the GUI thread, so painting never lags.
Two image layers: "weight map" (w(x) of the paper's eq. 2; 0 where nothing is annotated)
and "gaps" (the pixels where painted cells touch: turned to background, or with outline
targets the contact outline).
"""

from __future__ import annotations

from collections.abc import Callable

import napari
import numpy as np
from napari.qt.threading import create_worker
from napari.utils.colormaps import Colormap
from qtpy.QtCore import QTimer

from ..core.config import LabelConfig, WeightMapConfig
from ..core.targets import targets_and_weights
from ._latest import LatestRequest

DEBOUNCE_MS = 250


def weight_maps(
    labels: np.ndarray, config: WeightMapConfig, label_config: LabelConfig, outlines: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (float32) and gaps (uint8) for (H, W) or (Z, H, W) labels; planes without
    any annotation (or that break the label rules) give zeros."""
    planes = labels[None] if labels.ndim == 2 else labels
    weights = np.zeros(planes.shape, np.float32)
    gaps = np.zeros(planes.shape, np.uint8)
    for z, plane in enumerate(planes):
        if not label_config.dense and not plane.any():
            continue
        try:
            targets = targets_and_weights(plane, config, label_config, outlines=outlines)
        except ValueError:
            continue
        weights[z], gaps[z] = targets.weight, targets.gaps
    return (weights[0], gaps[0]) if labels.ndim == 2 else (weights, gaps)


class WeightMapOverlay:
    """Shows and refreshes the weight map of one labels layer while it is on.

    settings: called on the GUI thread for the current (WeightMapConfig, LabelConfig,
        outlines) of the training widget.
    """

    def __init__(self, viewer: napari.viewer.Viewer, settings: Callable[[], tuple]) -> None:
        self._viewer = viewer
        self._settings = settings
        self._labels: napari.layers.Labels | None = None
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)
        self._latest = LatestRequest(self._start)
        self.weights_layer: napari.layers.Image | None = None
        self.gaps_layer: napari.layers.Image | None = None

    @property
    def active(self) -> bool:
        return self._labels is not None

    def show(self, labels: napari.layers.Labels) -> None:
        """Start showing the weight map of ``labels`` (stops following any other layer)."""
        self.hide()
        self._labels = labels
        labels.events.paint.connect(self.schedule)
        labels.events.data.connect(self.schedule)
        self.refresh()

    def hide(self) -> None:
        """Stop following the labels layer and remove the overlay layers."""
        if self._labels is not None:
            self._labels.events.paint.disconnect(self.schedule)
            self._labels.events.data.disconnect(self.schedule)
        self._labels = None
        self._timer.stop()
        for layer in (self.weights_layer, self.gaps_layer):
            if layer is not None and layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        self.weights_layer = self.gaps_layer = None

    def schedule(self, *_) -> None:
        """Recompute once painting pauses for DEBOUNCE_MS."""
        self._timer.start()

    def refresh(self) -> None:
        """Compute the maps in a worker (after the one computing, if any)."""
        self._latest()

    def _start(self, finished):
        if self._labels is None:
            return None
        labels = np.array(self._labels.data, copy=True)  # the worker never sees the layer
        config, label_config, outlines = self._settings()
        return create_worker(
            weight_maps,
            labels,
            config,
            label_config,
            outlines,
            _connect={"returned": self._apply, "finished": finished},
            _start_thread=True,
        )

    def _apply(self, maps: tuple[np.ndarray, np.ndarray]) -> None:
        if self._labels is None:
            return
        weights, gaps = maps
        source = self._labels
        name = source.name
        if self.weights_layer is None or self.weights_layer not in self._viewer.layers:
            self.weights_layer = self._viewer.add_image(
                weights,
                name=f"weight map ({name})",
                colormap="inferno",
                blending="additive",
                opacity=0.8,
                contrast_limits=_limits(weights),
                scale=source.scale,
                translate=source.translate,
            )
            self.weights_layer.colorbar.visible = True  # the scale of the weights
            self.gaps_layer = self._viewer.add_image(
                gaps,
                name=f"gaps ({name})",
                colormap=GAP_COLOURS,  # pure cyan over the weights (not added to them)
                blending="translucent",
                contrast_limits=(0, 1),
                scale=source.scale,
                translate=source.translate,
            )
            self._viewer.layers.selection.active = source  # keep painting on the labels
        else:
            self.weights_layer.data = weights
            self.weights_layer.contrast_limits = _limits(weights)
            self.gaps_layer.data = gaps


GAP_COLOURS = Colormap(
    [[0, 0, 0, 0], [0, 1, 1, 1]], controls=[0, 0.5, 1], name="gaps", interpolation="zero"
)


def _limits(weights: np.ndarray) -> tuple[float, float]:
    """Contrast limits that show class weights (about 1-3) and saturate only the border
    term's peaks."""
    return 0.0, max(float(weights.max()) / 2, 1.0)
