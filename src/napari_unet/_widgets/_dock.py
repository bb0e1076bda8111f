"""A dock that scrolls: the two docks together fit a 768 px laptop screen."""

from __future__ import annotations

from magicgui.widgets import Container


class ScrollingDock(Container):
    """A magicgui Container in a scroll area that napari docks.

    napari docks a magicgui widget's ``native``, which for a scrollable Container is the
    controls without their scroll area (the dock then grows as tall as the controls);
    here ``native`` is the scroll area, and :attr:`controls` the widget holding the
    controls' layout.
    """

    def __init__(self) -> None:
        super().__init__(scrollable=True)

    @property
    def native(self):
        return self.root_native_widget

    @property
    def controls(self):
        """The Qt widget whose layout holds the controls (to add plain Qt widgets to)."""
        return self._widget._mgui_get_native_widget()
