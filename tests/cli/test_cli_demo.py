"""napari-unet demo."""

import numpy as np
import tifffile

from napari_unet.cli import main
from napari_unet.model_io import load_model


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
