"""Small typed events that long computations yield to their front ends (GUI, CLI, tests)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["PlaneDone", "TilesDone", "drain"]

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
class PlaneDone:
    """Stack progress: ``done`` of ``total`` planes are segmented."""

    done: int
    total: int


@dataclass(frozen=True)
class TilesDone:
    """Prediction progress: ``done`` of ``total`` tiles are written."""

    done: int
    total: int
