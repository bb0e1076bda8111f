"""The plugin inside a real napari viewer: docking from the manifest, segmenting, errors."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from napari_unet._widgets import _tune as tune_module
from napari_unet._widgets import segment as segment_module
from napari_unet.core.config import UNetConfig
from napari_unet.core.events import TilesDone
from napari_unet.core.network.model import UNet
from napari_unet.core.segment import relabel
from napari_unet.model_io import load_model, save_model


@pytest.fixture
def errors(monkeypatch):
    shown = []
    monkeypatch.setattr(segment_module, "show_error", shown.append)
    return shown


def two_cells_image():
    image = np.full((64, 80), 10.0, np.float32)
    image[8:24, 8:30] = 200.0
    image[36:56, 40:70] = 180.0
    return image


def dock(viewer):
    dock_widget, widget = viewer.window.add_plugin_dock_widget("napari-paint-unet", "Segment layer")
    assert dock_widget.isVisible() or dock_widget.parent() is not None
    return widget


def test_segment_layer_adds_labels_with_the_image_geometry(
    make_napari_viewer, qtbot, tmp_path, make_threshold_unet, errors
):
    viewer = make_napari_viewer()
    image = two_cells_image()
    layer = viewer.add_image(image.copy(), name="cells", scale=(0.5, 0.25), translate=(3, 4))
    widget = dock(viewer)
    assert widget._image.value is layer  # the layer list reaches the widget
    widget._model_path.value = save_model(tmp_path / "t.safetensors", make_threshold_unet(2))

    widget._run.native.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == 2 and widget._run.enabled, timeout=20_000)

    labels = viewer.layers["cells labels"]
    assert labels.data.shape == image.shape
    assert labels.data.max() == 2
    assert np.unique(labels.data[8:24, 8:30]).tolist() == [1]
    assert np.unique(labels.data[36:56, 40:70]).tolist() == [2]
    assert (labels.data[image < 100] == 0).all()
    np.testing.assert_array_equal(labels.scale, layer.scale)
    np.testing.assert_array_equal(labels.translate, layer.translate)
    np.testing.assert_array_equal(layer.data, image)  # the user's layer is untouched
    assert errors == []


def test_segment_layer_reports_errors_and_stays_usable(make_napari_viewer, qtbot, tmp_path, errors):
    viewer = make_napari_viewer()
    widget = dock(viewer)
    widget._run.native.click()
    assert errors and "open an image first" in errors[-1]

    viewer.add_image(two_cells_image(), name="cells")
    widget._run.native.click()  # the file field still empty
    assert errors[-1].startswith("Segment layer: choose a model file (.safetensors) or a")
    assert str(Path.cwd()) not in errors[-1]
    widget._model_path.value = tmp_path / "missing.safetensors"
    widget._run.native.click()
    assert errors[-1] == f"Segment layer: there is no model file {tmp_path / 'missing.safetensors'}"

    rgb_model = UNet(UNetConfig(in_channels=3, depth=2, base_channels=2))
    widget._model_path.value = save_model(tmp_path / "rgb.safetensors", rgb_model)
    widget._run.native.click()
    qtbot.waitUntil(lambda: widget._run.enabled and len(errors) == 4, timeout=20_000)
    assert "3, H, W" in errors[-1]
    assert len(viewer.layers) == 1


def test_no_cells_found_is_said_with_what_to_do(
    make_napari_viewer, qtbot, tmp_path, make_threshold_unet
):
    viewer = make_napari_viewer()
    from napari_unet.core.cells.rules import InstanceRules

    viewer.add_image(two_cells_image(), name="empty")
    widget = dock(viewer)
    widget._model_path.value = save_model(  # rules that drop both cells
        tmp_path / "t.safetensors",
        make_threshold_unet(2),
        training=InstanceRules(min_size=5000).to_dict(),
    )
    widget._run.native.click()
    qtbot.waitUntil(lambda: "empty labels" in viewer.layers and widget._run.enabled, timeout=20_000)
    assert widget._status.value.startswith("empty: 0 cells: nothing in this image passed")
    assert "Tune the cells" in widget._status.value and not widget._tune.native.isHidden()


def test_sample_data_opens_from_the_menu_entry(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-paint-unet", "touching_cells")
    assert [layer.name for layer in viewer.layers] == ["touching cells", "painted cells"]
    assert viewer.layers["painted cells"].data.max() == 13  # background 1, 12 cells


def test_progress_follows_the_tiles_and_cancel_adds_nothing(
    make_napari_viewer, qtbot, tmp_path, make_threshold_unet, errors, monkeypatch
):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((300, 300)).astype(np.float32), name="big")
    widget = dock(viewer)
    widget._model_path.value = save_model(tmp_path / "t.safetensors", make_threshold_unet(1))
    # small tiles: many batches, so progress has steps and Cancel has something to stop
    monkeypatch.setattr("napari_unet.core.network.predict.MAX_TILE", 40)
    widget._run.native.click()
    widget._cancel.native.click()
    qtbot.waitUntil(lambda: widget._run.enabled, timeout=20_000)
    assert len(viewer.layers) == 1 and errors == []
    assert not widget._cancel.enabled

    seen = []
    widget._run.native.click()
    widget.worker.yielded.connect(
        lambda event: seen.append(event.done) if isinstance(event, TilesDone) else None
    )
    qtbot.waitUntil(lambda: len(viewer.layers) == 2 and widget._run.enabled, timeout=60_000)
    assert len(seen) > 3 and seen == sorted(seen)
    assert seen[-1] == widget._progress.max == widget._progress.value
    assert viewer.layers[-1].data.shape == (300, 300)


def test_a_stack_is_segmented_plane_by_plane(
    make_napari_viewer, qtbot, tmp_path, make_threshold_unet
):
    viewer = make_napari_viewer()
    stack = np.stack([two_cells_image(), two_cells_image()[::-1], np.full((64, 80), 10.0)])
    stack[2, 0, 0] = 200.0  # not constant; a 1-pixel object below the minimum size
    viewer.add_image(stack.astype(np.float32), name="stack")
    widget = dock(viewer)
    widget._model_path.value = save_model(tmp_path / "t.safetensors", make_threshold_unet(2))
    bar = []  # (the bar's share after each batch of tiles, with the status line)
    widget._run.native.click()
    widget.worker.yielded.connect(
        lambda event: (
            bar.append((widget._progress.value / widget._progress.max, widget._status.value))
            if isinstance(event, TilesDone)
            else None
        )
    )
    qtbot.waitUntil(lambda: len(viewer.layers) == 2 and widget._run.enabled, timeout=20_000)
    labels = viewer.layers["stack labels"].data
    assert labels.shape == (3, 64, 80)
    assert [sorted(set(np.unique(p)) - {0}) for p in labels] == [[1, 2], [3, 4], []]
    # the bar fills once over the whole stack, not once per plane
    shares = [share for share, _ in bar]
    assert shares == sorted(shares) and shares[-1] == 1.0
    assert all(share <= 2 / 3 for share, status in bar if "plane 3 of 3" not in status)
    assert {status for _, status in bar} == {f"segmenting plane {z} of 3" for z in (1, 2, 3)}


def test_multiscale_and_dask_layers_are_segmented_at_full_resolution(
    make_napari_viewer, qtbot, tmp_path, make_threshold_unet
):
    import dask.array as da

    viewer = make_napari_viewer()
    image = two_cells_image()
    viewer.add_image([image, image[::2, ::2]], multiscale=True, name="pyramid")
    viewer.add_image(da.from_array(image, chunks=(32, 32)), name="lazy")
    widget = dock(viewer)
    widget._model_path.value = save_model(tmp_path / "t.safetensors", make_threshold_unet(2))
    for name in ("pyramid", "lazy"):
        widget._image.value = viewer.layers[name]
        widget._run.native.click()
        qtbot.waitUntil(
            lambda name=name: f"{name} labels" in viewer.layers and widget._run.enabled,
            timeout=20_000,
        )
        labels = np.asarray(viewer.layers[f"{name} labels"].data)
        assert labels.shape == image.shape and labels.max() == 2


def test_a_colour_layer_is_segmented_as_the_model_takes_it(
    make_napari_viewer, qtbot, tmp_path, make_threshold_unet, errors
):
    viewer = make_napari_viewer()
    grey = two_cells_image().astype(np.uint8)
    layer = viewer.add_image(np.stack([grey] * 3, -1), name="cells")  # grey saved in colour
    assert layer.rgb
    widget = dock(viewer)
    widget._model_path.value = save_model(tmp_path / "t.safetensors", make_threshold_unet(2))
    widget._run.native.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == 2 and widget._run.enabled, timeout=20_000)
    labels = viewer.layers["cells labels"].data
    assert labels.shape == grey.shape and labels.max() == 2
    assert errors == []


def test_segment_layer_takes_bioimageio_packages_and_asks_before_running_their_code(
    make_napari_viewer, qtbot, tmp_path, make_threshold_unet, make_foreign_package, errors
):
    pytest.importorskip("bioimageio.core")
    from napari_unet.bioimageio import export_bioimageio

    viewer = make_napari_viewer()
    image = two_cells_image()
    viewer.add_image(image.copy(), name="cells")
    widget = dock(viewer)
    model = save_model(tmp_path / "t.safetensors", make_threshold_unet(2))
    package = export_bioimageio(model, tmp_path / "t.zip", test_image=image)
    widget._model_path.value = package
    assert widget._trust.native.isHidden()  # ours: read from its safetensors file, nothing runs
    widget._run.native.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == 2 and widget._run.enabled, timeout=30_000)
    assert viewer.layers["cells labels"].data.max() == 2 and errors == []

    viewer.layers.remove("cells labels")
    foreign, _ = make_foreign_package(package, tmp_path / "foreign.zip")
    widget._model_path.value = foreign
    assert not widget._trust.native.isHidden() and not widget._trust.value
    widget._run.native.click()  # without the user's word, its code does not run
    qtbot.waitUntil(lambda: widget._run.enabled and bool(errors), timeout=30_000)
    assert "runs the code it carries" in errors[0] and len(viewer.layers) == 1
    assert widget._status.value.startswith("not segmented: foreign.zip is a bioimage.io model")
    widget._trust.value = True
    widget._run.native.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == 2 and widget._run.enabled, timeout=30_000)
    assert viewer.layers["cells labels"].data.max() == 2 and len(errors) == 1
    widget._model_path.value = model
    assert widget._trust.native.isHidden() and not widget._trust.value


def test_a_layer_larger_than_memory_fills_a_store_block_by_block_and_resumes(
    make_napari_viewer, qtbot, tmp_path, make_outline_unet, errors, monkeypatch
):
    """A dask layer over the size limit (here made small) is labelled block by block into
    a store in the cache folder, shown as it fills; Cancel keeps the blocks done, and
    Segment again finishes from them with the cells of the whole image."""
    pytest.importorskip("ome_zarr")
    import dask.array as da

    from napari_unet import slides
    from napari_unet._sample_data import sample_cells
    from napari_unet.core.events import drain
    from napari_unet.core.segment import segment

    monkeypatch.setattr(slides, "BIG_IMAGE", 100 * 100)
    monkeypatch.setattr(slides, "DEFAULT_BLOCK", 100)
    monkeypatch.setattr(slides, "TILE", 100)
    image = np.tile(sample_cells().image, (2, 2))[:300, :420]
    viewer = make_napari_viewer()
    viewer.add_image(da.from_array(image, chunks=(128, 128)), name="slide", scale=(0.5, 0.5))
    widget = dock(viewer)
    widget._model_path.value = save_model(tmp_path / "outline.safetensors", make_outline_unet())

    show = type(widget)._show_block

    def cancel_in_the_cells_pass(self, layer, event):
        show(self, layer, event)
        if getattr(event, "phase", None) == "cells" and event.done == 2:
            self._stop()

    monkeypatch.setattr(type(widget), "_show_block", cancel_in_the_cells_pass)
    widget._run.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    live = viewer.layers["slide labels"]
    store = Path(live.metadata["napari_unet_store"])
    assert store.parent.parent == Path(os.environ["NAPARI_UNET_CACHE_DIR"])  # the cache
    assert np.asarray(live.data[:100, :]).max() > 0  # the first blocks' cells are shown
    assert not np.asarray(live.data[200:, :]).any()  # the last ones not yet
    assert tuple(live.scale) == (0.5, 0.5) and errors == []

    monkeypatch.setattr(type(widget), "_show_block", show)
    widget._run.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    labels = viewer.layers["slide labels"]
    assert labels.multiscale and errors == []
    loaded = load_model(widget._model_path.value)
    whole = drain(
        segment(loaded.model, image, loaded.normalization, rules=loaded.rules, tile_size=100)
    ).labels
    found = np.asarray(labels.data[0])
    assert np.array_equal(found > 0, whole > 0)
    assert len(np.unique(found)) == len(np.unique(whole))


def test_cells_are_tuned_without_the_network_and_the_values_kept_in_the_model(
    make_napari_viewer, qtbot, tmp_path, make_outline_unet, errors, monkeypatch
):
    from napari_unet.core.cells.rules import InstanceRules
    from napari_unet.core.synthetic import touching_cells

    viewer = make_napari_viewer()
    image = touching_cells((256, 256), rng=np.random.default_rng(5)).image
    viewer.add_image(image, name="cells")
    widget = dock(viewer)
    rules = InstanceRules(min_size=10, neck_ratio=0.7)
    path = save_model(tmp_path / "o.safetensors", make_outline_unet(), training=rules.to_dict())
    widget._model_path.value = path
    assert not widget._tune.visible
    widget._run.native.click()
    qtbot.waitUntil(lambda: "cells labels" in viewer.layers and widget._run.enabled, timeout=20_000)
    labels = viewer.layers["cells labels"]
    first = labels.data.copy()
    tune = widget._tune
    assert not tune.native.isHidden() and tune.rules() == rules
    assert f"{int(first.max())} cells" in widget._status.value  # count and sizes said

    runs = []  # the network must not run again while tuning
    monkeypatch.setattr(segment_module, "segment", lambda *a, **k: runs.append(1))
    areas = np.bincount(first.ravel())[1:]
    cutoff = int(np.median(areas))
    tune._min_size.value = cutoff
    qtbot.waitUntil(lambda: labels.data.max() < first.max(), timeout=10_000)
    assert np.bincount(labels.data.ravel())[1:].min() >= cutoff
    assert "redrawn in" in tune._status.value and runs == []
    seconds = float(tune._status.value.split("redrawn in ")[1].split(" s")[0])
    assert seconds < 1.0  # a 256 px image: far below a second

    tune._reset.native.click()  # the model's values draw the first cells again
    qtbot.waitUntil(lambda: np.array_equal(labels.data, first), timeout=10_000)

    tune._neck.value = 0.0
    qtbot.waitUntil(lambda: "redrawn" in tune._status.value and not tune.busy, timeout=10_000)
    tune._keep.native.click()
    assert load_model(path).rules == InstanceRules(min_size=10, neck_ratio=0.0)

    labels.data[0:5, 0:5] = 999  # edited by hand: tuning adds a layer, loses nothing
    labels.data = labels.data
    tune._min_size.value = 12
    qtbot.waitUntil(lambda: "cells labels (tuned)" in viewer.layers, timeout=10_000)
    assert (viewer.layers["cells labels"].data[0:5, 0:5] == 999).all()

    # a core is cut at necks or parted at dips: moving one above 0 sets the other to 0
    tune._neck.value = 0.5
    tune._dip.value = 0.3
    assert tune._neck.value == 0.0 and tune.rules().dip == 0.3
    tune._neck.value = 0.4
    assert tune._dip.value == 0.0 and tune.rules().neck_ratio == 0.4
    qtbot.waitUntil(lambda: not tune._timer.isActive() and not tune.busy, timeout=10_000)
    assert tune._status.value.endswith(
        "; Part at dips set to 0: cores are cut at necks or parted at dips"
    )

    # the cut along membranes (cells that tile the image) is switched like the sliders
    redrawn_with = []
    monkeypatch.setattr(
        tune_module, "relabel", lambda kept, r: redrawn_with.append(r) or relabel(kept, r)
    )
    assert not tune._borders.value and not tune.native.isHidden()
    tune._borders.value = True
    assert tune.rules() == dataclasses.replace(rules, neck_ratio=0.4, min_size=12, borders=True)
    qtbot.waitUntil(lambda: bool(redrawn_with) and not tune.busy, timeout=10_000)
    assert redrawn_with == [tune.rules()]
    drawn = viewer.layers["cells labels (tuned)"].data
    assert np.array_equal(drawn, relabel(tune._kept, tune.rules()))
    tune._show_rules(InstanceRules(borders=True))  # a model that cuts shows it ticked
    assert tune._borders.value and tune.rules().borders

    # cells inside cells: joined as the model says, and switched like the others
    assert tune._enclosed.value and not tune._enclosed.native.isHidden()
    assert tune.rules().join_enclosed
    redrawn_with.clear()
    tune._enclosed.value = False
    assert not tune.rules().join_enclosed
    qtbot.waitUntil(lambda: bool(redrawn_with) and not tune.busy, timeout=10_000)
    assert redrawn_with == [tune.rules()]
    tune._show_rules(InstanceRules(join_enclosed=False))
    assert not tune._enclosed.value

    # how convex pieces cut at a neck must be to join again: the model's value shown
    # (three decimals, as calibrated), moved like the others
    tune._show_rules(dataclasses.replace(rules, join_solidity=0.904))
    assert tune._join.value == 0.904 and tune.rules().join_solidity == 0.904
    redrawn_with.clear()
    tune._join.value = 0.95
    qtbot.waitUntil(lambda: bool(redrawn_with) and not tune.busy, timeout=10_000)
    assert redrawn_with == [dataclasses.replace(rules, join_solidity=0.95)]
    drawn = viewer.layers["cells labels (tuned)"].data
    assert np.array_equal(drawn, relabel(tune._kept, tune.rules()))
    tune._show_rules(InstanceRules(join_solidity=0.3))  # below the slider's range: kept
    assert tune.rules().join_solidity == 0.3
