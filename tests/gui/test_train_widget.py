""" "Train U-Net" in a real viewer: the weight map follows the paint, training runs in a
worker with a live loss curve and preview, Stop and closing are clean, the model reaches
"Segment layer" and can be saved."""

import numpy as np
import pytest
from qtpy.QtCore import QThreadPool

from napari_unet._widgets import train as train_module
from napari_unet._widgets._viewer import camera_of
from napari_unet.core.config import TrainConfig
from napari_unet.core.training import loop as training_loop
from napari_unet.model_io import load_model


@pytest.fixture
def messages(monkeypatch):
    shown = {"error": [], "info": [], "warning": []}
    for kind in shown:
        monkeypatch.setattr(train_module, f"show_{kind}", shown[kind].append)
    return shown


def quick(iterations=4, **overrides):
    """A light network on small tiles: about 0.1 s a step on 2 CPU cores."""
    settings = {"minutes": None, "iterations": iterations, "batch_size": 1, "tile_size": 92}
    return TrainConfig(**{**settings, **overrides})


@pytest.fixture
def viewer_with_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-paint-unet", "touching_cells")
    return viewer


def dock_train(viewer, monkeypatch=None, config=None):
    if config is not None:  # (on the class: magicgui containers treat attributes as widgets)
        monkeypatch.setattr(train_module.TrainWidget, "_train_config", lambda self: config)
    _, widget = viewer.window.add_plugin_dock_widget("napari-paint-unet", "Train U-Net")
    return widget


def previews_of_nine_windows(monkeypatch):
    """A preview after every step, in windows of 100 px: 9 on the 256 px sample."""
    monkeypatch.setattr(training_loop, "PREVIEW_EVERY", 0.0)
    monkeypatch.setattr(train_module, "PREVIEW_SIZE", 100)


def wait_for_training(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: widget.worker is None and widget._train_button.enabled, timeout=timeout)


def test_both_widgets_dock_by_their_menu_names_and_find_the_layers(viewer_with_sample):
    viewer = viewer_with_sample
    train_widget = dock_train(viewer)
    _, segment_widget = viewer.window.add_plugin_dock_widget("napari-paint-unet", "Segment layer")
    image, labels = viewer.layers["touching cells"], viewer.layers["painted cells"]
    assert train_widget.pair_layers() == [(image, labels)]
    assert segment_widget._image.value is image
    config = train_widget._train_config()  # the same budget as the command line's
    assert (config.minutes, config.iterations) == (3.0, 450)
    train_widget._steps.value = 0  # no step limit
    assert train_widget._train_config().iterations is None


def test_the_weight_map_follows_the_paint(viewer_with_sample, qtbot):
    viewer = viewer_with_sample
    labels = viewer.layers["painted cells"]
    before = labels.data.copy()
    widget = dock_train(viewer)
    widget._show_weights.value = True
    qtbot.waitUntil(lambda: widget.overlay.weights_layer is not None, timeout=10_000)
    weights = widget.overlay.weights_layer.data.copy()
    assert weights.shape == labels.data.shape
    assert (weights[before == 0] == 0).all() and (weights[before > 0] > 0).all()
    assert widget.overlay.gaps_layer.data.any()  # the sample's painted cells touch
    assert widget.overlay.weights_layer.colorbar.visible
    assert not widget._weights_legend.native.isHidden()  # (the viewer itself is not shown)
    gap_colours = widget.overlay.gaps_layer.colormap.map(np.array([0.0, 1.0]))
    np.testing.assert_allclose(gap_colours, [[0, 0, 0, 0], [0, 1, 1, 1]])  # cyan, not added

    row, column = np.argwhere(before == 0)[0]
    labels.brush_size = 5
    labels.paint((row, column), 1)  # a background dab, as the brush does it
    qtbot.waitUntil(lambda: widget.overlay.weights_layer.data[row, column] > 0, timeout=10_000)
    assert viewer.layers.selection.active is labels  # painting goes on where it was

    widget._show_weights.value = False
    assert not any(layer.name.startswith("weight map") for layer in viewer.layers)
    assert widget._weights_legend.native.isHidden()


def test_training_draws_the_loss_curve_and_the_model_reaches_segment_layer(
    viewer_with_sample, qtbot, monkeypatch, messages, tmp_path
):
    viewer = viewer_with_sample
    monkeypatch.setattr(training_loop, "PREVIEW_EVERY", 0.0)
    widget = dock_train(viewer, monkeypatch, quick(iterations=6))
    _, segment_widget = viewer.window.add_plugin_dock_widget("napari-paint-unet", "Segment layer")
    painted = viewer.layers["painted cells"].data.copy()

    widget._train_button.native.click()
    assert not widget._train_button.enabled and widget._stop_button.enabled
    wait_for_training(qtbot, widget)

    assert [step for step, _ in widget.plot.losses] == [1, 2, 3, 4, 5, 6]
    assert messages["error"] == []
    assert widget.result is not None and widget._save_button.enabled
    preview = viewer.layers["touching cells prediction"]
    assert preview.data.max() > 0 and preview.data.max() <= 1
    np.testing.assert_array_equal(viewer.layers["painted cells"].data, painted)  # untouched

    # the model is offered to Segment layer at once
    assert segment_widget._source.value.startswith("trained on touching cells (")
    assert " steps" in segment_widget._source.value  # told apart by more than the time
    segment_widget._probability.value = True
    segment_widget._run.native.click()
    qtbot.waitUntil(lambda: "touching cells labels" in viewer.layers, timeout=30_000)
    assert viewer.layers["touching cells cell probability"].data.shape == painted.shape

    path = widget.save(tmp_path / "trained")
    assert path.name == "trained.safetensors"
    loaded = load_model(path)
    assert loaded.training["steps"] == 6 and loaded.model.config.classes == 3


def test_preview_windows_cover_the_view_from_its_centre():
    windows = train_module.preview_windows(np.array([[100, 0], [1299, 599]]), (2000, 600))
    size = train_module.PREVIEW_SIZE
    covered = np.zeros((2000, 600), int)
    for rows, columns in windows:
        assert rows.stop - rows.start <= size and columns.stop - columns.start <= size
        covered[rows, columns] += 1
    assert (covered[100:1300, :600] == 1).all() and covered.sum() == 1200 * 600
    first = windows[0]
    assert first[0].start < 700 < first[0].stop  # the centre of the view first
    # nothing of the image in view: its first window
    assert train_module.preview_windows(np.array([[-50, -50], [-1, -1]]), (300, 900)) == [
        (slice(0, 300), slice(0, size))
    ]


def test_live_preview_fills_the_view_and_starts_afresh_each_training(
    viewer_with_sample, qtbot, monkeypatch
):
    viewer = viewer_with_sample
    previews_of_nine_windows(monkeypatch)
    widget = dock_train(viewer, monkeypatch, quick(iterations=14))
    viewer.reset_view()
    widget._train_button.native.click()
    wait_for_training(qtbot, widget)
    preview = viewer.layers["touching cells prediction"]
    assert len(widget._preview_windows) == 9
    seen = preview.data != 0
    assert seen[:100, :100].any() and seen[-100:, -100:].any()  # corners too, not one box
    preview.visible = False  # hidden by the user ...
    widget._train_button.native.click()
    assert preview.visible and not preview.data.any()  # ... back, and not the old model's
    wait_for_training(qtbot, widget)


def test_paint_here_next_shows_where_the_model_is_unsure_and_goes_there(
    viewer_with_sample, qtbot, monkeypatch
):
    viewer = viewer_with_sample
    widget = dock_train(viewer, monkeypatch, quick(iterations=4))
    assert not widget._paint_next_button.enabled  # nothing trained yet
    widget._train_button.native.click()
    wait_for_training(qtbot, widget)
    assert widget._paint_next_button.enabled
    widget._paint_next_button.native.click()
    qtbot.waitUntil(lambda: "touching cells unsure" in viewer.layers, timeout=30_000)
    unsure = viewer.layers["touching cells unsure"].data
    labels = viewer.layers["painted cells"]
    assert unsure.shape == labels.data.shape and unsure.max() > 0
    camera = camera_of(viewer)
    first = tuple(np.round(camera.center[-2:]).astype(int))
    from napari_unet.core.uncertainty import next_region, window_size

    rows, columns = next_region(unsure, labels.data != 0, window_size(labels.data))
    assert first == ((rows.start + rows.stop) // 2, (columns.start + columns.stop) // 2)
    assert (labels.data[rows, columns] != 0).mean() <= 0.25  # mostly not painted
    assert viewer.layers.selection.active is labels and labels.mode == "paint"
    assert "paint the cells here (window 1)" in widget._status.value
    widget._paint_next_button.native.click()  # the next window, elsewhere
    second = tuple(np.round(camera.center[-2:]).astype(int))
    assert "window 2" in widget._status.value and second != first
    widget._train_button.native.click()  # a new model: the old map is not its map
    assert not viewer.layers["touching cells unsure"].data.any()
    wait_for_training(qtbot, widget)
    widget._paint_next_button.native.click()  # the new model's map, from window 1
    qtbot.waitUntil(lambda: "window 1" in widget._status.value, timeout=30_000)
    assert viewer.layers["touching cells unsure"].data.max() > 0


def test_during_training_paint_here_next_shows_where_the_model_is_unsure_in_view(
    viewer_with_sample, qtbot, monkeypatch
):
    viewer = viewer_with_sample
    previews_of_nine_windows(monkeypatch)
    widget = dock_train(viewer, monkeypatch, quick(iterations=100_000))
    viewer.reset_view()
    camera = camera_of(viewer)
    centre = tuple(camera.center)
    widget._live_preview.value = False
    widget._train_button.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=30_000)
    assert widget._paint_next_button.enabled  # (while training too)
    widget._paint_next_button.native.click()
    assert "turn on Live prediction" in widget._status.value
    widget._live_preview.value = True
    qtbot.waitUntil(lambda: "touching cells prediction" in viewer.layers, timeout=30_000)
    widget._paint_next_button.native.click()
    assert widget._control._unsure == 9  # one map per window in view
    qtbot.waitUntil(lambda: "touching cells unsure" in viewer.layers, timeout=60_000)
    qtbot.waitUntil(lambda: widget._control._unsure == 0, timeout=60_000)
    unsure = viewer.layers["touching cells unsure"].data
    labels = viewer.layers["painted cells"].data
    assert unsure.shape == labels.shape and unsure.dtype == np.float32
    assert 0 <= unsure.min() and unsure.max() <= 1
    assert "as it is now, is unsure" in widget._status.value
    assert viewer.layers.selection.active is viewer.layers["painted cells"]  # to paint in
    assert tuple(camera.center) == centre  # the view stays where the user put it
    widget.stop()
    wait_for_training(qtbot, widget)
    assert widget._paint_next_button.enabled  # after training: the whole image, as before


def test_stop_ends_training_within_a_step_and_keeps_the_model(
    viewer_with_sample, qtbot, monkeypatch, messages
):
    import torch

    from napari_unet._widgets import train as train_dock

    threads = []

    def counting_threads(*args, **kwargs):
        threads.append(torch.get_num_threads())
        return (yield from original(*args, **kwargs))

    original = train_dock.train
    monkeypatch.setattr(train_dock, "train", counting_threads)
    widget = dock_train(viewer_with_sample, monkeypatch, quick(iterations=100_000))
    widget._threads.value = 1  # Advanced: CPU threads
    widget._train_button.native.click()
    assert widget._progress.max == 0  # busy while the data is prepared
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 2, timeout=30_000)
    assert widget._progress.max == train_dock.PROGRESS_STEPS  # steps are counted now
    assert threads == [1]
    widget._stop_button.native.click()
    wait_for_training(qtbot, widget, timeout=10_000)
    assert widget.result.stopped
    assert len(widget.result.history["steps"]) < 100_000
    assert "stopped" in widget._status.value


def test_stop_before_the_first_step_offers_no_model(
    viewer_with_sample, qtbot, monkeypatch, messages
):
    from napari_unet._widgets._session import session_models

    widget = dock_train(viewer_with_sample, monkeypatch, quick(iterations=100_000))
    widget._train_button.native.click()
    widget._stop_button.native.click()  # while the data are still being read
    assert "before the first step" in widget._status.value
    wait_for_training(qtbot, widget, timeout=30_000)
    assert widget.result is None and not widget._save_button.enabled
    assert not widget._paint_next_button.enabled  # no model to ask
    assert session_models(viewer_with_sample).models == []  # Segment layer lists nothing
    assert widget._status.value == "stopped before the first step: no model"
    assert "no model was made" in messages["info"][-1]


def test_strokes_painted_during_training_reach_the_training(viewer_with_sample, qtbot, monkeypatch):
    viewer = viewer_with_sample
    from napari_unet.core.training.trainset import TrainingSet

    applied = []  # the paint the training set received, in the training thread
    original = TrainingSet.apply_labels

    def recording(self, updates):
        applied.append({pair: labels.copy() for pair, labels in updates.items()})
        return original(self, updates)

    monkeypatch.setattr(TrainingSet, "apply_labels", recording)
    widget = dock_train(viewer, monkeypatch, quick(iterations=100_000))
    labels = viewer.layers["painted cells"]
    widget._train_button.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) > 0, timeout=30_000)
    row, column = np.argwhere(labels.data == 0)[0]
    labels.paint((row, column), 1)
    qtbot.waitUntil(lambda: any(u[0][row, column] == 1 for u in applied), timeout=10_000)
    assert applied[-1][0].shape == labels.data.shape
    widget.stop()
    wait_for_training(qtbot, widget)


def test_closing_the_viewer_during_training_stops_it_cleanly(
    viewer_with_sample, qtbot, monkeypatch, messages
):
    widget = dock_train(viewer_with_sample, monkeypatch, quick(iterations=100_000))
    widget._train_button.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=30_000)
    viewer_with_sample.close()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=10_000)
    assert QThreadPool.globalInstance().waitForDone(10_000)
    assert messages["error"] == []


def test_errors_are_explained_and_leave_the_layers_alone(
    make_napari_viewer, qtbot, monkeypatch, messages
):
    viewer = make_napari_viewer()
    widget = dock_train(viewer, monkeypatch, quick())
    widget._train_button.native.click()
    assert "choose an image layer and a labels layer" in messages["error"][-1]

    image = viewer.add_image(np.random.default_rng(0).random((40, 50)), name="img")
    wrong = viewer.add_labels(np.zeros((30, 50), np.uint8), name="wrong")
    widget.set_pair(0, image, wrong)
    widget._train_button.native.click()
    assert (
        "the labels have shape (30, 50) but the image has shape (40, 50)" in messages["error"][-1]
    )

    unpainted = viewer.add_labels(np.where(np.arange(50) < 5, 1, 0)[None].repeat(40, 0), name="bg")
    widget.set_pair(0, image, unpainted)
    widget._train_button.native.click()
    wait_for_training(qtbot, widget)
    # painted with napari's first label only: said what label 1 means, and how to go on
    assert "no cell is painted: everything painted has label 1" in messages["error"][-1]
    assert "press + or M for a new label" in messages["error"][-1]
    assert widget._status.value == f"not trained: {messages['error'][-1].split(': ', 1)[1]}"
    assert widget._train_button.enabled and widget.result is None
    assert widget._convention.value.startswith("Paint: 1 = background, 2, 3, ...")
    widget._dense.value = True
    assert widget._convention.value.startswith("Complete masks: 0 = background")
    assert [layer.name for layer in viewer.layers] == ["img", "wrong", "bg"]


def test_augmentation_preview_lays_tiles_out_in_2d_beside_the_image(viewer_with_sample, qtbot):
    viewer = viewer_with_sample
    widget = dock_train(viewer)
    ndim = viewer.dims.ndim
    widget._augment_button.native.click()
    qtbot.waitUntil(lambda: "augmented targets" in viewer.layers, timeout=20_000)
    tiles = viewer.layers["augmented tiles"]
    targets = viewer.layers["augmented targets"]
    # 4 training tiles of the light preset (276 px in, 188 px out) in a 2 x 2 grid
    assert tiles.data.shape == targets.data.shape == (2 * 276 + 8, 2 * 276 + 8)
    assert viewer.dims.ndim == ndim  # no slider over the tiles
    image = viewer.layers["touching cells"]
    assert tiles.translate[1] >= image.data.shape[1]  # to the right of the image
    classes = targets.data
    assert set(np.unique(classes)) <= {0, 1, 2, 3} and (classes == 3).any()
    assert (classes[:44, :44] == 0).all()  # the tile's margin has no target
    assert list(targets.features["target"])[:3] == ["not painted (ignored)", "background", "cell"]
    assert "green = cell" in widget._status.value  # the legend
    assert viewer.layers.selection.active is viewer.layers["painted cells"]

    layers = len(viewer.layers)
    before = tiles.data.copy()
    widget._status.value = ""
    widget._augment_button.native.click()  # again: the same layers, new tiles
    qtbot.waitUntil(lambda: "augmented tiles" in widget._status.value, timeout=20_000)
    assert not np.array_equal(tiles.data, before)
    assert len(viewer.layers) == layers


def test_montage_puts_each_tile_and_its_targets_in_place():
    from napari_unet._widgets._augmented import GAP, montage

    images = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 1, 10, 10))
    targets = np.ones((3, 6, 6), np.uint8)
    weights = np.ones((3, 6, 6), np.float32)
    weights[1] = 0  # tile 1: nothing painted
    grid, classes = montage(images, targets, weights, columns=2)
    assert grid.shape == classes.shape == (2 * 10 + GAP, 2 * 10 + GAP)
    assert (grid[:10, 10 + GAP :] == 1).all() and (grid[10 + GAP :, :10] == 2).all()
    assert (classes[2:8, 2:8] == 2).all() and classes[:2].max() == 0  # centred output
    assert classes[:10, 10 + GAP :].max() == 0  # not painted: shown as nothing
    assert (classes[10 + GAP + 2 : 10 + GAP + 8, 2:8] == 2).all()


def test_augmentation_preview_follows_the_elastic_switch(viewer_with_sample, qtbot, monkeypatch):
    from napari_unet.core.training.trainset import TrainingSet

    used = []
    original = TrainingSet.sample_batch

    def recording(self, count, in_size, out_size, rng):
        used.append(self.config.augmentation)
        return original(self, count, in_size, out_size, rng)

    monkeypatch.setattr(TrainingSet, "sample_batch", recording)
    viewer = viewer_with_sample
    widget = dock_train(viewer)
    for elastic in (False, True):
        widget._elastic.value = elastic
        calls = len(used)
        widget._status.value = ""
        widget._augment_button.native.click()
        qtbot.waitUntil(lambda: "augmented tiles" in widget._status.value, timeout=20_000)
        assert len(used) == calls + 1 and used[-1].elastic == elastic


def test_colour_layers_train_a_model_of_their_channels(viewer_with_sample, qtbot, monkeypatch):
    viewer = viewer_with_sample
    grey = viewer.layers["touching cells"].data
    grey = np.round(255 * (grey - grey.min()) / np.ptp(grey)).astype(np.uint8)
    as_colour = viewer.add_image(np.stack([grey] * 3, -1), name="grey saved in colour")
    colour = viewer.add_image(np.stack([grey, grey // 2, grey], -1), name="colour")
    assert as_colour.rgb and colour.rgb
    widget = dock_train(viewer, monkeypatch, quick(iterations=1))
    painted = viewer.layers["painted cells"]
    for layer, channels in [(as_colour, 1), (colour, 3)]:
        widget.set_pair(0, layer, painted)
        widget._train_button.native.click()
        wait_for_training(qtbot, widget)
        assert widget.result.model.config.in_channels == channels
    np.testing.assert_array_equal(colour.data[..., 1], grey // 2)  # the layer is untouched


def test_complete_masks_left_as_sparse_get_a_warning(
    make_napari_viewer, qtbot, monkeypatch, messages
):
    from napari_unet.core.synthetic import touching_cells

    cells = touching_cells((128, 128), rng=np.random.default_rng(0))
    viewer = make_napari_viewer()
    image = viewer.add_image(cells.image, name="cells")
    mask = viewer.add_labels(cells.truth, name="complete mask")  # 0 = background
    widget = dock_train(viewer, monkeypatch, quick(iterations=1))
    widget.set_pair(0, image, mask)
    widget._train_button.native.click()
    wait_for_training(qtbot, widget)
    masks = [w for w in messages["warning"] if "tick Complete masks" in w]
    assert len(masks) == 1  # said once (a model of one step is not ready either: said too)


def test_a_trained_model_exports_to_bioimageio_and_comes_back(
    viewer_with_sample, qtbot, monkeypatch, messages, tmp_path
):
    pytest.importorskip("bioimageio.core")
    from napari_unet.bioimageio import open_bioimageio

    widget = dock_train(viewer_with_sample, monkeypatch, quick(iterations=40))
    assert not widget._export_button.enabled  # nothing trained yet
    widget._train_button.native.click()
    wait_for_training(qtbot, widget)
    assert widget.result.ready and widget._export_button.enabled
    worker = widget.export(tmp_path / "model")  # (.zip added)
    qtbot.waitUntil(
        lambda: (tmp_path / "model.zip").exists() and widget._export_button.enabled, timeout=60_000
    )
    assert worker is not None and any("exported" in m for m in messages["info"])
    back = open_bioimageio(tmp_path / "model.zip")
    assert back.training["images"] == ["touching cells"] and back.rules == widget.result.rules
