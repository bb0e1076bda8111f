"""The napari-unet command line."""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import _parser, _train_config, main
from napari_unet.core.config import preset
from napari_unet.core.model import UNet
from napari_unet.model_io import load_model, save_model


def test_info_describes_a_preset(capsys):
    assert main(["info", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "31,030,658" in out and "halo:            92 px" in out
    assert "188 + 16 k px" in out and "524 -> 340" in out


def test_info_describes_a_model_file(tmp_path, capsys):
    model = UNet(preset("light", in_channels=2))
    path = save_model(tmp_path / "m.safetensors", model, training={"flips": True})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "in_channels:     2" in out and "low_percentile" in out and "napari-unet" in out
    assert "'flips': True" in out  # how the file's model segments


def test_errors_are_one_line_and_exit_non_zero(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    assert main(["info", "--preset", "huge"]) == 1
    assert "choose one of light, paper" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["segment-everything"])
    assert exit_info.value.code == 2


def test_demo_headless_runs_the_pipeline_on_the_sample(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(["demo", "--headless", "--out", str(out), "--device", "cpu", "--minutes", "0.1"]) == 0
    )
    image = tifffile.imread(out / "image.tif")
    labels = tifffile.imread(out / "labels.tif")
    probability = tifffile.imread(out / "cell-probability.tif")
    assert image.shape == labels.shape == probability.shape == (256, 256)
    assert labels.dtype == np.uint16 and 0.0 <= probability.min() <= probability.max() <= 1.0
    assert len(np.unique(tifffile.imread(out / "painted.tif"))) == 2 + 12  # 0, 1, 12 cells
    assert (out / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_model(out / "demo-model.safetensors").training["steps"] > 0
    printed = capsys.readouterr().out
    assert "steps in 0.1 min" in printed and "cells in" in printed


def test_demo_without_a_display_falls_back_to_headless(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["demo", "--out", str(tmp_path), "--minutes", "0.02"]) == 0
    assert "no display found" in capsys.readouterr().out
    assert (tmp_path / "labels.tif").exists()


@pytest.fixture
def threshold_model(tmp_path, make_threshold_unet):
    return save_model(tmp_path / "threshold.safetensors", make_threshold_unet(2))


def two_objects(shape=(50, 60)):
    image = np.full(shape, 10, np.uint16)
    image[5:15, 5:15] = 200
    image[30:45, 30:50] = 180
    return image


def test_segment_writes_label_tiffs_for_tiff_and_zarr(tmp_path, threshold_model, capsys):
    import zarr

    tiff = tmp_path / "cells.tif"
    tifffile.imwrite(tiff, two_objects())
    stack = tmp_path / "stack.ome.tif"
    tifffile.imwrite(stack, np.stack([two_objects(), two_objects()[::-1]]))
    store = tmp_path / "big.zarr"
    array = zarr.open(str(store), mode="w", shape=(50, 60), chunks=(16, 16), dtype="uint16")
    array[:] = two_objects()
    out = tmp_path / "out"
    argv = ["segment", str(threshold_model), str(tiff), str(stack), str(store), "--out", str(out)]
    assert main([*argv, "--probabilities", "--tile-size", "100"]) == 0
    labels = tifffile.imread(out / "cells_labels.tif")
    assert labels.shape == (50, 60) and labels.max() == 2
    np.testing.assert_array_equal(tifffile.imread(out / "big_labels.tif"), labels)
    stacked = tifffile.imread(out / "stack_labels.tif")
    assert stacked.shape == (2, 50, 60) and stacked.max() == 4  # unique across planes
    probability = tifffile.imread(out / "cells_probability.tif")
    np.testing.assert_array_equal(probability > 0.5, labels > 0)
    printed = capsys.readouterr().out
    assert "cells.tif: 2 objects" in printed and "stack.ome.tif: 4 objects" in printed


def test_segment_fails_in_one_line_on_bad_input(tmp_path, threshold_model, capsys):
    out = tmp_path / "out"
    assert (
        main(["segment", str(threshold_model), str(tmp_path / "nope.tif"), "--out", str(out)]) == 1
    )
    assert capsys.readouterr().err.strip() == (
        f"napari-unet segment: no such image: {tmp_path / 'nope.tif'}"
    )
    assert not out.exists()  # nothing written
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff at all")
    assert main(["segment", str(threshold_model), str(broken), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-unet segment: cannot read") and "\n" not in err
    rgb_model = save_model(tmp_path / "rgb.safetensors", UNet(preset("light", in_channels=3)))
    tiff = tmp_path / "grey.tif"
    tifffile.imwrite(tiff, two_objects())
    assert main(["segment", str(rgb_model), str(tiff), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "grey.tif: this model takes images of shape (3, H, W)" in err and "\n" not in err


def test_segment_can_split_merged_cells_with_a_watershed(tmp_path, threshold_model):
    yy, xx = np.mgrid[:40, :60]
    discs = ((yy - 20) ** 2 + (xx - 20) ** 2 < 121) | ((yy - 20) ** 2 + (xx - 38) ** 2 < 121)
    tifffile.imwrite(tmp_path / "pair.tif", (discs * 200 + 10).astype(np.uint16))
    for flags, objects in (([], 1), (["--watershed"], 2)):
        out = tmp_path / f"out{len(flags)}"
        assert (
            main(
                [
                    "segment",
                    str(threshold_model),
                    str(tmp_path / "pair.tif"),
                    "--out",
                    str(out),
                    *flags,
                ]
            )
            == 0
        )
        assert tifffile.imread(out / "pair_labels.tif").max() == objects


def test_terminal_progress_names_the_plane_and_the_tiles(capsys):
    from napari_unet.cli import _TerminalProgress
    from napari_unet.core.events import PlaneDone, TilesDone

    progress = _TerminalProgress("stack", planes=2)
    for event in (TilesDone(1, 3), TilesDone(3, 3), PlaneDone(1, 2), TilesDone(2, 3)):
        progress(event)
    assert capsys.readouterr().err.split("\r")[1:] == [
        "stack: plane 1/2, tiles 1/3",
        "stack: plane 1/2, tiles 3/3",
        "stack: plane 2/2, tiles 2/3",
    ]


def test_training_progress_shows_the_device_and_each_validation_at_once(capsys):
    from napari_unet.cli import _TrainingProgress
    from napari_unet.core.events import TrainingStarted, TrainStep, Validation

    progress = _TrainingProgress(live=True)
    progress(TrainingStarted("cpu", "float32", cells=20, validation_cells=5, input_size=276))
    progress(TrainStep(step=9, loss=0.5, learning_rate=1e-3, elapsed=12.0, progress=1.0))
    progress(Validation(step=9, elapsed=12.0, f1=0.8, precision=1.0, recall=0.7, mean_iou=0.9))
    err = capsys.readouterr().err
    assert err.startswith("training on cpu, float32: 20 painted cells, 5 held back")
    assert err.split("\r")[1:] == [
        "[####################] 100 %  step 9  loss 0.500  12 s",
        "[####################] 100 %  step 9  loss 0.500  validation F1 0.80  12 s",
    ]
    alone = TrainingStarted("cuda", "bfloat16", cells=3, validation_cells=0, input_size=1)
    assert alone.summary() == "training on cuda, bfloat16: 3 painted cells"  # the widget's too
    _TrainingProgress(live=False)(
        TrainingStarted("cpu", "float32", 3, 0, 1, warnings=("pair 1: use --dense",))
    )
    assert capsys.readouterr().err.splitlines()[1] == "warning: pair 1: use --dense"


def write_training_pair(folder, cells=True):
    from napari_unet.core.synthetic import touching_cells

    sample = touching_cells((96, 96), rng=np.random.default_rng(0))
    labels = sample.annotation if cells else np.minimum(sample.annotation, 1)
    tifffile.imwrite(folder / "image.tif", sample.image)
    tifffile.imwrite(folder / "labels.tif", labels)
    return folder / "image.tif", folder / "labels.tif"


def test_train_writes_a_model_that_segment_uses(tmp_path, capsys):
    image, labels = write_training_pair(tmp_path)
    model = tmp_path / "model.safetensors"
    args = ["train", "--image", str(image), "--labels", str(labels), "--out", str(model)]
    assert main([*args, "--iterations", "3", "--seed", "1"]) == 0
    loaded = load_model(model)
    assert loaded.training["steps"] == 3 and loaded.training["config"]["seed"] == 1
    assert loaded.model.config.classes == 3 and loaded.optimizer_state is not None
    assert loaded.training["config"]["paste_neighbours"] is True
    assert loaded.model.config.batch_norm  # round synthetic nuclei: batch normalisation
    assert "trained 3 steps" in capsys.readouterr().out

    paper = tmp_path / "paper.safetensors"
    assert main([*args[:-1], str(paper), "--iterations", "1", "--two-classes"]) == 0
    recipe = load_model(paper)
    assert recipe.model.config.classes == 2
    assert recipe.training["config"]["paste_neighbours"] is False  # the paper's recipe
    assert not recipe.model.config.batch_norm

    resumed = tmp_path / "resumed.safetensors"
    assert main([*args[:-1], str(resumed), "--iterations", "2", "--init", str(model)]) == 0
    steps = load_model(resumed).optimizer_state["state"][0]["step"]
    assert float(steps) == 5  # the optimiser went on from step 3

    assert main(["segment", str(model), str(image), "--out", str(tmp_path / "out")]) == 0
    assert tifffile.imread(tmp_path / "out" / "image_labels.tif").shape == (96, 96)


def test_train_budget_is_the_one_given_or_steps_and_minutes_by_default(capsys):
    def budget(*extra):
        args = _parser().parse_args(
            ["train", "--image", "i", "--labels", "l", "--out", "m", *extra]
        )
        config = _train_config(args)
        return config.minutes, config.iterations

    assert budget() == (3.0, 450)  # whichever comes first
    assert budget("--minutes", "10") == (10.0, None)
    assert budget("--iterations", "2000") == (None, 2000)
    assert budget("--two-classes", "--iterations", "5") == (None, 5)
    with pytest.raises(SystemExit):  # one or the other
        budget("--minutes", "1", "--iterations", "5")
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="minutes = 0.0 must be > 0"):
        budget("--minutes", "0")


def test_train_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    image, labels = write_training_pair(tmp_path, cells=False)
    model = tmp_path / "model.safetensors"
    base = ["train", "--image", str(image), "--out", str(model), "--iterations", "1"]
    for args, message in [
        ([*base, "--labels", str(labels)], "no cell is painted"),
        ([*base, "--labels", str(tmp_path / "nope.tif")], "no such file"),
        ([*base, "--labels", str(labels), "--image", str(image)], "give them in pairs"),
        ([*base, "--labels", str(labels), "--preset", "huge"], "unknown preset"),
    ]:
        assert main(args) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not model.exists()


def test_png_and_colour_files_train_and_segment(tmp_path, threshold_model, capsys):
    import imageio.v3 as iio

    from napari_unet.core.synthetic import touching_cells

    def rgba(red, green, blue):
        return np.dstack([red, green, blue, np.full_like(red, 255)])

    sample = touching_cells((96, 96), rng=np.random.default_rng(0))
    low, high = sample.image.min(), sample.image.max()
    grey = np.round(255 * (sample.image - low) / (high - low)).astype(np.uint8)
    iio.imwrite(tmp_path / "cells.png", rgba(grey, grey, grey))  # grey saved in colour
    iio.imwrite(tmp_path / "colour.png", rgba(grey, grey // 2, grey))
    iio.imwrite(tmp_path / "painted.png", sample.annotation.astype(np.uint16))
    base = ["train", "--labels", str(tmp_path / "painted.png"), "--iterations", "1"]
    for name, channels in [("cells", 1), ("colour", 3)]:
        model = tmp_path / f"{name}.safetensors"
        assert main([*base, "--image", str(tmp_path / f"{name}.png"), "--out", str(model)]) == 0
        assert load_model(model).model.config.in_channels == channels

    iio.imwrite(tmp_path / "rgb.png", np.stack([two_objects().astype(np.uint8)] * 3, -1))
    tifffile.imwrite(tmp_path / "grey.tif", two_objects().astype(np.uint8))
    out = tmp_path / "out"
    images = [str(tmp_path / "rgb.png"), str(tmp_path / "grey.tif")]
    assert main(["segment", str(threshold_model), *images, "--out", str(out)]) == 0
    labels = tifffile.imread(out / "rgb_labels.tif")
    assert labels.shape == (50, 60) and labels.max() == 2
    np.testing.assert_array_equal(labels, tifffile.imread(out / "grey_labels.tif"))

    coded = tmp_path / "coded.png"  # labels saved as colours
    iio.imwrite(coded, np.stack([sample.annotation.astype(np.uint8)] * 3, -1))
    capsys.readouterr()
    argv = [*base, "--image", str(tmp_path / "cells.png"), "--out", str(tmp_path / "x")]
    assert main([*argv[:2], str(coded), *argv[3:]]) == 1
    err = capsys.readouterr().err
    assert "coded.png is a colour image" in err and err.count("\n") == 1
    (tmp_path / "grey.png").write_bytes((tmp_path / "rgb.png").read_bytes())
    same_name = [str(tmp_path / "grey.tif"), str(tmp_path / "grey.png")]
    assert main(["segment", str(threshold_model), *same_name, "--out", str(tmp_path / "o")]) == 1
    assert "two images would write grey_labels.tif" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written
    colour = str(tmp_path / "colour.png")
    assert main(["segment", str(threshold_model), colour, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "colour.png: the image is in colour" in err and err.count("\n") == 1
