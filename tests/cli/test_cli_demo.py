"""napari-unet demo: the whole pipeline on the sample, checked against its truth."""

import numpy as np
import tifffile

from napari_unet._sample_data import sample_cells
from napari_unet.cli import main
from napari_unet.cli.demo import DEFAULT_OUT, EXPECTED_F1, check
from napari_unet.core.cells.metrics import split_touching_pairs
from napari_unet.model_io import load_model


def test_an_undertrained_demo_writes_its_files_and_fails_its_check_loudly(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--headless", "--out", str(out), "--device", "cpu", "--steps", "5"]) == 1
    image = tifffile.imread(out / "image.tif")
    labels = tifffile.imread(out / "labels.tif")
    probability = tifffile.imread(out / "cell-probability.tif")
    assert image.shape == labels.shape == probability.shape == (256, 256)
    assert labels.dtype == np.uint16 and 0.0 <= probability.min() <= probability.max() <= 1.0
    assert len(np.unique(tifffile.imread(out / "painted.tif"))) == 2 + 12  # 0, 1, 12 cells
    assert (out / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_model(out / "demo-model.safetensors").training["steps"] == 5
    captured = capsys.readouterr()
    assert "training          5 steps in" in captured.out and "cells in" in captured.out
    assert "BELOW what the demo should reach" in captured.out
    assert "it trained 5" in captured.err.splitlines()[-1]


def test_the_demo_check_passes_the_truth_and_fails_a_merge():
    truth = sample_cells().truth
    ok, line = check(truth, truth)
    assert ok and line.startswith("F1 1.000 against the sample's truth") and "as expected" in line
    assert "; 0 merged)" in line
    merged = np.where(truth > 0, 1, 0)  # every cell one object
    assert not check(merged, truth)[0] and not check(truth, merged)[0]
    _, pairs = split_touching_pairs(truth, truth, distance=1)
    assert f"0 of {pairs} touching pairs split (0 %; {pairs} merged)" in check(truth, merged)[1]
    assert EXPECTED_F1 >= 0.95  # what docs/results.md and the README say the demo shows


def test_demo_without_a_display_falls_back_to_headless(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["demo", "--out", str(tmp_path), "--steps", "1"]) == 1
    assert "no display found" in capsys.readouterr().out
    assert (tmp_path / "labels.tif").exists()


def test_the_demo_writes_outside_the_repository_by_default():
    from pathlib import Path

    repository = Path(__file__).resolve().parents[2]
    assert repository not in DEFAULT_OUT.resolve().parents
