"""A small live plot of the training loss (and validation F1), drawn with QPainter: no
plotting library, and cheap enough to redraw after every step."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS_COLOUR = QColor(255, 170, 40)
F1_COLOUR = QColor(90, 200, 255)


class LossPlot(QWidget):
    """Loss per step (log scale, left) and validation F1 (0-1, right) against the step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
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
        left, right, top, bottom = 8, 8, 18, 8
        painter.setPen(QPen(QColor(128, 128, 128), 1))
        painter.drawRect(left, top, width - left - right, height - top - bottom)
        if not self.losses:
            painter.drawText(left + 4, top + 16, "the loss curve appears here during training")
            return
        last_step = max(self.losses[-1][0], 1)
        values = [math.log10(max(loss, 1e-6)) for _, loss in self.losses]
        low, high = min(values), max(values)
        span = max(high - low, 1e-3)

        def x(step: int) -> float:
            return left + (width - left - right) * step / last_step

        def y(fraction: float) -> float:  # 0 = bottom, 1 = top
            return top + (height - top - bottom) * (1 - fraction)

        loss_line = QPolygonF(
            [
                QPointF(x(s), y((v - low) / span))
                for (s, _), v in zip(self.losses, values, strict=True)
            ]
        )
        painter.setPen(QPen(LOSS_COLOUR, 1.5))
        painter.drawPolyline(loss_line)
        text = f"loss {self.losses[-1][1]:.3f}  (step {self.losses[-1][0]})"
        painter.drawText(left, 13, text)
        if self.f1:
            painter.setPen(QPen(F1_COLOUR, 2))
            painter.drawPolyline(QPolygonF([QPointF(x(s), y(f)) for s, f in self.f1]))
            for s, f in self.f1:
                painter.drawEllipse(QPointF(x(s), y(f)), 2.5, 2.5)
            painter.drawText(
                width - right - 150,
                13,
                150,
                16,
                Qt.AlignmentFlag.AlignRight,
                f"validation F1 {self.f1[-1][1]:.2f}",
            )
