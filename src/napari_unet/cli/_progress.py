"""Progress of long commands on the terminal (or in a log, without one)."""

from __future__ import annotations

import sys


class TrainingProgress:
    """Training progress on the terminal: one line rewritten in place (or a line every
    10 % when the output is not a terminal)."""

    def __init__(self, live: bool) -> None:
        self.live, self.f1, self.reported, self.step = live, None, -1, None

    def __call__(self, event) -> None:
        from ..core.events import LabelsIgnored, TrainingStarted, TrainStep, Validation

        if isinstance(event, TrainingStarted):
            print(event.summary(), file=sys.stderr)
            for warning in event.warnings:
                print(f"warning: {warning}", file=sys.stderr)
        elif isinstance(event, Validation):
            self.f1 = event.f1
            if self.live and self.step is not None:  # show it now, not at the next step
                print(f"\r{self._line()}", end="", file=sys.stderr)
        elif isinstance(event, LabelsIgnored):
            print(f"\nlabels ignored: {event.reason}", file=sys.stderr)
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

    def finish(self) -> None:
        if self.live:
            print(file=sys.stderr)


class TilesProgress:
    """One line on the terminal, rewritten in place: the plane and the tiles done."""

    def __init__(self, name: str, planes: int) -> None:
        self.name, self.planes, self.plane = name, planes, 1

    def __call__(self, event) -> None:
        from ..core.events import PlaneDone

        if isinstance(event, PlaneDone):
            self.plane = min(event.done + 1, self.planes)
            return
        line = f"{self.name}: plane {self.plane}/{self.planes}, tiles {event.done}/{event.total}"
        print(f"\r{line}", end="", file=sys.stderr)
