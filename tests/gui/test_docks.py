"""Both docks together on a laptop screen."""

from qtpy.QtWidgets import QApplication


def test_both_docks_fit_a_1366_x_768_screen_and_scroll(make_napari_viewer, qtbot):
    """Docked one above the other, the two docks do not force the window taller than a
    768 px screen; each scrolls to its buttons instead."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    _, train = viewer.window.add_plugin_dock_widget("napari-paint-unet", "Train U-Net")
    _, segment = viewer.window.add_plugin_dock_widget("napari-paint-unet", "Segment layer")
    window.resize(1366, 768)
    qtbot.wait(200)
    QApplication.processEvents()
    assert window.height() <= 768
    for widget, button in ((train, train._train_button), (segment, segment._run)):
        scroll = widget.native
        assert hasattr(scroll, "ensureWidgetVisible")  # the dock is a scroll area
        scroll.ensureWidgetVisible(button.native)
        QApplication.processEvents()
        corner = button.native.mapTo(scroll.viewport(), button.native.rect().bottomLeft())
        assert 0 <= corner.y() <= scroll.viewport().height()  # the button can be reached
        # nothing hides past the right edge: the controls are as wide as the dock
        assert not scroll.horizontalScrollBar().isVisible()
        assert scroll.widget().width() <= scroll.viewport().width()
