"""Small typed events that long computations yield to their front ends (GUI, CLI, tests)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "Checkpoint",
    "LabelsIgnored",
    "PlaneDone",
    "Status",
    "Preview",
    "TilesDone",
    "TrainingStarted",
    "TrainStep",
    "Validation",
    "drain",
]

_Result = TypeVar("_Result")


def drain(
    generator: Generator[Any, None, _Result], on_event: Callable[[Any], None] | None = None
) -> _Result:
    """Run a generator of events to its end and return its result (the CLI's and the
    tests' way of using the core's long computations); ``on_event`` sees every event."""
    while True:
        try:
            event = next(generator)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


@dataclass(frozen=True)
class Status:
    """What a long computation is doing now, or a setting it corrected, in one line for a
    status bar or a terminal (e.g. "reading the paint", "tile size 100 ...; using 180")."""

    message: str


@dataclass(frozen=True)
class PlaneDone:
    """Stack progress: ``done`` of ``total`` planes are segmented."""

    done: int
    total: int


@dataclass(frozen=True)
class TilesDone:
    """Prediction progress: ``done`` of ``total`` tiles are written."""

    done: int
    total: int


@dataclass(frozen=True)
class TrainingStarted:
    """Training has its data ready and takes its first step next."""

    device: str
    precision: str  # "float32", or the autocast dtype: "bfloat16", "float16"
    cells: int  # painted cells trained on
    validation_cells: int  # painted cells held back to validate on (0: no validation)
    input_size: int  # px, training tile (input) size
    warnings: tuple[str, ...] = ()  # what looks wrong in the data, without being an error

    def summary(self) -> str:
        """One line for a status bar or a terminal: where, in what precision, on what."""
        held = f", {self.validation_cells} held back to validate" if self.validation_cells else ""
        return f"training on {self.device}, {self.precision}: {self.cells} painted cells{held}"


@dataclass(frozen=True)
class TrainStep:
    """One optimiser step is done."""

    step: int  # 1, 2, ...
    loss: float  # weighted cross-entropy of this step's batch
    learning_rate: float
    elapsed: float  # seconds since training started
    progress: float  # fraction of the budget (time or iterations) used, 0-1


@dataclass(frozen=True)
class Validation:
    """Scores on the held-back painted cells (object F1 at IoU 0.5)."""

    step: int
    elapsed: float
    f1: float
    precision: float
    recall: float
    mean_iou: float  # over the matched cells


@dataclass(frozen=True)
class Checkpoint:
    """The model after ``step`` is the best so far (by validation F1 x mean matched IoU;
    without validation, the latest)."""

    step: int
    f1: float | None  # None without validation


@dataclass(frozen=True)
class Preview:
    """The cell probability of the current model on a window of one training image.

    pair, plane: which image (plane = index in a stack, 0 for 2D); window: (rows, columns)
    slices of the image; probability: float32 of the window's shape; unsure: where the
    model is unsure of its cells there, float32 of the window's shape in [0, 1]
    (:func:`~napari_unet.core.uncertainty.cell_disagreement`), when it was asked for
    (:meth:`~napari_unet.core.training.TrainingControl.ask_unsure`), else None.
    """

    pair: int
    plane: int
    window: tuple[slice, slice]
    probability: np.ndarray
    unsure: np.ndarray | None = None


@dataclass(frozen=True)
class LabelsIgnored:
    """Labels handed to a running training were refused (``reason``); it goes on with the
    labels it had."""

    reason: str
