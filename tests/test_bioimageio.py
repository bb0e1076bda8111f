"""bioimage.io packages: export passes bioimageio.core's own test, our packages come back
exactly, packages from elsewhere segment through bioimageio.core, bad ones are named."""

import zipfile

import numpy as np
import pytest
import yaml

from napari_unet._sample_data import sample_cells
from napari_unet.bioimageio import (
    ForeignModel,
    UntrustedPackage,
    card,
    export_bioimageio,
    open_bioimageio,
    open_for_training,
)
from napari_unet.cli import main
from napari_unet.core.config import TrainConfig, UNetConfig
from napari_unet.core.events import drain
from napari_unet.core.network.model import UNet
from napari_unet.core.network.predict import predict_image
from napari_unet.core.training import train
from napari_unet.model_io import load_model, save_trained

pytest.importorskip("bioimageio.core")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model file trained for a few steps on the sample, and its package."""
    folder = tmp_path_factory.mktemp("bioimageio")
    sample = sample_cells()
    start = UNet(UNetConfig(classes=3, depth=3, base_channels=4, batch_norm=True))
    config = TrainConfig(minutes=None, iterations=3, batch_size=2, tile_size=100)
    result = drain(train([(sample.image, sample.annotation)], config, start=start))
    model = save_trained(folder / "model.safetensors", result, images=["sample.tif"])
    package = export_bioimageio(model, folder / "model.zip", test_image=sample.image)
    return model, package, folder


def test_an_exported_package_passes_bioimageio_cores_test(trained):
    from bioimageio.core import test_model

    _, package, _ = trained
    summary = test_model(str(package))
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
    assert {"unet_layers.py", "weights.pt", "weights_torchscript.pt", "README.md"} <= names
    assert rdf["format_version"].startswith("0.5") and rdf["cite"][0]["doi"].startswith("10.1007")
    (axis_y,) = [a for a in rdf["inputs"][0]["axes"] if a.get("id") == "y"]
    assert axis_y["size"] == {"min": 44, "step": 4}  # the valid sizes of a 3-level network
    (out_y,) = [a for a in rdf["outputs"][0]["axes"] if a.get("id") == "y"]
    assert out_y["size"]["offset"] == -2 * 20  # the halo, cropped by the network
    (preprocessing,) = [p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_range"]
    assert (
        preprocessing["kwargs"]["min_percentile"],
        preprocessing["kwargs"]["max_percentile"],
    ) == (
        1.0,
        99.8,
    )


def test_the_package_carries_the_model_card(trained):
    _, package, _ = trained
    facts = card(package)
    assert facts["training"]["images"] == ["sample.tif"] and facts["training"]["steps"] == 3
    assert facts["training"]["painted_cells"] == 12 and facts["package_version"]
    assert facts["created"] and set(facts["rules"]) >= {"min_size", "neck_ratio", "flips"}


def test_our_package_comes_back_as_the_same_model(trained):
    model, package, _ = trained
    original, back = load_model(model), open_bioimageio(package)
    assert back.rules == original.rules and back.model.config == original.model.config
    image = sample_cells().image
    np.testing.assert_allclose(
        predict_image(back.model, image, back.normalization),
        predict_image(original.model, image, original.normalization),
        atol=1e-5,
    )
    config = TrainConfig(minutes=None, iterations=1, batch_size=2, tile_size=100)
    paint = sample_cells().annotation
    again = drain(train([(image, paint)], config, start=open_for_training(package)))
    assert again.steps == 1 and again.model.config == original.model.config


def test_a_package_from_elsewhere_segments_through_bioimageio_core(trained, make_foreign_package):
    model, package, folder = trained
    foreign, _ = make_foreign_package(package, folder / "foreign.zip")
    with pytest.raises(UntrustedPackage, match="runs the code it carries"):
        open_bioimageio(foreign)  # its code runs only on the user's word
    opened = open_bioimageio(foreign, run_its_code=True)
    assert isinstance(opened, ForeignModel)
    original = load_model(model)
    image = sample_cells().image[:120, :150]
    probabilities = opened.probabilities(image)
    expected = predict_image(original.model, image, original.normalization)
    assert probabilities.shape == expected.shape
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)  # (bioimageio's eps)
    labels = drain(opened.segment(np.stack([image, image]))).labels
    assert labels.shape == (2, *image.shape) and labels.dtype == np.uint16
    with pytest.raises(ValueError, match="from elsewhere: it can segment, but its architecture"):
        open_for_training(foreign)


def test_the_command_line_runs_a_foreign_package_only_when_trusted(
    trained, tmp_path, capsys, make_foreign_package
):
    import tifffile

    _, package, _ = trained
    foreign, _ = make_foreign_package(package, tmp_path / "foreign.zip")
    tifffile.imwrite(tmp_path / "cells.tif", sample_cells().image[:100, :120])
    args = ["segment", str(foreign), str(tmp_path / "cells.tif"), "--out", str(tmp_path / "out")]
    assert main(args) == 1
    assert "--trust-package" in capsys.readouterr().err
    assert not (tmp_path / "out" / "cells_labels.tif").exists()
    assert main([*args, "--trust-package"]) == 0
    assert tifffile.imread(tmp_path / "out" / "cells_labels.tif").shape == (100, 120)


def test_packages_we_cannot_use_are_named_in_one_line(trained, tmp_path, make_foreign_package):
    _, package, _ = trained
    not_a_package = tmp_path / "photos.zip"
    with zipfile.ZipFile(not_a_package, "w") as archive:
        archive.writestr("cat.txt", "meow")
    with pytest.raises(ValueError, match=r"photos.zip is not a bioimage.io package"):
        open_bioimageio(not_a_package)
    foreign, rdf = make_foreign_package(package, tmp_path / "foreign.zip")
    for change, message in [
        ({"format_version": "0.9.0"}, "in bioimage.io format 0.9.0, newer than the installed"),
        ({"weights": {"onnx": {"source": "weights.pt", "opset_version": 15}}}, "as onnx"),
    ]:
        edited = tmp_path / "edited.zip"
        with zipfile.ZipFile(foreign) as source, zipfile.ZipFile(edited, "w") as target:
            for name in source.namelist():
                data = source.read(name)
                if name == "rdf.yaml":
                    data = yaml.safe_dump({**rdf, **change}).encode()
                target.writestr(name, data)
        with pytest.raises(ValueError, match=message) as error:
            open_bioimageio(edited, run_its_code=True)
        assert "\n" not in str(error.value)


def test_the_command_line_exports_and_segments_with_a_package(trained, tmp_path, capsys):
    import tifffile

    model, _, _ = trained
    package = tmp_path / "cli.zip"
    assert main(["export", str(model), "--bioimageio", str(package)]) == 0
    assert "bioimage.io model package" in capsys.readouterr().out
    assert main(["export", str(model), "--bioimageio", str(package)]) == 1  # exists
    assert "add --overwrite" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "cells.tif", sample_cells().image)
    args = ["segment", str(package), str(tmp_path / "cells.tif"), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    from_package = tifffile.imread(tmp_path / "out" / "cells_labels.tif")
    args[1], args[-1] = str(model), str(tmp_path / "out2")
    assert main(args) == 0
    np.testing.assert_array_equal(
        from_package, tifffile.imread(tmp_path / "out2" / "cells_labels.tif")
    )


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("t", "napari-paint-unet t"),
        ("HeLa nuclei, 20x!", "HeLa nuclei 20x"),
        ("a" * 80, "a" * 64),
        ("ecoli_v2", "ecoli_v2"),
    ],
)
def test_package_names_are_made_acceptable_to_bioimageio(wanted, expected):
    from napari_unet.bioimageio import _package_name

    assert _package_name(wanted) == expected
