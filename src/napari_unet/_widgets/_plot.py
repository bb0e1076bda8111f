"""A small live plot of the training loss (and validation F1), drawn with QPainter: no
plotting library, and cheap enough to redraw after every step.

Axes: the step below; the loss on the left on a log scale that spans whole decades (so
step-to-step noise does not fill the height), drawn raw and faint with its running mean
on top; validation F1 on the right on a fixed 0-1 scale."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS_COLOUR = QColor(255, 170, 40)
RAW_LOSS_COLOUR = QColor(255, 170, 40, 80)
F1_COLOUR = QColor(90, 200, 255)
AXIS_COLOUR = QColor(150, 150, 150)
SMOOTHING = 0.9  # weight of the past in the running mean of the loss


def decades(losses: list[float]) -> tuple[int, int]:
    """The whole decades (powers of ten) that hold every loss: at least one decade."""
    logs = [math.log10(max(loss, 1e-6)) for loss in losses]
    low, high = math.floor(min(logs)), math.ceil(max(logs))
    return low, max(high, low + 1)


def step_ticks(last: int, most: int = 5) -> list[int]:
    """Round step numbers from 0 to ``last``, at most ``most`` of them."""
    last = max(last, 1)
    spacing = 1
    while last // spacing >= most:
        for factor in (2, 2.5, 2):  # 1, 2, 5, 10, 20, 50, ...
            spacing = int(spacing * factor)
            if last // spacing < most:
                break
    return list(range(0, last + 1, spacing))


def running_mean(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential running mean, corrected for its start (as Adam's moments are)."""
    out, mean = [], 0.0
    for count, value in enumerate(values, start=1):
        mean = weight * mean + (1 - weight) * value
        out.append(mean / (1 - weight**count))
    return out


def _decade_label(power: int) -> str:
    return f"{10.0**power:g}"


class LossPlot(QWidget):
    """Loss per step (log scale, left) and validation F1 (0-1, right) against the step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            "Training loss (orange, log scale on the left; faint: each step, bright: the "
            "running mean) and validation F1 on the held-back painted cells (blue, 0-1 on "
            "the right) against the training step."
        )
        self.losses: list[tuple[int, float]] = []
        self.f1: list[tuple[int, float]] = []

    def clear(self) -> None:
        self.losses, self.f1 = [], []
        self.update()

    def add_loss(self, step: int, loss: float) -> None:
        self.losses.append((step, loss))
        self.update()

    def add_f1(self, step: int, f1: float) -> None:
        self.f1.append((step, f1))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width, height = self.width(), self.height()
        left, right, top, bottom = 34, 28, 18, 18
        area = QRectF(left, top, width - left - right, height - top - bottom)
        painter.setPen(QPen(AXIS_COLOUR, 1))
        painter.drawRect(area)
        if not self.losses:
            painter.drawText(left + 4, top + 16, "the loss curve appears here during training")
            return
        last_step = max(self.losses[-1][0], 1)
        low, high = decades([loss for _, loss in self.losses])

        def x(step: float) -> float:
            return area.left() + area.width() * step / last_step

        def y(fraction: float) -> float:  # 0 = bottom, 1 = top
            return area.top() + area.height() * (1 - fraction)

        def y_loss(loss: float) -> float:
            return y((math.log10(max(loss, 1e-6)) - low) / (high - low))

        self._draw_axes(painter, area, x, y, low, high, last_step)
        steps = [s for s, _ in self.losses]
        raw = [loss for _, loss in self.losses]
        painter.setPen(QPen(RAW_LOSS_COLOUR, 1))
        painter.drawPolyline(QPolygonF([QPointF(x(s), y_loss(v)) for s, v in self.losses]))
        painter.setPen(QPen(LOSS_COLOUR, 1.8))
        painter.drawPolyline(
            QPolygonF(
                [QPointF(x(s), y_loss(v)) for s, v in zip(steps, running_mean(raw), strict=True)]
            )
        )
        painter.drawText(left, 13, f"loss {raw[-1]:.3f}  (step {steps[-1]})")
        if self.f1:
            painter.setPen(QPen(F1_COLOUR, 2))
            painter.drawPolyline(QPolygonF([QPointF(x(s), y(f)) for s, f in self.f1]))
            for s, f in self.f1:
                painter.drawEllipse(QPointF(x(s), y(f)), 2.5, 2.5)
            painter.drawText(
                QRectF(width - right - 160, 0, 160 + right, 16),
                Qt.AlignmentFlag.AlignRight,
                f"validation F1 {self.f1[-1][1]:.2f}",
            )

    def _draw_axes(self, painter, area, x, y, low, high, last_step) -> None:
        """Decade ticks of the loss (left), 0 / 0.5 / 1 of F1 (right), steps (below)."""
        font = painter.font()
        font.setPointSizeF(max(font.pointSizeF() - 2, 6))
        painter.setFont(font)
        grid = QPen(AXIS_COLOUR, 1, Qt.PenStyle.DotLine)
        for power in range(low, high + 1):
            level = y((power - low) / (high - low))
            painter.setPen(grid)
            painter.drawLine(QPointF(area.left(), level), QPointF(area.right(), level))
            painter.setPen(LOSS_COLOUR)
            painter.drawText(
                QRectF(0, level - 7, area.left() - 3, 14),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                _decade_label(power),
            )
        if self.f1:
            painter.setPen(F1_COLOUR)
            for fraction in (0.0, 0.5, 1.0):
                painter.drawText(
                    QRectF(area.right() + 3, y(fraction) - 7, 30, 14),
                    Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                    f"{fraction:g}",
                )
        painter.setPen(AXIS_COLOUR)
        for step in step_ticks(last_step):
            painter.drawLine(QPointF(x(step), area.bottom()), QPointF(x(step), area.bottom() + 3))
            painter.drawText(
                QRectF(x(step) - 30, area.bottom() + 3, 60, 14),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                str(step),
            )
