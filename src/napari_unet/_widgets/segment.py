"""The "Segment layer" dock widget: an image layer and a model file in, a Labels layer out."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    create_widget,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from ..core.events import PlaneDone, TilesDone
from ..core.segment import segment
from ..model_io import load_model


def segment_with_file(
    image: np.ndarray, model_path: Path, method: str = "components"
) -> Generator[TilesDone | PlaneDone, None, np.ndarray]:
    """Load the model at ``model_path`` and label the cells of ``image`` (2D or a stack)."""
    loaded = load_model(model_path)
    result = yield from segment(loaded.model, image, loaded.normalization, method=method)
    return result.labels


class SegmentWidget(Container):
    """Pick an image layer and a model file; Segment adds the cells as a new Labels layer.

    2D images and stacks ((Z, H, W) for a one-channel model; (C, H, W), (Z, C, H, W) for
    multichannel models), numpy, dask or multiscale (the highest resolution is
    segmented). The model runs in a worker thread, plane by plane and tile by tile; the
    progress bar follows the tiles and Cancel stops after the current batch. The new layer
    is added on the GUI thread when the worker returns. The image layer is never changed.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._image = create_widget(label="Image", annotation="napari.layers.Image")
        self._model_path = FileEdit(label="Model", mode="r", filter="*.safetensors")
        self._watershed = CheckBox(
            text="Split merged cells (watershed)",
            tooltip="Split cells the network left joined, by a distance-transform watershed",
        )
        self._run = PushButton(text="Segment")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(min=0, max=1, value=0, visible=False)
        self._status = Label(value="")
        self.extend(
            [
                self._image,
                self._model_path,
                self._watershed,
                self._run,
                self._cancel,
                self._progress,
                self._status,
            ]
        )
        self._run.changed.connect(self._start)
        self._cancel.changed.connect(self._stop)
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
        if layer.rgb:
            show_error(
                f"Segment layer: {layer.name!r} is an RGB image; split its channels "
                "(Layers > Data > Split RGB) and segment one, or use a 3-channel model."
            )
            return
        # the full resolution of a multiscale layer; dask or zarr data stay lazy and are
        # read tile by tile in the worker
        image = layer.data[0] if layer.multiscale else layer.data
        self._run.enabled = False
        self._cancel.enabled = True
        self._progress.value = 0
        self._progress.visible = True
        self._status.value = f"segmenting {layer.name} ..."
        # errored is connected here, so the worker reports errors instead of re-raising them
        self.worker = create_worker(
            segment_with_file,
            image,
            model_path,
            "watershed" if self._watershed.value else "components",
            _connect={
                "yielded": self._show_progress,
                "returned": lambda labels: self._add_labels(layer, labels),
                "errored": lambda error: show_error(f"Segment layer: {error}"),
                "aborted": lambda: show_info("Segment layer: cancelled"),
                "finished": self._finished,
            },
            _start_thread=True,
        )

    def _stop(self) -> None:
        if self.worker is not None:
            self.worker.quit()  # stops at the next batch boundary

    def _show_progress(self, event: TilesDone | PlaneDone) -> None:
        if isinstance(event, PlaneDone):
            if event.total > 1:
                self._status.value = f"plane {event.done} of {event.total} done"
            return
        self._progress.max = event.total
        self._progress.value = event.done

    def _add_labels(self, layer: napari.layers.Image, labels: np.ndarray) -> None:
        self._viewer.add_labels(
            labels, name=f"{layer.name} labels", scale=layer.scale, translate=layer.translate
        )
        show_info(f"Segment layer: {int(labels.max())} cells in {layer.name!r}")

    def _finished(self) -> None:
        self._run.enabled = True
        self._cancel.enabled = False
        self._progress.visible = False
        self._status.value = ""
        self.worker = None
