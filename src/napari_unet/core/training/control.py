"""How a caller steers a running training from another thread."""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["TrainingControl"]


class TrainingControl:
    """Stop a training, hand it new paint, choose the window its previews show (and ask
    for where the model is unsure there).

    The caller (a widget, the command line, a script) makes one and passes it to
    :func:`~napari_unet.core.training.train`; its methods are safe to call from any
    thread, before or during training. The training loop reads it between steps, so
    ``stop()`` ends training after the current step.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._labels: dict[int, np.ndarray] = {}
        self._preview: tuple[int, int, tuple[slice, slice]] | None = None
        self._unsure = 0  # previews still to come with the unsure map

    def stop(self) -> None:
        """End training after the current step (the best model so far is kept)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def update_labels(self, pair: int, labels: np.ndarray) -> None:
        """New labels for pair ``pair`` (its shape), used from the next step on; a copy is
        kept, so the caller may go on painting into ``labels``."""
        with self._lock:
            self._labels[pair] = np.array(labels, copy=True)

    def set_preview_window(self, pair: int, plane: int, window: tuple[slice, slice] | None):
        """Ask for previews of ``window`` (rows, columns, in the image's pixels) of plane
        ``plane`` (0 for 2D) of pair ``pair``; None: no previews."""
        with self._lock:
            self._preview = None if window is None else (pair, plane, window)

    def ask_unsure(self, previews: int = 1) -> None:
        """Ask for the unsure map of the current model (four predictions of the window,
        :func:`~napari_unet.core.uncertainty.cell_disagreement`) with the next
        ``previews`` previews (one per window in view)."""
        with self._lock:
            self._unsure = max(self._unsure, int(previews))

    # the training loop's side

    def take_labels(self) -> dict[int, np.ndarray]:
        """The labels handed in since the last call, by pair (emptied)."""
        with self._lock:
            labels, self._labels = self._labels, {}
        return labels

    def preview_window(self) -> tuple[int, int, tuple[slice, slice]] | None:
        """(pair, plane, window) of the preview asked for, or None."""
        with self._lock:
            return self._preview

    def take_unsure(self) -> bool:
        """Whether this preview is to carry the unsure map (counts one down)."""
        with self._lock:
            wanted, self._unsure = self._unsure > 0, max(self._unsure - 1, 0)
        return wanted
