"""Progress of long commands on the terminal (or in a log, without one)."""

from __future__ import annotations

import dataclasses
import sys


def _say(message: str, live: bool) -> None:
    """A line of its own, also in the middle of a line being rewritten in place."""
    print(("\r\033[K" if live else "") + message, file=sys.stderr)


class TrainingProgress:
    """Training progress on the terminal: one line rewritten in place; without a terminal
    (a log), a line each time another tenth of the budget is used, and one at the end."""

    def __init__(self, live: bool) -> None:
        self.live, self.f1, self.reported, self.step = live, None, -1, None

    def __call__(self, event) -> None:
        from ..core.events import LabelsIgnored, Status, TrainingStarted, TrainStep, Validation

        if isinstance(event, Status):
            _say(event.message + " ...", self.live)
        elif isinstance(event, TrainingStarted):
            _say(event.summary(), self.live)
            for warning in event.warnings:
                _say(f"warning: {warning}", self.live)
        elif isinstance(event, Validation):
            self.f1 = event.f1
            if self.live and self.step is not None:  # show it now, not at the next step
                print(f"\r{self._line()}", end="", file=sys.stderr)
        elif isinstance(event, LabelsIgnored):
            _say(f"labels ignored: {event.reason}", self.live)
        elif isinstance(event, TrainStep):
            self.step = event
            if self.live:
                print(f"\r{self._line()}", end="", file=sys.stderr)
            elif int(10 * event.progress) > self.reported:
                self.reported = int(10 * event.progress)
                print(self._line(), file=sys.stderr)

    def _line(self) -> str:
        step = self.step
        bar = "#" * int(20 * step.progress)
        f1 = "" if self.f1 is None else f"  validation F1 {self.f1:.2f}"
        return (
            f"[{bar:<20}] {100 * step.progress:3.0f} %  step {step.step}  "
            f"loss {step.loss:.3f}{f1}  {step.elapsed:.0f} s"
        )

    def finish(self, result=None) -> None:
        """End the progress: the last line, at 100 % when the budget was spent."""
        if self.step is not None and result is not None and not result.stopped:
            self.step = dataclasses.replace(self.step, progress=1.0)
            if self.live:
                print(f"\r{self._line()}", end="", file=sys.stderr)
            elif self.reported < 10:
                print(self._line(), file=sys.stderr)
        if self.live:
            print(file=sys.stderr)


class TilesProgress:
    """One line on the terminal, rewritten in place: the plane and the tiles done; and
    each note (e.g. a tile size that was changed) once."""

    def __init__(self, name: str, planes: int, live: bool = True) -> None:
        self.name, self.planes, self.plane, self.live = name, planes, 1, live
        self.said: set[str] = set()

    def __call__(self, event) -> None:
        from ..core.events import PlaneDone, Status

        if isinstance(event, Status):
            if event.message not in self.said:
                self.said.add(event.message)
                _say(f"{self.name}: {event.message}", self.live)
            return
        if isinstance(event, PlaneDone):
            self.plane = min(event.done + 1, self.planes)
            return
        if self.live:
            line = (
                f"{self.name}: plane {self.plane}/{self.planes}, tiles {event.done}/{event.total}"
            )
            print(f"\r{line}", end="", file=sys.stderr)
