"""Shared paint for the training tests."""

import numpy as np
import pytest


@pytest.fixture
def rods():
    """An image and sparse paint of four rods (6 x 50 px) on painted background."""
    labels = np.ones((60, 60), np.uint8)
    for k in range(4):
        labels[5 + 12 * k : 11 + 12 * k, 5:55] = 2 + k
    return np.random.default_rng(0).random((60, 60)), labels
