"""The calibration at the end of training: the window the dips of cells that tile the
image are chosen on, and what it costs."""

import numpy as np
import torch

from napari_unet.core.cells.rules import DIPS, CellShape, calibrate_dip
from napari_unet.core.config import TrainConfig, UNetConfig
from napari_unet.core.network.model import UNet
from napari_unet.core.training import validation
from napari_unet.core.training.trainset import TrainingSet
from napari_unet.core.training.validation import (
    DIP_WINDOW,
    calibrated_cells,
    calibrated_rules,
    dip_window,
    most_painted_window,
)


def crescents(shape, corners):
    """Paint (internal convention: 1 background, 2... cells) of C-shaped cells, the
    cells of an EM section, at ``corners`` (top, left) of 40 x 40 px squares."""
    yy, xx = np.mgrid[:40, :40]
    ring = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 15**2) & ((yy - 20) ** 2 + (xx - 27) ** 2 > 11**2)
    labels = np.zeros(shape, np.int64)
    for k, (top, left) in enumerate(corners):
        square = labels[top : top + 40, left : left + 40]
        square[:] = 1
        square[ring] = 2 + k
    return labels


def training_set(pairs):
    config = TrainConfig(minutes=None, iterations=1, tile_size=60)
    return TrainingSet(pairs, config, outlines=True, scale=1.0, rng=np.random.default_rng(0))


def test_the_dip_window_is_the_paint_of_the_most_painted_plane_at_most_a_window_wide():
    rng = np.random.default_rng(0)
    little = crescents((100, 100), [(30, 30)])
    spread = crescents((1300, 90), [(0, 0), (600, 40), (1250, 10), (1260, 50)])
    data = training_set([(rng.random((100, 100)), little), (rng.random((1300, 90)), spread)])
    plane, (rows, columns) = dip_window(data)
    assert data.planes[plane].labels.shape == (1300, 90)  # the plane with the most paint
    assert (columns.start, columns.stop) == (0, 90)  # the paint's extent
    # 1300 rows of paint: the window that holds three of the four painted squares
    assert rows.stop - rows.start == DIP_WINDOW and (rows.start, rows.stop) == (276, 1300)
    one = training_set([(rng.random((100, 100)), little)])
    assert dip_window(one) == (0, (slice(30, 70), slice(30, 70)))
    # kept until the paint changes (each validation asks), then found again
    one.planes[0].labels[:] = 0  # (not through the training set: not seen)
    assert dip_window(one) == (0, (slice(30, 70), slice(30, 70)))
    assert one.apply_labels({0: crescents((100, 100), [(50, 55)])})
    assert dip_window(one) == (0, (slice(50, 90), slice(55, 95)))


def brute_force_most_paint(painted, size):
    """The most paint any window of at most ``size`` px a side over the paint holds."""
    rows, columns = np.nonzero(painted)
    heights = min(np.ptp(rows) + 1, size), min(np.ptp(columns) + 1, size)
    return max(
        painted[r : r + heights[0], c : c + heights[1]].sum()
        for r in range(rows.min(), rows.max() - heights[0] + 2)
        for c in range(columns.min(), columns.max() - heights[1] + 2)
    )


def test_the_most_painted_window_holds_the_most_paint():
    rng = np.random.default_rng(0)
    for _ in range(20):
        painted = rng.random(rng.integers(5, 70, 2)) < rng.uniform(0.005, 0.1)
        if not painted.any():
            continue
        size = int(rng.integers(4, 50))
        exact = most_painted_window(painted, size, grid=1)
        extents = [np.ptp(axis) + 1 for axis in np.nonzero(painted)]
        assert [s.stop - s.start for s in exact] == [min(e, size) for e in extents]
        assert painted[exact].sum() == brute_force_most_paint(painted, size)
        coarse = most_painted_window(painted, size, grid=4)  # (a corner on a grid: <= it)
        assert 0 < painted[coarse].sum() <= painted[exact].sum()


def test_cells_that_tile_the_image_get_a_dip_chosen_on_the_window(monkeypatch):
    rng = np.random.default_rng(1)
    corners = [(r, c) for r in (0, 45, 90) for c in (0, 45, 90)]
    data = training_set([(rng.random((130, 130)), crescents((130, 130), corners))])
    assert data.cells.parts_at_dips(outlines=True)
    model = UNet(UNetConfig(classes=3, depth=2, base_channels=4))
    model.reset_parameters(torch.Generator().manual_seed(0))
    seen = []

    def spy(model, crop, **options):
        made = yield from real(model, crop, **options)
        seen.append((crop.shape, made))
        return made

    real = validation.mirrored_probabilities
    monkeypatch.setattr(validation, "mirrored_probabilities", spy)
    rules, _, _ = calibrated_rules(model, data, "cpu")
    ((shape, mirrored),) = seen  # one window, predicted four times
    _, (rows, columns) = dip_window(data)
    assert shape[-2:] == (rows.stop - rows.start, columns.stop - columns.start) == (130, 130)
    assert len(mirrored) == 4 and rules.neck_ratio == 0.0
    assert rules.dip == calibrate_dip(mirrored, rules) and rules.dip in DIPS
    # the window counts in the time training keeps for the calibration
    with_window = calibrated_cells(model, data)
    monkeypatch.setattr(CellShape, "parts_at_dips", lambda self, outlines: False)
    assert with_window > calibrated_cells(model, data) > 0
