"""The training budget: progress, learning rate, and the time kept after the last step."""

import math

import pytest

from napari_unet.core.config import TrainConfig
from napari_unet.core.training.budget import (
    CALIBRATION_COST,
    finishing_time,
    learning_rate,
    progress,
)


def test_the_time_budget_keeps_a_reserve_for_what_follows_the_last_step():
    one_minute = TrainConfig(minutes=1.0)
    assert progress(one_minute, 10, 30.0) == 0.5
    assert progress(one_minute, 10, 25.0, reserve=10.0) == 0.5  # 50 s for steps
    assert progress(one_minute, 10, 50.0, reserve=10.0) == 1.0
    assert progress(one_minute, 10, 15.0, reserve=100.0) == 0.5  # at most half the budget
    both = TrainConfig(minutes=1.0, iterations=40)
    assert progress(both, 30, 15.0, reserve=10.0) == 0.75  # the larger fraction
    # after the last step: a validation of 3 cells, then the calibration on 12
    assert math.isclose(finishing_time(0.1, 3, 12), 0.1 * (3 + CALIBRATION_COST * 12))
    assert math.isclose(finishing_time(0.1, 3, 0), 0.3)


def test_the_learning_rate_falls_along_a_cosine_to_a_tenth():
    config = TrainConfig(learning_rate=1e-3)
    assert learning_rate(config, 0.0) == pytest.approx(1e-3)
    assert learning_rate(config, 0.5) == pytest.approx(0.55e-3)
    assert learning_rate(config, 1.0) == pytest.approx(1e-4)
