"""The training dock's loss plot: its scales (pure functions) and that it draws on them."""

import math

import numpy as np
import pytest

from napari_unet._widgets._plot import (
    F1_COLOUR,
    LOSS_COLOUR,
    LossPlot,
    decades,
    running_mean,
    step_ticks,
)


def test_decades_hold_every_loss_and_ignore_noise_within_one():
    assert decades([0.31, 0.35, 0.33, 0.30]) == (-1, 0)  # noise: one decade, not min-max
    low, high = decades([2.4, 0.8, 0.05, 0.011])
    assert (low, high) == (-2, 1)
    assert decades([1.0]) == (0, 1)  # a single value still gets a decade


@pytest.mark.parametrize("last", [1, 4, 12, 99, 300, 1234, 50_000])
def test_step_ticks_are_round_and_few(last):
    ticks = step_ticks(last)
    assert ticks[0] == 0 and ticks[-1] <= last
    assert 2 <= len(ticks) <= 5
    spacing = ticks[1] - ticks[0]
    assert all(b - a == spacing for a, b in zip(ticks, ticks[1:], strict=False))
    assert spacing / 10 ** math.floor(math.log10(spacing)) in (1, 2, 5)
    assert last - ticks[-1] < spacing


def test_running_mean_starts_unbiased_and_smooths():
    assert running_mean([0.5] * 5) == pytest.approx([0.5] * 5)
    noisy = [1.0 + (0.2 if i % 2 else -0.2) for i in range(200)]
    smooth = running_mean(noisy)
    assert np.std(smooth[50:]) < np.std(noisy[50:]) / 5
    assert np.mean(smooth[50:]) == pytest.approx(1.0, abs=0.02)


def _colour_columns(image, colour):
    """Columns of the grabbed plot's drawing area (inside the axes, so not the labels)
    where a pixel is near ``colour``."""
    array = image.toImage().convertToFormat(image.toImage().Format.Format_RGB32)
    width, height = array.width(), array.height()
    pixels = np.array(array.constBits().asarray(width * height * 4)).reshape(height, width, 4)
    rgb = pixels[..., [2, 1, 0]].astype(int)
    target = np.array([colour.red(), colour.green(), colour.blue()])
    inside = rgb[20 : height - 20, 36 : width - 30]
    return 36 + np.nonzero((np.abs(inside - target).sum(-1) < 40).any(0))[0]


def test_plot_draws_loss_across_the_steps_and_f1_on_its_own_scale(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(400, 160)
    plot.show()
    for step in range(1, 101):
        plot.add_loss(step, 1.0 / step)
    plot.add_f1(50, 0.5)
    plot.add_f1(100, 0.9)
    image = plot.grab()
    loss_columns = _colour_columns(image, LOSS_COLOUR)
    # the curve runs from the left axis (x = 34) to the right one (400 - 28)
    assert loss_columns.min() < 45 and loss_columns.max() > 360
    assert len(_colour_columns(image, F1_COLOUR)) > 0
