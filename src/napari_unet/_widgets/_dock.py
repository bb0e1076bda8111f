"""A dock that scrolls: the two docks together fit a 768 px laptop screen."""

from __future__ import annotations

from magicgui.widgets import Container
from qtpy.QtCore import QEvent, QObject, Qt


class ScrollingDock(Container):
    """A magicgui Container in a scroll area that napari docks.

    napari docks a magicgui widget's ``native``, which for a scrollable Container is the
    controls without their scroll area (the dock then grows as tall as the controls);
    here ``native`` is the scroll area, and :attr:`controls` the widget holding the
    controls' layout. It scrolls up and down only: it stays as wide as its controls
    (long lines wrap), so that nothing hides past its right edge.
    """

    def __init__(self) -> None:
        super().__init__(scrollable=True)
        self.native.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.native.setWidgetResizable(True)
        self.controls.layout().setAlignment(Qt.AlignmentFlag.AlignTop)  # no gaps when tall
        self._fit = _FitWidth(self.native)
        self.controls.installEventFilter(self._fit)

    @property
    def native(self):
        return self.root_native_widget

    @property
    def controls(self):
        """The Qt widget whose layout holds the controls (to add plain Qt widgets to)."""
        return self._widget._mgui_get_native_widget()


class _FitWidth(QObject):
    """Keeps a scroll area at least as wide as its controls' minimum plus the vertical
    scroll bar, whenever the controls change."""

    def __init__(self, scroll) -> None:
        super().__init__(scroll)
        self._scroll = scroll

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Show):
            bar = self._scroll.verticalScrollBar().sizeHint().width()
            frame = 2 * self._scroll.frameWidth()
            self._scroll.setMinimumWidth(watched.minimumSizeHint().width() + bar + frame)
        return False
