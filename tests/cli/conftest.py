"""Shared helpers of the command-line tests."""

import numpy as np
import pytest

from napari_unet.model_io import save_model


@pytest.fixture
def threshold_model(tmp_path, make_threshold_unet):
    return save_model(tmp_path / "threshold.safetensors", make_threshold_unet(2))


@pytest.fixture
def two_objects():
    """An image maker: two bright objects on a dark background."""
    return _two_objects


def _two_objects(shape=(50, 60)):
    image = np.full(shape, 10, np.uint16)
    image[5:15, 5:15] = 200
    image[30:45, 30:50] = 180
    return image
