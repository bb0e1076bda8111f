"""The "Train U-Net" dock widget: image and labels layers in, a trained model out.

Thin: it reads its widgets into a :class:`~napari_unet.core.config.TrainConfig`, starts
:func:`napari_unet.core.training.loop.train` in a worker thread and shows what it yields: the
progress bar, the loss curve, validation F1 and a live prediction of the visible part of
the image. Strokes painted while training runs are handed to the running training. The
trained model is offered to "Segment layer" at once and can be saved to one file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog

from ..bioimageio import open_for_training
from ..core.config import (
    PAPER_RECIPE,
    PRESETS,
    AugmentConfig,
    LabelConfig,
    TrainConfig,
    WeightMapConfig,
)
from ..core.events import (
    Checkpoint,
    LabelsIgnored,
    Preview,
    Status,
    TrainingStarted,
    TrainStep,
    Validation,
)
from ..core.images import colour_channels, pair_channels
from ..core.network.device import cpu_threads, pick_device
from ..core.training import TrainingControl, TrainResult, augmented_samples, describe, train
from ..model_io import save_trained
from ._augmented import LEGEND, show_augmented
from ._dock import ScrollingDock
from ._overlay import DEBOUNCE_MS, WeightMapOverlay
from ._paint_next import PaintNext
from ._plot import LossPlot
from ._session import TrainedModel, session_models
from ._viewer import camera_of

FINE_TUNE = "fine-tune a model file"
PREVIEW_SIZE = 512  # px: the largest preview window per axis
PROGRESS_STEPS = 1000  # the progress bar's resolution


def _training(pairs, config, init_path, device, control, threads):
    """Worker body: load the model to fine-tune (if any), then train (on ``threads`` CPU
    threads; 0: one per core)."""
    with cpu_threads(threads):
        init = open_for_training(init_path) if init_path is not None else None
        return (yield from train(pairs, config, start=init, device=device, control=control))


def preview_windows(corners: np.ndarray, shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Windows of at most PREVIEW_SIZE px a side that cover the view (``corners``: the
    first and last pixel in view, rows and columns) clipped to ``shape``, from the
    centre outwards; the image's first window when nothing of it is in view."""
    spans = []
    for axis in (0, 1):
        low, high = max(int(corners[0, axis]), 0), min(int(corners[1, axis]) + 1, shape[axis])
        if high <= low:
            low, high = 0, min(shape[axis], PREVIEW_SIZE)
        count = -(-(high - low) // PREVIEW_SIZE)
        edges = np.linspace(low, high, count + 1).round().astype(int)
        spans.append([slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    middle = np.array([(span[0].start + span[-1].stop) / 2 for span in spans])
    windows = [(rows, columns) for rows in spans[0] for columns in spans[1]]

    def distance(window: tuple[slice, slice]) -> float:
        centre = np.array([(w.start + w.stop) / 2 for w in window])
        return float(np.abs(centre - middle).sum())

    return sorted(windows, key=distance)


class TrainWidget(ScrollingDock):
    """Pick (image, labels) pairs, press Train; Stop keeps the best model; Save writes it."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._pairs = Container(layout="vertical", labels=False)
        self._convention = Label(
            value="Paint: 1 = background, 2, 3, ... = one cell each (0 = not painted)",
            tooltip="napari's first label is 1: paint background strokes with it, then "
            "press + (or M) for a new label before each cell",
        )
        self._convention.native.setWordWrap(True)
        self._add_pair_button = PushButton(text="Add image/labels pair")
        self._model = ComboBox(
            label="Model",
            choices=[f"new ({name})" for name in PRESETS] + [FINE_TUNE],
            tooltip="new (light): a small U-Net, quick on a CPU (the default); new (paper): "
            "the paper's network, for a GPU; fine-tune: go on from a model file",
        )
        self._model.value = "new (light)"
        self._init_path = FileEdit(
            label="Model file",
            mode="r",
            filter="*.safetensors *.zip",
            tooltip="A model file, or a bioimage.io package exported by napari-paint-unet",
        )
        self._init_path.visible = False
        budget = "Training stops after these minutes or steps, whichever comes first."
        self._minutes = FloatSpinBox(
            label="Minutes", value=TrainConfig.minutes, min=0.1, max=600.0, step=0.5, tooltip=budget
        )
        self._steps = SpinBox(
            label="Steps",
            value=TrainConfig.iterations,
            min=0,
            max=1_000_000,
            step=50,
            tooltip=f"{budget} 0 = no step limit.",
        )
        self._dense = CheckBox(
            text="Complete masks (0 = background)",
            tooltip="Off: 0 = not annotated, 1 = background, 2+ = cells (painted). "
            "On: every unlabelled pixel is background.",
        )
        self._dense.changed.connect(
            lambda dense: setattr(
                self._convention,
                "value",
                "Complete masks: 0 = background, every other value one cell"
                if dense
                else "Paint: 1 = background, 2, 3, ... = one cell each (0 = not painted)",
            )
        )
        devices = ["auto", "cpu"] + [d for d in ("cuda", "mps") if _available(d)]
        self._device = ComboBox(
            label="Device",
            choices=devices,
            value="auto",
            tooltip="auto: a CUDA GPU, else Apple's MPS, else the CPU",
        )
        self._show_weights = CheckBox(
            text="Show weight map of the labels",
            tooltip="Overlay how much each painted pixel counts in the loss: gaps between "
            "touching cells weigh most (up to w0); updated after every stroke",
        )
        self._weights_legend = Label(
            value="weight map: each painted pixel's weight in the loss (colour bar, top "
            "right); cyan: where touching cells meet, the gaps training keeps between "
            "them and weighs most; black: not painted (ignored)",
            visible=False,
        )
        self._weights_legend.native.setWordWrap(True)
        self._live_preview = CheckBox(
            text="Live prediction while training",
            value=True,
            tooltip="Show the model's cell probability for the part of the image in view, "
            "updated as it trains",
        )
        self._show_advanced = CheckBox(text="Advanced settings")
        self._w0 = FloatSpinBox(label="w0 (border weight)", value=10.0, min=0.0, max=100.0)
        self._sigma = FloatSpinBox(label="sigma (px)", value=5.0, min=0.5, max=50.0)
        self._elastic = CheckBox(text="Elastic deformation", value=True)
        self._learning_rate = FloatSpinBox(
            label="Learning rate", value=1e-3, min=1e-6, max=1.0, step=1e-4
        )
        self._tile = SpinBox(label="Tile size (0 = auto)", value=0, min=0, max=2048)
        self._threads = SpinBox(
            label="CPU threads (0 = all cores)",
            value=0,
            min=0,
            max=os.cpu_count() or 1,
            tooltip="Threads for training on the CPU. On a computer busy with other work, "
            "1 thread can be several times faster than all cores: torch's threads wait for "
            "each other, so one that lost its core holds up the rest",
        )
        self._two_classes = CheckBox(
            text="Paper's two classes (no outline class)",
            tooltip="The paper's recipe: cell/background with gap insertion. By default a "
            "third 'outline' class, copies of painted cells pasted next to painted cells "
            "and (for roundish cells) batch normalisation separate touching cells better "
            "from few painted cells",
        )
        self._advanced = Container(
            widgets=[
                self._w0,
                self._sigma,
                self._elastic,
                self._learning_rate,
                self._tile,
                self._threads,
                self._two_classes,
            ],
            visible=False,
        )
        self._augment_button = PushButton(
            text="Preview augmentation",
            tooltip="Add layers with a few training tiles as the network sees them "
            "(elastic deformation, flips, intensity changes) and their targets",
        )
        self._train_button = PushButton(
            text="Train",
            tooltip="Train on the painted cells in the background; Stop keeps the best model "
            "so far",
        )
        self._stop_button = PushButton(text="Stop", enabled=False)
        self._save_button = PushButton(text="Save model...", enabled=False)
        self._export_button = PushButton(
            text="Export to bioimage.io...",
            enabled=False,
            tooltip="Write the model as a bioimage.io package (.zip) that ilastik, "
            "deepImageJ, QuPath, Fiji and napari read",
        )
        self._paint_next_button = PushButton(
            text="Paint here next",
            enabled=False,
            tooltip="After training: show the cells the model is unsure of (its predictions "
            "on the image and on its mirror images make them differently, or its rules drop "
            "them) and move the view to the most unsure part not yet painted; paint the "
            "cells there and train again. Press again for the next part. During training, "
            "with Live prediction on: show where the model as it is now is unsure, in view",
        )
        self._progress = ProgressBar(min=0, max=PROGRESS_STEPS, value=0, visible=False)
        self._status = Label(value="")
        self._status.native.setWordWrap(True)
        self.extend(
            [
                self._pairs,
                self._convention,
                self._add_pair_button,
                self._model,
                self._init_path,
                self._minutes,
                self._steps,
                self._dense,
                self._device,
                self._show_weights,
                self._weights_legend,
                self._live_preview,
                self._show_advanced,
                self._advanced,
                self._augment_button,
                self._train_button,
                self._stop_button,
                self._progress,
                self._save_button,
                self._export_button,
                self._paint_next_button,
                self._status,
            ]
        )
        self.plot = LossPlot()
        self.controls.layout().addWidget(self.plot)
        self.add_pair()

        self.overlay = WeightMapOverlay(viewer, self._weight_settings)
        self._label_timer = QTimer()
        self._label_timer.setSingleShot(True)
        self._label_timer.setInterval(DEBOUNCE_MS)
        self._label_timer.timeout.connect(self._send_labels)
        self._watched: list[napari.layers.Labels] = []

        self._add_pair_button.changed.connect(self.add_pair)
        self._model.changed.connect(lambda v: setattr(self._init_path, "visible", v == FINE_TUNE))
        self._show_advanced.changed.connect(lambda v: setattr(self._advanced, "visible", v))
        self._show_weights.changed.connect(self._toggle_weights)
        for setting in (self._w0, self._sigma, self._dense, self._two_classes):
            setting.changed.connect(lambda *_: self.overlay.schedule())
        self._augment_button.changed.connect(self.preview_augmentation)
        self._train_button.changed.connect(self.start)
        self._stop_button.changed.connect(self.stop)
        self._save_button.changed.connect(self._ask_where_to_save)
        self._export_button.changed.connect(self._ask_where_to_export)
        self._paint_next = PaintNext(viewer, self._say)
        self._paint_next_button.changed.connect(self._show_where_to_paint)
        camera = camera_of(viewer)
        camera.events.center.connect(self._update_preview_window)
        camera.events.zoom.connect(self._update_preview_window)
        self._live_preview.changed.connect(self._update_preview_window)  # (mid-training too)
        self.native.destroyed.connect(lambda *_: self.shutdown())

        self.worker = None
        self.result: TrainResult | None = None
        self._control: TrainingControl | None = None
        self._preview_layer: napari.layers.Image | None = None
        self._preview_windows: list[tuple[int, tuple[slice, slice]]] = []
        self._closed = False

    # ------------------------------------------------------------------ pairs

    def add_pair(self) -> None:
        """Add a row to pick one more (image layer, labels layer) pair."""
        row = Container(  # (one above the other: side by side they widen the dock)
            layout="vertical",
            widgets=[
                create_widget(label="Image", annotation="napari.layers.Image"),
                create_widget(label="Labels", annotation="napari.layers.Labels"),
            ],
        )
        self._pairs.append(row)
        row.reset_choices()
        row[1].changed.connect(self._labels_changed)

    def pair_layers(self) -> list[tuple[napari.layers.Image, napari.layers.Labels]]:
        """The chosen (image, labels) layers, one per row that has both."""
        return [
            (row[0].value, row[1].value)
            for row in self._pairs
            if row[0].value is not None and row[1].value is not None
        ]

    def set_pair(self, index: int, image, labels) -> None:
        """Choose the layers of row ``index`` (adding rows as needed)."""
        while len(self._pairs) <= index:
            self.add_pair()
        self._pairs[index][0].value = image
        self._pairs[index][1].value = labels

    # ------------------------------------------------------------------ settings

    def _label_config(self) -> LabelConfig:
        return LabelConfig(dense=self._dense.value)

    def _weight_settings(self) -> tuple[WeightMapConfig, LabelConfig, bool]:
        config = WeightMapConfig(w0=self._w0.value, sigma=self._sigma.value)
        return config, self._label_config(), not self._two_classes.value

    def _train_config(self) -> TrainConfig:
        """Every setting of the dock, as one record (raises ``ValueError`` for bad ones)."""
        name = self._model.value
        weight_map, labels, _ = self._weight_settings()
        return TrainConfig(
            preset=name[len("new (") : -1] if name.startswith("new (") else "light",
            minutes=self._minutes.value,
            iterations=self._steps.value or None,
            learning_rate=self._learning_rate.value,
            tile_size=self._tile.value or None,
            seed=int(time.time()) % 2**31,
            labels=labels,
            weight_map=weight_map,
            augmentation=AugmentConfig(elastic=self._elastic.value),
            **(PAPER_RECIPE if self._two_classes.value else {}),
        )

    # ------------------------------------------------------------------ weight map

    def _toggle_weights(self, on: bool) -> None:
        self._weights_legend.visible = on
        if on:
            self._labels_changed()
        else:
            self.overlay.hide()

    def _labels_changed(self, *_) -> None:
        if not self._show_weights.value:
            return
        pairs = self.pair_layers()
        if pairs:
            self.overlay.show(pairs[0][1])
        else:
            self.overlay.hide()

    # ------------------------------------------------------------------ checks

    def _read_pairs(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Copies of the chosen layers' data, checked; None (after telling the user) if
        something is wrong. The user's layers are never changed."""
        pairs = self.pair_layers()
        if not pairs:
            show_error(
                "Train U-Net: choose an image layer and a labels layer (open an image, add a "
                "Labels layer and paint a few cells and some background)."
            )
            return None
        read = []
        for image_layer, labels_layer in pairs:
            image = image_layer.data[0] if image_layer.multiscale else image_layer.data
            if image_layer.rgb:  # colour axis last; a grey image saved in colour becomes grey
                image = colour_channels(image)
            try:
                pair_channels(image.shape, labels_layer.data.shape)
            except ValueError as error:
                show_error(f"Train U-Net: {image_layer.name!r} and {labels_layer.name!r}: {error}.")
                return None
            read.append((np.asarray(image), np.array(labels_layer.data, copy=True)))
        return read

    # ------------------------------------------------------------------ training

    def start(self) -> None:
        """Start training in a worker thread (does nothing while one runs)."""
        if self.worker is not None:
            return
        pairs = self._read_pairs()
        if pairs is None:
            return
        try:
            config = self._train_config()
            device = pick_device(self._device.value)
        except ValueError as error:
            show_error(f"Train U-Net: {error}")
            return
        init_path = None
        if self._model.value == FINE_TUNE:
            init_path = Path(self._init_path.value)
            if not init_path.is_file():
                show_error("Train U-Net: choose the model file to fine-tune.")
                return
        self._control = TrainingControl()
        self._image_names = [image.name for image, _ in self.pair_layers()]
        self._train_button.enabled = False
        self._stop_button.enabled = True
        self._save_button.enabled = False
        self._export_button.enabled = False
        self._paint_next_button.enabled = True  # (during training: the view, live)
        self._progress.max = 0  # busy until the first step: preparing has no known length
        self._progress.value = 0
        self._progress.visible = True
        self._status.value = "preparing the training data ..."
        self.plot.clear()
        self._watch_labels()
        self._fresh_preview()
        self._paint_next.forget()
        self._update_preview_window()
        self.worker = create_worker(
            _training,
            pairs,
            config,
            init_path,
            device,
            self._control,
            self._threads.value,
            _connect={
                "yielded": self._on_event,
                "returned": self._on_result,
                "errored": self._on_error,
                "finished": self._finished,
            },
            _start_thread=True,
        )

    def stop(self) -> None:
        """End training after the current step; the best model so far is kept."""
        if self._control is not None:
            self._control.stop()
            preparing = self._progress.max == 0
            self._status.value = (
                "stopping once the data is read (before the first step) ..."
                if preparing
                else "stopping after this step ..."
            )

    def shutdown(self) -> None:
        """Stop training and wait for the worker (the widget or the viewer is closing)."""
        self._closed = True
        if self._control is not None:
            self._control.stop()
        worker = self.worker
        if worker is not None:
            worker.quit()
            deadline = time.monotonic() + 30
            while worker.is_running and time.monotonic() < deadline:
                time.sleep(0.05)

    def _on_event(self, event) -> None:
        if self._closed:
            return
        if isinstance(event, Status):
            self._status.value = event.message + " ..."
        elif isinstance(event, TrainingStarted):
            self._progress.max = PROGRESS_STEPS
            self._status.value = event.summary()
            for warning in event.warnings:
                show_warning(f"Train U-Net: {warning}")
        elif isinstance(event, TrainStep):
            self._progress.value = int(PROGRESS_STEPS * event.progress)
            self.plot.add_loss(event.step, event.loss)
        elif isinstance(event, Validation):
            self.plot.add_f1(event.step, event.f1)
        elif isinstance(event, Checkpoint):
            pass  # the best model travels with the result
        elif isinstance(event, Preview):
            self._show_preview(event)
        elif isinstance(event, LabelsIgnored):
            show_warning(f"Train U-Net: new paint ignored: {event.reason}")

    def _on_result(self, result: TrainResult) -> None:
        if self._closed:
            return
        if result.steps == 0:  # stopped before its first step: nothing to offer
            self._status.value = "stopped before the first step: no model"
            show_info("Train U-Net: stopped before the first training step; no model was made.")
            return
        self.result = result
        self._paint_next.new_model(result)
        self._paint_next_button.enabled = True
        self._save_button.enabled = True  # (a model not ready can be saved to go on from)
        self._export_button.enabled = result.ready
        lines = describe(result)
        self._status.value = "\n".join(lines)
        if not result.ready:
            show_warning(f"Train U-Net: {'; '.join(lines)}.")
            return
        f1 = "" if result.best_f1 is None else f", F1 {result.best_f1:.2f}"
        name = (
            f"trained on {', '.join(self._image_names)} ({result.steps} steps{f1}, "
            f"{time.strftime('%H:%M:%S')})"
        )
        session_models(self._viewer).add(
            TrainedModel(name, result.model, result.normalization, result.rules)
        )
        show_info(f"Train U-Net: {'; '.join(lines)}. The model is ready in Segment layer.")

    def _on_error(self, error: Exception) -> None:
        if not self._closed:
            show_error(f"Train U-Net: {error}")
            # the whole message stays in the dock (napari's notice shows its start only)
            self._status.value = f"not trained: {error}"

    def _finished(self) -> None:
        self.worker = None
        self._control = None
        self._unwatch_labels()
        if self._closed:
            return
        self._train_button.enabled = True
        self._stop_button.enabled = False
        self._paint_next_button.enabled = self._paint_next.has_model
        self._progress.visible = False

    # ------------------------------------------------------------------ live updates

    def _watch_labels(self) -> None:
        self._watched = [labels for _, labels in self.pair_layers()]
        for labels in self._watched:
            labels.events.paint.connect(self._labels_painted)
            labels.events.data.connect(self._labels_painted)

    def _unwatch_labels(self) -> None:
        for labels in self._watched:
            labels.events.paint.disconnect(self._labels_painted)
            labels.events.data.disconnect(self._labels_painted)
        self._watched = []
        self._label_timer.stop()

    def _labels_painted(self, *_) -> None:
        self._label_timer.start()  # sent once painting pauses

    def _send_labels(self) -> None:
        if self._control is None:
            return
        for index, labels in enumerate(self._watched):
            self._control.update_labels(index, labels.data)

    def _update_preview_window(self, *_) -> None:
        """Set the preview windows: PREVIEW_SIZE squares that cover the part of the first
        image in view; the previews go round them, so a view larger than one window
        fills in over a few previews."""
        if self._control is None:
            return
        pairs = self.pair_layers()
        if not self._live_preview.value or not pairs:
            self._preview_windows = []
            self._control.set_preview_window(0, 0, None)
            return
        image_layer, labels_layer = pairs[0]
        plane = int(self._viewer.dims.current_step[0]) if labels_layer.data.ndim == 3 else 0
        windows = preview_windows(
            np.asarray(image_layer.corner_pixels)[:, -2:], labels_layer.data.shape[-2:]
        )
        if windows != [window for _, window in self._preview_windows]:
            self._preview_windows = [(plane, window) for window in windows]
            self._control.set_preview_window(0, plane, windows[0])

    def _next_preview_window(self, shown: tuple[slice, slice]) -> None:
        """After a preview of ``shown``, ask for the next window of the view."""
        windows = [window for _, window in self._preview_windows]
        if len(windows) > 1 and shown in windows:
            plane, window = self._preview_windows[(windows.index(shown) + 1) % len(windows)]
            self._control.set_preview_window(0, plane, window)

    def _show_preview(self, event: Preview) -> None:
        pairs = self.pair_layers()
        if not pairs or not self._live_preview.value:
            return
        image_layer, labels_layer = pairs[event.pair]
        shape = labels_layer.data.shape[-2:]
        layer = self._preview_layer
        if layer is None or layer not in self._viewer.layers or layer.data.shape != shape:
            layer = self._viewer.add_image(
                np.zeros(shape, np.float32),
                name=f"{image_layer.name} prediction",
                colormap="green",
                blending="additive",
                opacity=0.7,
                contrast_limits=(0.5, 1.0),  # green: more likely cell than not
                scale=image_layer.scale[-2:],
                translate=image_layer.translate[-2:],
            )
            self._preview_layer = layer
            self._viewer.layers.selection.active = labels_layer
        data = layer.data
        data[event.window] = event.probability
        layer.data = data
        if event.unsure is not None:
            self._paint_next.show_live(event.unsure, event.window, image_layer, labels_layer)
        if self._control is not None:
            self._next_preview_window(event.window)

    def _fresh_preview(self) -> None:
        """A new training starts with an empty, visible preview (the last training's
        prediction is not this model's; hiding it once is not hiding it for good)."""
        layer = self._preview_layer
        if layer is not None and layer in self._viewer.layers and self._live_preview.value:
            layer.data = np.zeros_like(layer.data)
            layer.visible = True
        self._preview_windows = []

    def _say(self, message: str) -> None:
        self._status.value = message

    def _show_where_to_paint(self) -> None:
        pairs = self.pair_layers()
        if not pairs:
            show_error("Train U-Net: choose an image and its labels layer first.")
            return
        if self.worker is not None and self._control is not None:  # training: the view
            if not self._live_preview.value:
                self._say("turn on Live prediction to see where the training model is unsure")
                return
            self._control.ask_unsure(max(len(self._preview_windows), 1))
            self._say("finding where the model is unsure in view (4 predictions) ...")
            return
        self._paint_next.press(*pairs[0])

    # ------------------------------------------------------------------ augmentation, saving

    def preview_augmentation(self) -> None:
        """Show a few deformed training tiles (image and targets) as new layers."""
        pairs = self._read_pairs()
        if pairs is None:
            return
        try:
            config = self._train_config()
        except ValueError as error:
            show_error(f"Train U-Net: {error}")
            return
        create_worker(
            augmented_samples,  # the tiles training draws with these settings
            pairs,
            config,
            _connect={
                "returned": self._show_augmented,
                "errored": lambda error: show_error(f"Train U-Net: {error}"),
            },
            _start_thread=True,
        )

    def _show_augmented(self, samples: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        pairs = self.pair_layers()
        if self._closed or not pairs:
            return
        show_augmented(self._viewer, pairs[0][0], samples)
        self._viewer.layers.selection.active = pairs[0][1]  # painting goes on there
        self._status.value = f"augmented tiles, right of the image; {LEGEND}"

    def _ask_where_to_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save model", "model.safetensors", "napari-unet model (*.safetensors)"
        )
        if path:
            self.save(path)

    def save(self, path: str | Path) -> Path | None:
        """Write the trained model to ``path`` (one .safetensors file)."""
        if self.result is None:
            show_error("Train U-Net: there is no trained model to save yet.")
            return None
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        try:
            written = save_trained(path, self.result, images=self._image_names)
        except (OSError, ValueError) as error:
            show_error(f"Train U-Net: could not save {path}: {error}")
            return None
        show_info(f"Train U-Net: model saved to {written}")
        return written

    def _ask_where_to_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.native, "Export to bioimage.io", "model.zip", "bioimage.io package (*.zip)"
        )
        if path:
            self.export(path)

    def export(self, path: str | Path):
        """Write the trained model as a bioimage.io package (.zip) in a worker thread, its
        test input cropped from the first training image; returns the worker."""
        if self.result is None:
            show_error("Train U-Net: there is no trained model to export yet.")
            return None
        path = Path(path)
        if path.suffix.lower() != ".zip":
            path = path.with_name(path.name + ".zip")
        pairs = self.pair_layers()
        image = np.asarray(pairs[0][0].data) if pairs and not pairs[0][0].rgb else None
        self._export_button.enabled = False
        return create_worker(
            _export,
            self.result,
            self._image_names,
            path,
            image,
            _connect={
                "returned": lambda out: show_info(f"Train U-Net: exported {out}"),
                "errored": lambda error: show_error(f"Train U-Net: could not export: {error}"),
                "finished": lambda: setattr(self._export_button, "enabled", True),
            },
            _start_thread=True,
        )


def _export(result: TrainResult, images: list[str], path: Path, image) -> Path:
    """Worker body: the model file, then the package (bioimageio.spec's checks included)."""
    import tempfile

    from ..bioimageio import export_bioimageio

    with tempfile.TemporaryDirectory() as folder:
        model = save_trained(Path(folder) / f"{path.stem}.safetensors", result, images=images)
        plane = image if image is None or image.ndim == 2 else None  # (2D test input only)
        return export_bioimageio(model, path, test_image=plane)


def _available(device: str) -> bool:
    try:
        pick_device(device)
    except ValueError:
        return False
    return True
