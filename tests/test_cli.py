"""The napari-unet command line."""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.core.config import preset
from napari_unet.core.model import UNet
from napari_unet.model_io import save_model


def test_info_describes_a_preset(capsys):
    assert main(["info", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "31,030,658" in out and "halo:            92 px" in out
    assert "188 + 16 k px" in out and "524 -> 340" in out


def test_info_describes_a_model_file(tmp_path, capsys):
    path = save_model(tmp_path / "m.safetensors", UNet(preset("light", in_channels=2)))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "in_channels:     2" in out and "low_percentile" in out and "napari-unet" in out


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
    assert main(["demo", "--headless", "--out", str(out), "--device", "cpu"]) == 0
    image = tifffile.imread(out / "image.tif")
    labels = tifffile.imread(out / "labels.tif")
    probability = tifffile.imread(out / "cell-probability.tif")
    assert image.shape == labels.shape == probability.shape == (256, 256)
    assert labels.dtype == np.uint16 and 0.0 <= probability.min() <= probability.max() <= 1.0
    assert tifffile.imread(out / "painted.tif").max() == 9
    assert (out / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "s per megapixel" in capsys.readouterr().out


def test_demo_without_a_display_falls_back_to_headless(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert "no display found" in capsys.readouterr().out
    assert (tmp_path / "labels.tif").exists()
