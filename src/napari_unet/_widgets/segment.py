"""The "Segment layer" dock widget: an image layer and a model file in, a Labels layer out."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import Container, FileEdit, Label, ProgressBar, PushButton, create_widget
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from ..core.instances import label_instances
from ..core.predict import predict_image
from ..model_io import load_model


def segment(image: np.ndarray, model_path: Path) -> np.ndarray:
    """Load the model at ``model_path`` and label the cells of a 2D ``image``."""
    loaded = load_model(model_path)
    probabilities = predict_image(loaded.model, image, loaded.normalization)
    return label_instances(probabilities[1])


class SegmentWidget(Container):
    """Pick an image layer and a model file; Segment adds the cells as a new Labels layer.

    The model runs in a worker thread; the viewer stays responsive and the new layer is
    added on the GUI thread when the worker returns. The image layer is never changed.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._image = create_widget(label="Image", annotation="napari.layers.Image")
        self._model_path = FileEdit(label="Model", mode="r", filter="*.safetensors")
        self._run = PushButton(text="Segment")
        self._progress = ProgressBar(min=0, max=0, visible=False)  # busy indicator
        self._status = Label(value="")
        self.extend([self._image, self._model_path, self._run, self._progress, self._status])
        self._run.changed.connect(self._start)
        self.worker = None

    def _start(self) -> None:
        layer = self._image.value
        model_path = Path(self._model_path.value)
        if layer is None:
            show_error("Segment layer: open an image first (no image layer is selected).")
            return
        if not model_path.is_file():
            show_error(f"Segment layer: choose a model file (.safetensors); {model_path} is none.")
            return
        if layer.rgb or layer.ndim != 2:
            show_error(
                f"Segment layer: {layer.name!r} has shape {layer.data.shape}; this version "
                "segments 2D single-channel images."
            )
            return
        image = np.asarray(layer.data)
        self._run.enabled = False
        self._progress.visible = True
        self._status.value = f"segmenting {layer.name} ..."
        # errored is connected here, so the worker reports errors instead of re-raising them
        self.worker = create_worker(
            segment,
            image,
            model_path,
            _connect={
                "returned": lambda labels: self._add_labels(layer, labels),
                "errored": lambda error: show_error(f"Segment layer: {error}"),
                "finished": self._finished,
            },
            _start_thread=True,
        )

    def _add_labels(self, layer: napari.layers.Image, labels: np.ndarray) -> None:
        self._viewer.add_labels(
            labels, name=f"{layer.name} labels", scale=layer.scale, translate=layer.translate
        )
        show_info(f"Segment layer: {int(labels.max())} cells in {layer.name!r}")

    def _finished(self) -> None:
        self._run.enabled = True
        self._progress.visible = False
        self._status.value = ""
