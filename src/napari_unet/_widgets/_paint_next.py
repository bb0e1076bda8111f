""" "Paint here next": after training, where the model is unsure of its cells (its
predictions on the image and its mirror images make different cells, or its rules drop
what it calls cell) as an overlay, and the view moved to the most unsure window not yet
painted; each press goes on to the next such window. During training, with the live
prediction on, a press asks the training for the same map of the model as it is now, in
the part of the image in view (:meth:`PaintNext.show_live`)."""

from __future__ import annotations

from collections.abc import Callable

import napari
import numpy as np
from napari.qt.threading import create_worker

from ..core.images import colour_channels
from ..core.uncertainty import cell_disagreement, next_region, window_size
from ._viewer import camera_of, canvas_size


class PaintNext:
    """The unsure map of one trained model on the first pair's image (computed on
    the first press, in a worker) and the windows shown so far."""

    def __init__(self, viewer: napari.viewer.Viewer, say: Callable[[str], None]) -> None:
        self._viewer = viewer
        self._say = say  # the dock's status line
        self._model = None  # the training result (model and normalisation)
        self._map: np.ndarray | None = None
        self._key: tuple | None = None  # (image layer, plane) the map was made for
        self._shown: list[tuple[int, int]] = []
        self.layer: napari.layers.Image | None = None
        self.worker = None

    @property
    def has_model(self) -> bool:
        return self._model is not None

    def forget(self) -> None:
        """A new training starts: the overlay and the windows shown are no longer the
        newest model's (the overlay stays, empty, where the user put it; a press before
        the new model is ready maps the last one again)."""
        self._map, self._key, self._shown = None, None, []
        if self.layer is not None and self.layer in self._viewer.layers:
            self.layer.data = np.zeros_like(self.layer.data)

    def new_model(self, result) -> None:
        """A new training result: forget the old map and windows."""
        self._model, self._map, self._key, self._shown = result, None, None, []

    def press(self, image_layer: napari.layers.Image, labels_layer: napari.layers.Labels):
        """Show the next window to paint (computing the map first if needed)."""
        if self._model is None or self.worker is not None:
            return
        plane = int(self._viewer.dims.current_step[0]) if labels_layer.data.ndim == 3 else None
        key = (id(image_layer), plane)
        if self._map is not None and key == self._key:
            self._go(image_layer, labels_layer, plane)
            return
        image = np.asarray(image_layer.data if plane is None else image_layer.data[plane])
        image = colour_channels(image, self._model.model.config.in_channels)
        self._say("finding where the model is unsure (4 predictions of the image) ...")
        self.worker = create_worker(
            cell_disagreement,
            self._model.model,
            image,
            self._model.normalization,
            self._model.rules,
            _connect={
                "returned": lambda spread: self._ready(
                    spread, key, image_layer, labels_layer, plane
                ),
                "errored": lambda error: self._say(f"not found: {error}"),
                "finished": self._finished,
            },
            _start_thread=True,
        )

    def show_live(self, unsure: np.ndarray, window, image_layer, labels_layer) -> None:
        """Draw the unsure map of the training model in ``window`` of the overlay (the
        shape of a plane of ``labels_layer``, which stays the layer to paint in); the rest
        of the overlay is cleared when it comes from another model."""
        shape = tuple(labels_layer.data.shape[-2:])
        fresh = (
            self.layer is None
            or self.layer not in self._viewer.layers
            or self.layer.data.shape != shape
            or self._map is not None  # (the last map was another model's)
        )
        data = np.zeros(shape, np.float32) if fresh else self.layer.data
        data[window] = unsure
        self._map = None
        self._show(data, 1.0, image_layer, labels_layer)
        self._say(
            "bright: where the model, as it is now, is unsure of its cells in view "
            "(it makes them differently on mirrored images); paint cells there"
        )

    def _show(self, data: np.ndarray, high: float, image_layer, labels_layer) -> None:
        """``data`` in the overlay, from 0 to ``high`` (added over ``image_layer`` the first
        time, ``labels_layer`` staying the one to paint in)."""
        if self.layer is None or self.layer not in self._viewer.layers:
            self.layer = self._viewer.add_image(
                data,
                name=f"{image_layer.name} unsure",
                colormap="magma",
                blending="additive",
                opacity=0.6,
                contrast_limits=(0.0, high),
                scale=image_layer.scale[-2:],
                translate=image_layer.translate[-2:],
            )
            self._viewer.layers.selection.active = labels_layer
        else:
            self.layer.data = data
            self.layer.contrast_limits = (0.0, high)

    def _finished(self) -> None:
        self.worker = None

    def _ready(self, spread, key, image_layer, labels_layer, plane) -> None:
        self._map, self._key, self._shown = spread, key, []
        self._show(spread, max(float(spread.max()), 1e-3), image_layer, labels_layer)
        self._go(image_layer, labels_layer, plane)

    def _go(self, image_layer, labels_layer, plane) -> None:
        """Centre the view on the next window and paint there."""
        labels = np.asarray(labels_layer.data if plane is None else labels_layer.data[plane])
        size = window_size(labels)
        window = next_region(self._map, labels != 0, size, skip=self._shown)
        if window is None:
            self._say("every unsure part of the image is painted or was shown: train again")
            return
        centre = ((window[0].start + window[0].stop) // 2, (window[1].start + window[1].stop) // 2)
        self._shown.append(centre)
        scale = np.asarray(image_layer.scale[-2:])
        world = np.asarray(image_layer.translate[-2:]) + scale * np.asarray(centre)
        camera = camera_of(self._viewer)
        camera.center = tuple(world)
        canvas = min(canvas_size(self._viewer))
        camera.zoom = 0.8 * canvas / (size * float(scale.max()))  # the window fills the view
        self._viewer.layers.selection.active = labels_layer
        labels_layer.mode = "paint"
        self._say(
            f"paint the cells here (window {len(self._shown)}): of what is not painted, "
            "the model is least sure of its cells here; train again after"
        )
