"""Take the user guide's screenshots from the real plugin (run under Xvfb):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py
    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python scripts/screenshots.py --laptop

Opens napari with the sample data, shows the weight map after a brush stroke, previews
the augmentation, trains (loss curve and live prediction; where the model is unsure in
view, during training), shows where to paint next, segments with the trained model and
tunes the cells, and writes docs/images/{weightmap-overlay,augmented,training,
training-unsure,paint-next,segmented}.png; with
``--laptop``, the window of a 1366 x 768 screen, the same names ending in -1366.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import imageio.v3 as iio
import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from scipy import ndimage as ndi

from napari_unet._widgets._viewer import camera_of

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def wait(condition, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() > end:
            raise TimeoutError("the plugin did not get there in time")
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)


SUFFIX = ""


def save(viewer, name: str) -> None:
    shot = viewer.screenshot(canvas_only=False, flash=False)
    path = IMAGES / name.replace(".png", f"{SUFFIX}.png")
    iio.imwrite(path, shot)
    print("written", path)


def main() -> int:
    global SUFFIX
    laptop = "--laptop" in sys.argv
    SUFFIX = "-1366" if laptop else ""
    viewer = napari.Viewer(title="napari-paint-unet")
    viewer.window._qt_window.resize(*((1366, 740) if laptop else (1500, 950)))
    viewer.open_sample("napari-paint-unet", "touching_cells")
    segment_dock, segment = viewer.window.add_plugin_dock_widget(
        "napari-paint-unet", "Segment layer"
    )
    train_dock, train = viewer.window.add_plugin_dock_widget(
        "napari-paint-unet", "Train U-Net", tabify=True
    )
    train_dock.raise_()
    viewer.reset_view()
    labels = viewer.layers["painted cells"]
    labels.opacity = 0.4

    train._show_weights.value = True
    wait(lambda: train.overlay.weights_layer is not None)
    labels.brush_size = 6
    image = viewer.layers["touching cells"].data
    dark = image < np.percentile(image, 60)  # (70 % of the sample is background)
    free = ndi.binary_erosion(dark, iterations=4) & (labels.data == 0)  # no unpainted cell
    runs, _ = ndi.label(free, structure=[[0, 0, 0], [1, 1, 1], [0, 0, 0]])  # along rows
    longest = np.argwhere(runs == np.bincount(runs.ravel())[1:].argmax() + 1)
    for r, c in longest[:60:4]:
        labels.paint((r, c), 1)  # a background stroke
    weights = train.overlay.weights_layer
    before = weights.data.copy()
    wait(lambda: not np.array_equal(weights.data, before))
    viewer.layers.selection.active = labels
    labels.mode = "paint"
    camera = camera_of(viewer)
    zoom = camera.zoom
    camera.center = tuple(np.argwhere(train.overlay.gaps_layer.data).mean(axis=0))
    camera.zoom = 2.5 * zoom  # close to the touching painted cells
    save(viewer, "weightmap-overlay.png")
    viewer.reset_view()

    train._show_weights.value = False
    train._augment_button.native.click()
    wait(lambda: "augmented tiles" in train._status.value)
    viewer.reset_view()
    save(viewer, "augmented.png")
    for name in ("augmented tiles", "augmented targets"):
        viewer.layers.remove(name)
    viewer.reset_view()

    train._minutes.value = 3.0
    train._train_button.native.click()
    wait(  # (on a busy machine the minutes may end first)
        lambda: (
            (len(train.plot.losses) > 150 or train.worker is None)
            and "touching cells prediction" in viewer.layers
        )
    )
    wait(lambda: len(train.plot.f1) >= 2 or train.worker is None)
    save(viewer, "training.png")
    if train.worker is not None:  # where the model, as it is now, is unsure in view
        train._paint_next_button.native.click()
        wait(lambda: "as it is now" in train._status.value or train.worker is None)
        save(viewer, "training-unsure.png")
    wait(lambda: train.worker is None)
    if "touching cells unsure" in viewer.layers:
        viewer.layers.remove("touching cells unsure")

    train._paint_next_button.native.click()
    wait(lambda: "paint the cells here" in train._status.value)
    save(viewer, "paint-next.png")
    viewer.layers.remove("touching cells unsure")
    viewer.reset_view()

    segment_dock.raise_()
    segment._run.native.click()
    wait(lambda: "touching cells labels" in viewer.layers and segment.worker is None)
    viewer.layers["touching cells prediction"].visible = False
    labels.visible = False
    viewer.layers["touching cells labels"].contour = 0
    segment._tune._neck.value = 0.5  # gentler cuts, redrawn without the network
    wait(lambda: "redrawn" in segment._tune._status.value)
    save(viewer, "segmented.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
