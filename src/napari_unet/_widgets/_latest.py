"""One computation at a time in a worker thread, for requests that come faster than it
runs (paint strokes, slider moves): a request made while one runs waits, and only the
latest waiting one runs when it ends. Used by the weight-map overlay and Tune the cells."""

from __future__ import annotations

from collections.abc import Callable


class LatestRequest:
    """Call it to request a computation. ``start(finished)`` starts one (a worker whose
    "finished" signal is connected to ``finished``, so that it is connected before the
    thread starts) and returns the worker, or None when there is nothing to compute."""

    def __init__(self, start: Callable[[Callable[[], None]], object | None]) -> None:
        self._start = start
        self.worker = None  # the one running, if any
        self._again = False  # a request came while it ran

    def __call__(self) -> None:
        if self.worker is not None:
            self._again = True
            return
        self.worker = self._start(self._finished)

    def _finished(self) -> None:
        self.worker = None
        if self._again:
            self._again = False
            self()
