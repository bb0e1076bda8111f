"""Shared paint for the training tests."""

import numpy as np
import pytest

from napari_unet.core.config import AugmentConfig


@pytest.fixture
def rods():
    """An image and sparse paint of four rods (6 x 50 px) on painted background."""
    labels = np.ones((60, 60), np.uint8)
    for k in range(4):
        labels[5 + 12 * k : 11 + 12 * k, 5:55] = 2 + k
    return np.random.default_rng(0).random((60, 60)), labels


@pytest.fixture
def still():
    """Augmentation with every change switched off, pixel noise included."""
    return AugmentConfig(
        elastic=False,
        rotate=False,
        flip=False,
        scale=(1, 1),
        gain=(1, 1),
        offset=(0, 0),
        gamma=(1, 1),
        noise=(1, 1),
    )
