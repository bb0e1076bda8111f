"""The "Segment layer" dock widget: an image layer and a model (a file, or one trained in
this session) in, a Labels layer out."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    create_widget,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from ..bioimageio import ForeignModel, is_foreign_package, open_model
from ..core.cells.rules import InstanceRules
from ..core.events import PlaneDone, TilesDone
from ..core.segment import Segmentation, segment
from ._dock import ScrollingDock
from ._large import LiveLabels, StoreOpened, finished_labels, is_large, segment_large
from ._session import TrainedModel, session_models
from ._tune import KEEP_PIXELS, TunePanel, cell_summary

MODEL_FILE = "model file"


def segment_with_model(
    image: np.ndarray,
    source: Path | TrainedModel,
    method: str = "components",
    keep_probability: bool = False,
    run_its_code: bool = False,
    keep_classes: bool = False,
) -> Generator[TilesDone | PlaneDone, None, tuple[Segmentation, InstanceRules | None]]:
    """Label the cells of ``image`` (2D or a stack) with a model file, a bioimage.io
    package (``run_its_code``: see :func:`~napari_unet.bioimageio.open_bioimageio`) or a
    trained model; returns the segmentation and the rules it used (None for a foreign
    package, segmented by its own code). ``keep_classes``: keep the probabilities, to tune
    the cells after."""
    if not isinstance(source, TrainedModel):
        loaded = open_model(source, run_its_code=run_its_code)
        if isinstance(loaded, ForeignModel):  # through bioimageio.core's own prediction
            return (yield from loaded.segment(np.asarray(image))), None
        source = TrainedModel("", loaded.model, loaded.normalization, loaded.rules)
    result = yield from segment(
        source.model,
        image,
        source.normalization,
        method=method,
        rules=source.rules,
        keep_probability=keep_probability,
        keep_classes=keep_classes,
    )
    return result, source.rules


class SegmentWidget(ScrollingDock):
    """Pick an image layer and a model; Segment adds the cells as a new Labels layer.

    The model is a file or one trained with "Train U-Net" in this viewer (listed by name,
    newest selected when it arrives).

    2D images and stacks ((Z, H, W) for a one-channel model; (C, H, W), (Z, C, H, W) for
    multichannel models), numpy, dask or multiscale (the highest resolution is
    segmented). The model runs in a worker thread, plane by plane and tile by tile; the
    progress bar follows the planes and their tiles, and Cancel stops after the current
    batch. The new layer is added on the GUI thread when the worker returns. The image
    layer is never changed.

    A 2D image larger than :data:`~napari_unet.slides.BIG_IMAGE` px is labelled block by
    block into a zarr store in the cache folder (:mod:`._large`), shown as a Labels layer
    that fills as blocks finish; Cancel stops between blocks, and Segment again goes on
    from them.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._image = create_widget(label="Image", annotation="napari.layers.Image")
        self._session = session_models(viewer)
        self._source = ComboBox(
            label="Model",
            choices=self._model_choices,
            tooltip="A model file, or a model trained in this viewer (named by its images, "
            "steps, validation F1 and time)",
        )
        self._model_path = FileEdit(
            label="Model file",
            mode="r",
            filter="*.safetensors *.zip",
            tooltip="A model file (.safetensors), or a bioimage.io package (.zip): exported by "
            "napari-paint-unet, or from elsewhere (run through bioimageio.core)",
        )
        self._trust = CheckBox(
            text="Run this package's code",
            visible=False,
            tooltip="This bioimage.io model comes from elsewhere: segmenting with it runs "
            "the code it carries (its architecture or TorchScript). Tick only if you trust "
            "where it came from.",
        )
        self._probability = CheckBox(text="Add the cell probability as an image layer")
        self._watershed = CheckBox(
            text="Split merged cells (watershed)",
            tooltip="Split cells the network left joined, by a distance-transform watershed",
        )
        self._run = PushButton(
            text="Segment",
            tooltip="Label the cells of the image as a new Labels layer (in the background; "
            "the image layer is not changed)",
        )
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(min=0, max=1, value=0, visible=False)
        self._status = Label(value="")
        self._status.native.setWordWrap(True)
        self._outcome = ""
        self._planes = PlaneDone(done=0, total=1)  # (of the segmentation running)
        self._tiles = 1  # per plane
        self._tune = TunePanel(viewer, self._session)
        self.extend(
            [
                self._image,
                self._source,
                self._model_path,
                self._trust,
                self._watershed,
                self._probability,
                self._run,
                self._cancel,
                self._progress,
                self._status,
                self._tune,
            ]
        )
        self._run.changed.connect(self._start)
        self._cancel.changed.connect(self._stop)
        self._source.changed.connect(self._show_file_choices)
        self._model_path.changed.connect(self._show_file_choices)
        self._session.changed.connect(self._new_session_model)
        self.worker = None

    def _show_file_choices(self, _value=None) -> None:
        from_file = self._source.value == MODEL_FILE
        self._model_path.visible = from_file
        path = Path(self._model_path.value)
        foreign = from_file and path.is_file() and is_foreign_package(path)
        self._trust.visible = foreign
        self._trust.value = False  # the word is given for one package, once chosen

    def _model_choices(self, _widget=None) -> list[str]:
        return [MODEL_FILE] + [m.name for m in reversed(self._session.models)]

    def _new_session_model(self) -> None:
        self._source.reset_choices()
        if self._session.models:
            self._source.value = self._session.models[-1].name

    def _start(self) -> None:
        layer = self._image.value
        if layer is None:
            show_error("Segment layer: open an image first (no image layer is selected).")
            return
        if self._source.value == MODEL_FILE:
            source = Path(self._model_path.value)
            if not str(self._model_path.value).strip() or source.is_dir():
                show_error(
                    "Segment layer: choose a model file (.safetensors) or a bioimage.io "
                    "package (.zip) first, or a model trained in this viewer"
                )
                return
            if not source.is_file():
                show_error(f"Segment layer: there is no model file {source}")
                return
        else:
            source = self._session.get(self._source.value)
        # the full resolution of a multiscale layer; dask or zarr data stay lazy and are
        # read tile by tile in the worker
        image = layer.data[0] if layer.multiscale else layer.data
        if is_large(image):
            self._start_large(layer, image, source)
            return
        # errored is connected here, so the worker reports errors instead of re-raising them
        self.worker = self._busy(
            f"segmenting {layer.name} ...",
            segment_with_model,
            image,
            source,
            "watershed" if self._watershed.value else "components",
            self._probability.value,
            self._trust.value,
            np.prod(image.shape) <= KEEP_PIXELS,  # (kept to tune the cells after)
            _connect={
                "yielded": self._show_progress,
                "returned": lambda done: self._add_layers(layer, *done, source),
                "errored": self._on_error,
                "aborted": lambda: show_info("Segment layer: cancelled"),
                "finished": self._finished,
            },
        )

    def _busy(self, message: str, function, *arguments, _connect: dict):
        """Run ``function`` in a worker, the dock showing ``message`` and Cancel meanwhile."""
        self._run.enabled = False
        self._cancel.enabled = True
        self._progress.value = 0
        self._progress.visible = True
        self._planes = PlaneDone(done=0, total=1)  # (until the work says how many)
        self._tiles = 1  # per plane (until the first batch says)
        self._status.value = message
        return create_worker(function, *arguments, _connect=_connect, _start_thread=True)

    def _start_large(self, layer, image, source) -> None:
        """Block by block into a store in the cache folder, the labels shown as they come."""
        self.worker = self._busy(
            f"segmenting {layer.name} block by block ...",
            segment_large,
            image,
            source,
            layer.name,
            self._trust.value,
            _connect={
                "yielded": lambda event: self._show_block(layer, event),
                "returned": lambda result: self._large_done(layer, result),
                "errored": self._on_error,
                "aborted": lambda: show_info(
                    f"Segment layer: stopped; the blocks done are kept, and Segment goes on "
                    f"from them ({layer.name})"
                ),
                "finished": self._finished,
            },
        )

    def _show_block(self, layer, event) -> None:
        name = f"{layer.name} labels"
        if isinstance(event, StoreOpened):
            if name in self._viewer.layers:
                self._viewer.layers.remove(name)
            self._viewer.add_labels(
                LiveLabels(event.store),
                name=name,
                scale=layer.scale[-2:],
                translate=layer.translate[-2:],
                metadata={"napari_unet_store": str(event.store)},
            )
            return
        self._progress.max = event.total
        self._progress.value = event.done
        left = "" if event.seconds_left is None else f", about {event.seconds_left:.0f} s left"
        self._status.value = f"{event.phase}: {event.done} of {event.total} blocks{left}"
        if event.phase in ("cells", "joined") and name in self._viewer.layers:
            self._viewer.layers[name].refresh()

    def _large_done(self, layer, result) -> None:
        name = f"{layer.name} labels"
        if name in self._viewer.layers:  # the live layer gives way to the pyramid
            self._viewer.layers.remove(name)
        self._viewer.add_labels(
            finished_labels(result.store),
            name=name,
            multiscale=True,
            scale=layer.scale[-2:],
            translate=layer.translate[-2:],
            metadata={"napari_unet_store": str(result.store)},
        )
        show_info(
            f"Segment layer: {result.cells} cells in {layer.name!r}, stored in {result.store}"
        )

    def _on_error(self, error: Exception) -> None:
        show_error(f"Segment layer: {error}")
        self._outcome = f"not segmented: {error}"  # (the status line, once finished)

    def _stop(self) -> None:
        if self.worker is not None:
            self.worker.quit()  # stops at the next batch boundary

    def _show_progress(self, event: TilesDone | PlaneDone) -> None:
        """The bar follows the whole image: the planes done and the tiles of the plane
        being segmented (a stack's bar does not fill once per plane; a foreign package's,
        which says no tiles, moves plane by plane)."""
        tiles_done = 0
        if isinstance(event, PlaneDone):
            self._planes = event
            if 1 < event.total and event.done < event.total:
                self._status.value = f"segmenting plane {event.done + 1} of {event.total}"
        else:
            self._tiles, tiles_done = event.total, event.done
        self._progress.max = self._planes.total * self._tiles
        self._progress.value = self._planes.done * self._tiles + tiles_done

    def _add_layers(
        self,
        layer: napari.layers.Image,
        result: Segmentation,
        rules: InstanceRules | None,
        source: Path | TrainedModel,
    ) -> None:
        # a multichannel image's channel axis is not in the labels
        scale, translate = (
            layer.scale[-result.labels.ndim :],
            layer.translate[-result.labels.ndim :],
        )
        if result.cell_probability is not None:
            self._viewer.add_image(
                result.cell_probability,
                name=f"{layer.name} cell probability",
                colormap="magma",
                blending="additive",
                contrast_limits=(0.0, 1.0),
                scale=scale,
                translate=translate,
            )
        labels = self._viewer.add_labels(
            result.labels, name=f"{layer.name} labels", scale=scale, translate=translate
        )
        summary = cell_summary(result.labels)
        if not result.labels.any():
            summary += (
                ": nothing in this image passed the model's rules. If it has cells, ease "
                "the rules under 'Tune the cells' below (no retraining needed), or paint "
                "some of its cells and train on"
            )
        show_info(f"Segment layer: {summary} in {layer.name!r}")
        self._outcome = f"{layer.name}: {summary}"  # (the status line, once finished)
        if result.probabilities is not None and rules is not None:
            self._tune.attach(labels, result.probabilities, rules, source)
        else:
            self._tune.visible = False

    def _finished(self) -> None:
        self._run.enabled = True
        self._cancel.enabled = False
        self._progress.visible = False
        self._status.value, self._outcome = self._outcome, ""  # the whole message stays here
        self.worker = None
