"""Where to paint next: flip disagreement and the window it points to."""

import numpy as np
import torch

from napari_unet.core.config import NormalizationConfig, UNetConfig
from napari_unet.core.events import drain
from napari_unet.core.network.model import UNet
from napari_unet.core.uncertainty import flip_disagreement, next_region, window_size


def test_a_mirror_symmetric_model_agrees_with_itself_and_a_random_one_does_not(
    make_threshold_unet,
):
    image = np.random.default_rng(0).uniform(0, 100, (70, 90)).astype(np.float32)
    symmetric = drain(flip_disagreement(make_threshold_unet(2), image, NormalizationConfig(0, 100)))
    assert symmetric.shape == (70, 90) and np.abs(symmetric).max() < 1e-5
    torch.manual_seed(0)
    random = UNet(UNetConfig(depth=2, base_channels=4, dropout=0.0, classes=3)).eval()
    spread = drain(flip_disagreement(random, image, NormalizationConfig(0, 100)))
    assert spread.shape == (70, 90) and spread.dtype == np.float32
    assert 0 < spread.max() <= 0.5 and spread.min() >= 0


def test_the_next_region_is_the_most_uncertain_window_not_painted():
    uncertainty = np.zeros((200, 300), np.float32)
    uncertainty[20:40, 30:50] = 1.0  # most unsure, but painted
    uncertainty[150:170, 250:270] = 0.6  # next: not painted
    uncertainty[100:110, 100:110] = 0.5  # third
    painted = np.zeros(uncertainty.shape, bool)
    painted[10:50, 20:60] = True
    window = next_region(uncertainty, painted, 40)
    rows, columns = window
    assert rows.stop - rows.start == 40 and columns.stop - columns.start == 40
    assert rows.start <= 150 and rows.stop >= 170 and columns.start <= 250 and columns.stop >= 270
    centre = ((rows.start + rows.stop) // 2, (columns.start + columns.stop) // 2)
    rows, columns = next_region(uncertainty, painted, 40, skip=[centre])
    assert rows.start <= 100 and rows.stop >= 110 and columns.start <= 100
    assert next_region(uncertainty, np.ones_like(painted), 40) is None  # all painted


def test_the_window_is_a_few_painted_cells_wide():
    labels = np.zeros((100, 100), np.uint16)
    labels[:5] = 1  # background strokes do not count
    for k, (r, c) in enumerate([(10, 10), (10, 40), (40, 10)]):
        yy, xx = np.ogrid[:100, :100]
        labels[(yy - r) ** 2 + (xx - c) ** 2 <= 36] = k + 2  # radius 6: about 12 px across
    assert 44 <= window_size(labels) <= 52
    assert window_size(np.zeros((10, 10), np.uint16)) == 128  # nothing painted yet
