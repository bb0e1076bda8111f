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


def test_cells_disagree_where_a_map_cuts_merges_or_misses_them_not_along_outlines():
    from napari_unet.core.uncertainty import label_disagreement

    rows, columns = np.ogrid[:60, :90]

    def disc(r, c, radius):
        return (rows - r) ** 2 + (columns - c) ** 2 <= radius**2

    first = np.zeros((60, 90), np.int32)
    first[disc(15, 15, 8)] = 1
    first[disc(15, 45, 8)] = 2
    first[disc(15, 60, 8)] = 3  # touches 2 (and covers a rim of it)
    first[disc(45, 20, 8)] = 4
    assert not label_disagreement([first, first, first]).any()

    grown = first.copy()
    grown[(grown == 0) & np.roll(first == 1, 1, axis=1)] = 1  # an outline a pixel off
    assert not label_disagreement([first, grown]).any()

    cut = first.copy()
    cut[(first == 1) & (columns > 17)] = 9  # cell 1 cut in two
    merged = np.where(first == 3, 2, first)  # 3 merged into 2
    missed = np.where(first == 4, 0, first)  # 4 left out
    spread = label_disagreement([first, cut, merged, missed])
    assert spread.dtype == np.float32 and spread.max() == np.float32(1 / 3)
    assert spread[15, 20] > 0 and spread[15, 10] == 0  # the smaller piece of the cut cell
    assert (spread[first == 4] > 0).mean() > 0.9  # the missed cell
    assert (spread[first == 2] > 0).mean() > 0.9  # the smaller of the merged pair
    assert not spread[first == 3].any()  # the larger one is still its cell
    assert spread[first == 0].sum() == 0  # nothing in the background


def test_a_sure_model_is_unsure_only_of_the_cells_its_rules_drop(make_threshold_unet):
    """A mirror-symmetric model makes the same cells from all four predictions: nothing is
    unsure, unless its rules drop cells that its probability calls cells."""
    from napari_unet.core.cells.rules import InstanceRules
    from napari_unet.core.uncertainty import cell_disagreement

    rows, columns = np.ogrid[:80, :100]
    image = np.zeros((80, 100), np.float32)
    image[(rows - 20) ** 2 + (columns - 25) ** 2 <= 100] = 100  # a cell of 317 px
    image[(rows - 55) ** 2 + (columns - 70) ** 2 <= 16] = 100  # one of 49 px
    net, normalization = make_threshold_unet(2), NormalizationConfig(0, 100)
    kept = drain(cell_disagreement(net, image, normalization, InstanceRules(min_size=10)))
    assert kept.shape == (80, 100) and kept.dtype == np.float32 and not kept.any()
    small_dropped = drain(cell_disagreement(net, image, normalization, InstanceRules(min_size=60)))
    assert (small_dropped[image > 0] == 1).mean() > 0.9 * 49 / (49 + 317)
    assert small_dropped[55, 70] == 1 and small_dropped[20, 25] == 0


def test_a_crop_already_at_the_networks_scale_is_not_shrunk_again(monkeypatch):
    """The live preview hands in crops of training planes, which are at the network's
    scale and normalised already: they are predicted as they are."""
    from napari_unet.core import uncertainty

    seen = []

    def predicting(model, image, normalization=None, **options):
        seen.append((image.shape, options["intensity"]))
        yield from ()
        return np.stack([np.ones(image.shape[-2:]), np.zeros(image.shape[-2:])])

    monkeypatch.setattr(uncertainty, "predict_tiled", predicting)
    model = UNet(UNetConfig(depth=2, base_channels=4, classes=2, scale=0.5))
    crop = np.zeros((60, 70), np.float32)
    unsure = drain(
        uncertainty.cell_disagreement(model, crop, intensity=(0.0, 1.0), at_network_scale=True)
    )
    assert unsure.shape == (60, 70) and seen == [((60, 70), (0.0, 1.0))] * 4
    seen.clear()
    drain(uncertainty.cell_disagreement(model, crop, intensity=(0.0, 1.0)))  # an image
    assert seen == [((30, 35), (0.0, 1.0))] * 4  # (shrunk to the network's scale)
