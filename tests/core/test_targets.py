"""Targets and weights (paper eq. 2) against a slow, literal reference."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_unet.core.config import LabelConfig, WeightMapConfig
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.targets import targets_and_weights, touching_pixels, weighted_cross_entropy


def reference(labels, w0=10.0, sigma=5.0, dense=False, background=1, gaps=True):
    """Literal eq. 2: one distance transform per cell over the whole image."""
    labels = np.asarray(labels).astype(np.int64)
    if dense:
        annotated, cells = np.ones(labels.shape, bool), labels.copy()
    else:
        annotated, cells = labels != 0, np.where(labels == background, 0, labels)
    touching = np.zeros(labels.shape, bool)
    height, width = labels.shape
    for y in range(height):
        for x in range(width):
            if cells[y, x] == 0:
                continue
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < height and 0 <= nx < width:
                        other = cells[ny, nx]
                        if other and other != cells[y, x]:
                            touching[y, x] = True
    if gaps:
        cells[touching] = 0
    is_cell = cells > 0
    is_background = annotated & ~is_cell
    n_bg, n_cell = is_background.sum(), is_cell.sum()
    present = int(n_bg > 0) + int(n_cell > 0)
    w_bg = (n_bg + n_cell) / (present * n_bg) if n_bg else 0.0
    w_cell = (n_bg + n_cell) / (present * n_cell) if n_cell else 0.0
    ids = np.unique(cells[is_cell])
    border = np.zeros(labels.shape)
    if len(ids) >= 2:
        distances = np.sort(np.stack([ndi.distance_transform_edt(cells != i) for i in ids]), axis=0)
        border = w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma**2))
    weight = np.where(is_background, w_bg + border, np.where(is_cell, w_cell, 0.0))
    return is_cell.astype(np.uint8), weight, touching & gaps


def assert_matches_reference(labels, config=None, labels_config=None):
    config, labels_config = config or WeightMapConfig(), labels_config or LabelConfig()
    fast = targets_and_weights(labels, config, labels_config)
    target, weight, gaps = reference(
        labels,
        config.w0,
        config.sigma,
        labels_config.dense,
        labels_config.background,
        config.insert_gaps,
    )
    np.testing.assert_array_equal(fast.target, target)
    np.testing.assert_array_equal(fast.gaps, gaps)
    np.testing.assert_allclose(fast.weight, weight, rtol=1e-4, atol=0)
    assert fast.weight.dtype == np.float32 and fast.target.dtype == np.uint8
    return fast


def synthetic(seed, shape=(96, 112), **kwargs):
    return touching_cells(shape, rng=np.random.default_rng(seed), **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_touching_cells_match_the_reference(seed):
    truth = synthetic(seed).truth
    assert touching_pixels(truth).any()  # the case is what it claims to be
    assert_matches_reference(truth, labels_config=LabelConfig(dense=True))


@pytest.mark.parametrize("seed", [3, 4])
def test_sparse_annotations_match_the_reference(seed):
    annotation = synthetic(seed, painted_cells=12).annotation
    fast = assert_matches_reference(annotation)
    assert (fast.weight[annotation == 0] == 0).all()
    assert (fast.weight[annotation > 0] > 0).all()


def test_sparse_touching_painted_cells_get_a_gap():
    labels = np.zeros((40, 50), np.uint16)
    labels[5:35, 2:6] = 1  # a background stroke
    labels[10:20, 10:20] = 2
    labels[10:20, 20:30] = 3  # touches 2 along a vertical line
    fast = assert_matches_reference(labels)
    assert fast.gaps[10:20, 19].all() and fast.gaps[10:20, 20].all()
    assert fast.gaps.sum() == 20
    assert (fast.target[10:20, 19:21] == 0).all()
    # the gap is background sitting between two cells: its weight carries the border term
    gap_weight = fast.weight[15, 19]
    assert gap_weight > fast.weight[20:35, 2:6].max() + 5


def test_cells_cut_by_the_image_border_match_the_reference():
    labels = np.zeros((30, 30), np.int32)
    labels[0:8, 0:12] = 4  # corner
    labels[0:8, 12:25] = 5  # touches 4, runs along the top edge
    labels[20:30, 25:30] = 6  # bottom-right corner
    assert_matches_reference(labels, labels_config=LabelConfig(dense=True))


def test_single_cell_has_no_border_term():
    labels = np.zeros((32, 32), np.int32)
    labels[10:20, 10:20] = 7
    fast = assert_matches_reference(labels, labels_config=LabelConfig(dense=True))
    assert len(np.unique(fast.weight[fast.target == 0])) == 1  # w_c only


def test_no_cells_and_only_background_give_uniform_weights():
    empty = np.zeros((20, 24), np.uint8)
    fast = assert_matches_reference(empty, labels_config=LabelConfig(dense=True))
    assert (fast.weight == 1.0).all() and not fast.target.any()
    background_only = np.ones((20, 24), np.uint8)
    fast = assert_matches_reference(background_only)
    assert (fast.weight == 1.0).all()


def test_two_cells_one_pixel_apart_weigh_w0_exp_minus_4_over_2_sigma_squared():
    labels = np.zeros((20, 21), np.int32)
    labels[5:15, 0:10] = 2
    labels[5:15, 11:21] = 3
    fast = targets_and_weights(
        labels, WeightMapConfig(balance_classes=False), LabelConfig(dense=True)
    )
    # the pixel between them: d1 = d2 = 1
    assert fast.weight[10, 10] == pytest.approx(1 + 10 * np.exp(-4 / 50), rel=1e-6)
    assert fast.weight[10, 5] == 1.0  # inside a cell: w_c only


def test_class_balance_gives_each_class_half_the_weight_and_mean_one():
    labels = synthetic(5).truth
    fast = targets_and_weights(labels, WeightMapConfig(w0=0), LabelConfig(dense=True))
    cell, background = fast.weight[fast.target == 1], fast.weight[fast.target == 0]
    assert cell.sum() == pytest.approx(background.sum(), rel=1e-5)
    assert fast.weight.mean() == pytest.approx(1.0, rel=1e-5)


def test_options_match_the_reference():
    truth = synthetic(6).truth
    for config in (WeightMapConfig(w0=3, sigma=8), WeightMapConfig(insert_gaps=False)):
        assert_matches_reference(truth, config, LabelConfig(dense=True))
    painted = synthetic(7).annotation.astype(np.int32)
    painted[painted == 1] = 9  # background painted with label 9
    painted[painted == 2] = 1  # and a cell labelled 1
    assert_matches_reference(painted, labels_config=LabelConfig(background=9))


def test_huge_label_values_are_handled():
    labels = np.zeros((30, 30), np.uint64)
    labels[5:15, 5:15] = 2**40
    labels[5:15, 15:25] = 2**40 + 7
    fast = targets_and_weights(labels, label_config=LabelConfig(dense=True))
    small_values = (labels > 0).astype(int) + (labels > 2**40).astype(int)
    small = targets_and_weights(small_values, label_config=LabelConfig(dense=True))
    np.testing.assert_allclose(fast.weight, small.weight, rtol=1e-6)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((2, 8, 8), np.uint8), "2D image"),
        (np.full((8, 8), 2.5), "whole numbers"),
        (np.full((8, 8), -3), "must not be negative"),
        (np.zeros((8, 8), np.uint8), "nothing is annotated"),
        (np.full((8, 8), "a"), "must be integers"),
    ],
)
def test_bad_labels_are_explained(labels, message):
    with pytest.raises(ValueError, match=message):
        targets_and_weights(labels)


def test_labels_must_match_the_image():
    with pytest.raises(ValueError, match=r"shape \(8, 8\) but the image is \(8, 9\)"):
        targets_and_weights(np.ones((8, 8), np.uint8), image_shape=(3, 8, 9))


def test_float_labels_with_whole_numbers_are_accepted():
    labels = synthetic(8).annotation
    a = targets_and_weights(labels.astype(np.float32))
    b = targets_and_weights(labels)
    np.testing.assert_array_equal(a.weight, b.weight)


def contour_reference(labels, w0=10.0, sigma=5.0):
    """Literal three-class targets: outline = cell pixels with an 8-neighbour of another
    value inside the image; each class an equal share of the weight; eq. 2's border term
    on background and outline pixels."""
    labels = np.asarray(labels).astype(np.int64)
    annotated, cells = labels != 0, np.where(labels == 1, 0, labels)
    height, width = labels.shape
    target = np.zeros(labels.shape, np.uint8)
    for y in range(height):
        for x in range(width):
            if cells[y, x] == 0:
                continue
            neighbours = [
                cells[y + dy, x + dx]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
                if 0 <= y + dy < height and 0 <= x + dx < width
            ]
            target[y, x] = 2 if any(n != cells[y, x] for n in neighbours) else 1
    counts = [int((annotated & (target == k)).sum()) for k in range(3)]
    present = sum(n > 0 for n in counts)
    weight = np.zeros(labels.shape)
    for k, n in enumerate(counts):
        weight[annotated & (target == k)] = sum(counts) / (present * n) if n else 0.0
    ids = np.unique(cells[cells > 0])
    if len(ids) >= 2:
        distances = np.sort(np.stack([ndi.distance_transform_edt(cells != i) for i in ids]), axis=0)
        border = w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma**2))
        bordering = annotated & (target != 1)
        weight[bordering] += border[bordering]
    return target, weight


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_contour_targets_match_the_reference(seed, dense):
    cells = synthetic(seed, shape=(64, 72))
    labels = cells.truth if dense else cells.annotation
    fast = targets_and_weights(labels, label_config=LabelConfig(dense=dense), outlines=True)
    if dense:  # the reference reads the sparse convention: 0 -> 1 (background), v -> v + 1
        labels = np.where(labels > 0, labels + 1, 1)
    target, weight = contour_reference(labels)
    np.testing.assert_array_equal(fast.target, target)
    np.testing.assert_allclose(fast.weight, weight, rtol=1e-4, atol=1e-6)
    # the gaps are the outline pixels where two cells touch
    np.testing.assert_array_equal(fast.gaps, touching_pixels(np.where(labels == 1, 0, labels)))
    assert (target[fast.gaps] == 2).all()


def test_touching_cells_have_an_outline_between_them():
    labels = np.ones((9, 12), np.int32)
    labels[2:7, 2:6], labels[2:7, 6:10] = 5, 7  # touching along columns 5 | 6
    fast = targets_and_weights(labels, outlines=True)
    assert (fast.target[3:6, 5:7] == 2).all()  # the contact is outline on both sides
    assert (fast.target[3:6, 3:5] == 1).all() and (fast.target[3:6, 7:9] == 1).all()
    # d1 = 0 (inside one cell), d2 = 1 (the other cell next door): w = w_c + w0 exp(-1/50)
    counts = np.bincount(fast.target.ravel(), minlength=3)
    w_outline = counts.sum() / (3 * counts[2])
    assert fast.weight[4, 5] == pytest.approx(w_outline + 10 * np.exp(-1 / 50), rel=1e-4)


def test_matches_a_literal_sum_over_pixels():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 4, generator=g)
    target = torch.randint(0, 3, (2, 5, 4), generator=g)
    weight = torch.rand(2, 5, 4, generator=g) * (torch.rand(2, 5, 4, generator=g) > 0.3)
    total, count = 0.0, 0
    for n in range(2):
        for y in range(5):
            for x in range(4):
                if weight[n, y, x] > 0:
                    p = torch.softmax(logits[n, :, y, x], 0)[target[n, y, x]]
                    total += weight[n, y, x].item() * -math.log(p.item())
                    count += 1
    assert weighted_cross_entropy(logits, target, weight).item() == pytest.approx(
        total / count, rel=1e-5
    )


def test_scale_does_not_depend_on_how_much_is_annotated():
    logits = torch.zeros(1, 2, 8, 8)
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    few = torch.zeros(1, 8, 8)
    few[0, 0, :2] = 1.0
    everything = torch.ones(1, 8, 8)
    assert weighted_cross_entropy(logits, target, few).item() == pytest.approx(math.log(2))
    assert weighted_cross_entropy(logits, target, everything).item() == pytest.approx(math.log(2))


def test_unannotated_tiles_add_nothing_and_never_give_nan():
    logits = torch.randn(2, 2, 6, 6, requires_grad=True)
    target = torch.ones(2, 6, 6, dtype=torch.long)
    weight = torch.zeros(2, 6, 6)
    loss = weighted_cross_entropy(logits, target, weight)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all() and (logits.grad == 0).all()
    weight[0] = 1.0
    one_tile = weighted_cross_entropy(logits[:1], target[:1], weight[:1])
    assert weighted_cross_entropy(logits, target, weight).item() == pytest.approx(one_tile.item())


def test_heavier_pixels_pull_harder():
    logits = torch.zeros(1, 2, 1, 2, requires_grad=True)
    target = torch.ones(1, 1, 2, dtype=torch.long)
    weight = torch.tensor([[[1.0, 10.0]]])
    weighted_cross_entropy(logits, target, weight).backward()
    grad = logits.grad[0, 1, 0].numpy()
    np.testing.assert_allclose(grad[1] / grad[0], 10.0, rtol=1e-6)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="do not fit"):
        weighted_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5), torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="target's shape"):
        weighted_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4), torch.zeros(4, 4))
