"""napari-unet info, and how every command reports errors."""

import pytest

from napari_unet.cli import main
from napari_unet.core.config import preset
from napari_unet.core.network.model import UNet
from napari_unet.model_io import save_model


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


def test_info_says_how_a_model_was_trained(tmp_path, capsys):
    training = {
        "steps": 35,
        "ended": "minutes",
        "best_step": 30,
        "best_f1": 1.0,
        "validation_cells": 4,
        "config": {"iterations": 450, "minutes": 3.0, "seed": 2},
    }
    path = save_model(tmp_path / "m.safetensors", UNet(preset("light")), training=training)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "trained:         35 steps, ended by its minutes (budget: 450 steps or 3 minutes, " in out
    )
    assert "validation:      F1 1.00 on 4 held-back painted cells, best at step 30" in out
    assert "written:         20" in out  # the date the file was written


def test_errors_are_one_line_and_exit_non_zero(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    assert main(["info", "--preset", "huge"]) == 1
    assert "choose one of light, paper" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["segment-everything"])
    assert exit_info.value.code == 2
