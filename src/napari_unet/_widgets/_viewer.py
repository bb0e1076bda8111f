"""Where napari versions keep the camera and the canvas size (one place for both docks)."""

from __future__ import annotations


def camera_of(viewer):
    """The viewer's camera: napari >= 0.9 keeps it in viewer.scene, older versions in
    viewer.camera."""
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


def canvas_size(viewer) -> tuple[int, int]:
    """The canvas in screen px (napari >= 0.6 keeps it in viewer.canvas; older versions in
    viewer._canvas_size)."""
    canvas = getattr(viewer, "canvas", None)
    return tuple(getattr(canvas, "size", None) or viewer._canvas_size)
