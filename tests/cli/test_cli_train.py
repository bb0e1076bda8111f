"""napari-unet train."""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import build_parser, main
from napari_unet.cli.train import train_config
from napari_unet.model_io import load_model


def write_training_pair(folder, cells=True):
    from napari_unet.core.synthetic import touching_cells

    sample = touching_cells((96, 96), rng=np.random.default_rng(0))
    labels = sample.annotation if cells else np.minimum(sample.annotation, 1)
    tifffile.imwrite(folder / "image.tif", sample.image)
    tifffile.imwrite(folder / "labels.tif", labels)
    return folder / "image.tif", folder / "labels.tif"


def test_train_writes_a_model_that_segment_uses(tmp_path, train_command):
    image, labels = write_training_pair(tmp_path)
    model = tmp_path / "model.safetensors"
    args = ["train", "--image", str(image), "--labels", str(labels), "--out", str(model)]
    printed = train_command([*args, "--iterations", "3", "--seed", "1", "--threads", "1"])
    loaded = load_model(model)
    assert loaded.training["steps"] == 3 and loaded.training["config"]["seed"] == 1
    assert loaded.model.config.classes == 3 and loaded.optimizer_state is not None
    assert loaded.training["config"]["paste_neighbours"] is True
    assert loaded.model.config.batch_norm  # round synthetic nuclei: batch normalisation
    assert "trained 3 steps" in printed.out

    paper = tmp_path / "paper.safetensors"
    train_command([*args[:-1], str(paper), "--iterations", "1", "--two-classes"])
    recipe = load_model(paper)
    assert recipe.model.config.classes == 2
    assert recipe.training["config"]["paste_neighbours"] is False  # the paper's recipe
    assert not recipe.model.config.batch_norm

    resumed = tmp_path / "resumed.safetensors"
    train_command([*args[:-1], str(resumed), "--iterations", "2", "--init", str(model)])
    steps = load_model(resumed).optimizer_state["state"][0]["step"]
    assert float(steps) == 5  # the optimiser went on from step 3

    assert main(["segment", str(model), str(image), "--out", str(tmp_path / "out")]) == 0
    assert tifffile.imread(tmp_path / "out" / "image_labels.tif").shape == (96, 96)


def test_train_budget_is_the_one_given_or_steps_and_minutes_by_default(capsys):
    def budget(*extra):
        args = build_parser().parse_args(
            ["train", "--image", "i", "--labels", "l", "--out", "m", *extra]
        )
        config = train_config(args)
        return config.minutes, config.iterations

    assert budget() == (3.0, 450)  # whichever comes first
    assert budget("--minutes", "10") == (10.0, None)
    assert budget("--iterations", "2000") == (None, 2000)
    assert budget("--two-classes", "--iterations", "5") == (None, 5)
    with pytest.raises(SystemExit):  # one or the other
        budget("--minutes", "1", "--iterations", "5")
    assert "not allowed with argument" in capsys.readouterr().err
    for wrong in ("0", "inf", "-1", "nan", "soon"):
        with pytest.raises(SystemExit):
            budget("--minutes", wrong)
        assert "--minutes" in capsys.readouterr().err


def test_train_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    image, labels = write_training_pair(tmp_path, cells=False)
    model = tmp_path / "model.safetensors"
    base = ["train", "--image", str(image), "--out", str(model), "--iterations", "1"]
    for args, message in [
        ([*base, "--labels", str(labels)], "no cell is painted"),
        ([*base, "--labels", str(tmp_path / "nope.tif")], "no such file"),
        ([*base, "--labels", str(labels), "--image", str(image)], "give them in pairs"),
        ([*base, "--labels", str(labels), "--threads", "-1"], "CPU threads must be 1 or more"),
    ]:
        assert main(args) == 1
        last = capsys.readouterr().err.splitlines()[-1]  # (after any progress lines)
        assert last.startswith("napari-unet train: ") and message in last, last
    assert not model.exists()
    with pytest.raises(SystemExit):  # argparse names the choices
        main([*base, "--labels", str(labels), "--preset", "huge"])
    assert "invalid choice: 'huge' (choose from 'light', 'paper')" in capsys.readouterr().err


def test_png_and_colour_files_train_and_segment(
    tmp_path, threshold_model, capsys, two_objects, train_command
):
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
        train_command([*base, "--image", str(tmp_path / f"{name}.png"), "--out", str(model)])
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
    assert "two images would write grey's labels" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written
    colour = str(tmp_path / "colour.png")
    assert main(["segment", str(threshold_model), colour, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "colour.png: the image is in colour" in err and err.count("\n") == 1
