"""Tune the cells without retraining: after Segment, sliders for the model's instance
rules redraw the labels from the kept probabilities (the network does not run again);
the chosen values can be kept in the model (its file, or the session's trained model)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    Container,
    FloatSlider,
    Label,
    PushButton,
    SpinBox,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer

from ..core.cells.rules import InstanceRules
from ..core.segment import Probabilities, relabel
from ..model_io import store_rules
from ._latest import LatestRequest
from ._session import SessionModels, TrainedModel

REDRAW_DELAY_MS = 150  # after the last slider move
KEEP_PIXELS = 64 * 2**20  # image px up to which Segment keeps the probabilities to tune


def cell_summary(labels: np.ndarray) -> str:
    """How many cells and how large (median and the 10-90 % range of their areas)."""
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    if not len(areas):
        return "0 cells"
    low, middle, high = np.percentile(areas, [10, 50, 90]).round().astype(int)
    return f"{len(areas)} cells; area median {middle} px (10-90 %: {low}-{high} px)"


class TunePanel(Container):
    """The sliders, shown once a segmentation with our model is on screen."""

    def __init__(self, viewer: napari.viewer.Viewer, session: SessionModels) -> None:
        self._viewer = viewer
        self._session = session
        self._min_size = SpinBox(
            label="Smallest cell (px)",
            min=0,
            max=1_000_000,
            tooltip="Objects with fewer pixels are dropped as fragments",
        )
        self._neck = FloatSlider(
            label="Cut at necks",
            min=0.0,
            max=0.95,
            step=0.05,
            tooltip="Cut a cell in two where it narrows to this fraction of its width; "
            "higher cuts more eagerly, 0 never cuts",
        )
        self._join = FloatSlider(
            label="Rejoin pieces if convex",
            min=0.5,
            max=1.0,
            step=0.001,
            tooltip="Two pieces cut at a neck become one cell again where together they "
            "fill this share of their convex hull or more (training sets it from the "
            "painted cells); higher keeps more touching cells apart, 1 rejoins only cuts "
            "notched on one side",
        )
        self._dip = FloatSlider(
            label="Part at dips",
            min=0.0,
            max=0.9,
            step=0.05,
            tooltip="Part a cell where its core probability dips this much between two "
            "peaks (cells that tile the image, run together through a gap in their "
            "membrane); lower parts more eagerly, 0 never parts. Not with cutting at necks",
        )
        self._borders = CheckBox(
            text="Cut along membranes",
            tooltip="Cut a cell where the border between two of its parts is membrane "
            "(cells that tile the image, run together through a gap in their membrane)",
        )
        self._enclosed = CheckBox(
            text="Join cells inside cells",
            tooltip="A cell lying inside another cell (an organelle the network outlined) "
            "becomes part of it",
        )
        self._interior = FloatSlider(
            label="Core probability",
            min=0.1,
            max=0.9,
            step=0.05,
            tooltip="A pixel is part of a cell's core above this interior probability; "
            "higher keeps touching cells apart, lower joins weak cells",
        )
        self._core = FloatSlider(
            label="Core must reach",
            min=0.0,
            max=0.99,
            step=0.01,
            tooltip="A core is a cell only if its interior probability reaches this "
            "somewhere; higher drops doubtful cells, 0 keeps every core",
        )
        self._growth = SpinBox(
            label="Grow cores by (px)",
            min=0,
            max=10,
            tooltip="Cores are grown by this many pixels into the cell outline",
        )
        self._reset = PushButton(text="Back to the model's values")
        self._keep = PushButton(
            text="Keep in the model",
            tooltip="Store these values in the model (its file, or the model trained in "
            "this viewer), so that Segment and the command line use them",
        )
        self._status = Label(value="")
        self._status.native.setWordWrap(True)
        super().__init__(
            widgets=[
                _wrapped(Label(value="Tune the cells (the network does not run again)")),
                *self._controls,
                Container(layout="horizontal", widgets=[self._reset, self._keep], labels=False),
                self._status,
            ],
            visible=False,
        )
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_DELAY_MS)
        self._timer.timeout.connect(self.redraw)
        for slider in self._controls:
            slider.changed.connect(self._moved)
        # (one way to part a core: moving one above 0 sets the other to 0)
        self._neck.changed.connect(lambda value: self._one_way(value, self._dip))
        self._dip.changed.connect(lambda value: self._one_way(value, self._neck))
        self._reset.changed.connect(lambda *_: self._show_rules(self._model_rules, redraw=True))
        self._keep.changed.connect(lambda *_: self.keep())
        self._kept: Probabilities | None = None
        self._layer: napari.layers.Labels | None = None
        self._written: int | None = None  # fingerprint of the labels written last
        self._model_rules = InstanceRules()
        self._source: Path | TrainedModel | None = None
        self._latest = LatestRequest(self._start)
        self._setting = False
        self._note = ""  # said once, with the next redraw

    def _moved(self, *_) -> None:
        if not self._setting:
            self._timer.start()

    def _one_way(self, value: float, other: FloatSlider) -> None:
        if value > 0 and other.value > 0:
            other.value = 0.0
            self._note = f"{other.label} set to 0: cores are cut at necks or parted at dips"

    @property
    def _controls(self):
        return (
            self._min_size,
            self._enclosed,
            self._neck,
            self._join,
            self._dip,
            self._borders,
            self._interior,
            self._core,
            self._growth,
        )

    def attach(
        self,
        layer: napari.layers.Labels,
        kept: Probabilities,
        rules: InstanceRules,
        source: Path | TrainedModel,
    ) -> None:
        """Tune the labels of ``layer`` (just made from ``kept`` with ``rules``)."""
        self._layer, self._kept, self._source = layer, kept, source
        self._model_rules = rules
        self._written = _fingerprint(layer.data)
        outline = kept.planes[0].shape[0] > 2  # the other rules need the outline class
        for slider in self._controls[2:]:
            slider.visible = outline
        self._show_rules(rules)
        self._status.value = cell_summary(np.asarray(layer.data))
        self.visible = True

    def rules(self) -> InstanceRules:
        """The rules the sliders show (``flips`` as the model's: it is how the kept
        probabilities were predicted)."""
        return dataclasses.replace(
            self._model_rules,
            min_size=int(self._min_size.value),
            neck_ratio=round(float(self._neck.value), 3),
            join_solidity=round(float(self._join.value), 3),
            dip=round(float(self._dip.value), 3),
            borders=bool(self._borders.value),
            interior_threshold=round(float(self._interior.value), 3),
            core_threshold=round(float(self._core.value), 3),
            growth=int(self._growth.value),
            join_enclosed=bool(self._enclosed.value),
        )

    def _show_rules(self, rules: InstanceRules, redraw: bool = False) -> None:
        self._setting = True
        try:
            self._min_size.value = rules.min_size
            self._neck.value = rules.neck_ratio
            self._join.min = min(self._join.min, rules.join_solidity)  # (any stored value)
            self._join.value = rules.join_solidity
            self._dip.value = rules.dip
            self._borders.value = rules.borders
            self._interior.value = rules.interior_threshold
            self._core.value = rules.core_threshold
            self._growth.value = rules.growth
            self._enclosed.value = rules.join_enclosed
        finally:
            self._setting = False
        if redraw:
            self._timer.start()

    def redraw(self) -> None:
        """Label the kept probabilities with the sliders' rules, in a worker (after the
        one redrawing, if any)."""
        self._latest()

    @property
    def busy(self) -> bool:
        return self._latest.worker is not None

    def _start(self, finished):
        if self._kept is None:
            return None
        self._status.value = "redrawing ..."
        started = time.perf_counter()
        return create_worker(
            relabel,
            self._kept,
            self.rules(),
            _connect={
                "returned": lambda labels: self._apply(labels, time.perf_counter() - started),
                "errored": lambda error: show_error(f"Segment layer: {error}"),
                "finished": finished,
            },
            _start_thread=True,
        )

    def _apply(self, labels: np.ndarray, seconds: float) -> None:
        layer = self._layer
        if layer is None or layer not in self._viewer.layers:
            self._status.value = "the labels layer is gone: Segment again to tune"
            self._kept = None
            return
        if _fingerprint(layer.data) != self._written:  # edited by hand: not overwritten
            layer = self._viewer.add_labels(
                labels,
                name=f"{layer.name} (tuned)",
                scale=layer.scale,
                translate=layer.translate,
            )
            self._layer = layer
        else:
            layer.data = labels
        self._written = _fingerprint(labels)
        note, self._note = (f"; {self._note}" if self._note else ""), ""
        self._status.value = f"{cell_summary(labels)} (redrawn in {seconds:.2f} s){note}"

    def keep(self) -> None:
        """Store the sliders' rules in the model they came from."""
        rules, source = self.rules(), self._source
        if isinstance(source, TrainedModel):
            self._session.add(dataclasses.replace(source, rules=rules))
            self._source = self._session.get(source.name)
            where = f"the trained model {source.name!r} (save it to keep them on disk)"
        elif isinstance(source, Path) and source.suffix == ".safetensors":
            try:
                store_rules(source, rules)
            except (OSError, ValueError) as error:
                show_error(f"Segment layer: could not store the rules in {source}: {error}")
                return
            where = str(source)
        else:
            show_error(
                "Segment layer: the rules can be kept in a .safetensors model file or a "
                "model trained in this viewer, not in a bioimage.io package (export it "
                "again from the model file)"
            )
            return
        self._model_rules = rules
        show_info(f"Segment layer: the cell rules are kept in {where}")
        self._status.value = f"kept in {where}"


def _fingerprint(data) -> int:
    """A cheap identity of a labels array's content (to notice edits by hand)."""
    array = np.ascontiguousarray(data)
    return hash((array.shape, array.dtype.str, array.tobytes()))


def _wrapped(label: Label) -> Label:
    label.native.setWordWrap(True)
    return label
