"""Segmentation metrics on hand-made cases."""

import itertools

import numpy as np
import pytest

from napari_unet.core.cells.metrics import (
    joined_to_nearest_cell,
    match_instances,
    pixel_error,
    rand_error,
    split_touching_pairs,
    touching_pair_outcomes,
    touching_pairs,
)


def squares(*boxes, shape=(20, 20)):
    labels = np.zeros(shape, np.int32)
    for value, (r0, r1, c0, c1) in enumerate(boxes, start=1):
        labels[r0:r1, c0:c1] = value
    return labels


def test_identical_segmentations_score_perfectly_whatever_the_label_values():
    truth = squares((0, 5, 0, 5), (10, 15, 10, 15))
    prediction = np.where(truth == 1, 7, np.where(truth == 2, 3, 0))
    scores = match_instances(truth, prediction)
    assert (scores.tp, scores.fp, scores.fn) == (2, 0, 0)
    assert scores.f1 == 1.0 and scores.mean_matched_iou == 1.0
    assert pixel_error(truth, prediction) == 0.0 and rand_error(truth, prediction) == 0.0


def test_a_merge_of_two_cells_is_one_miss_and_one_match_at_most():
    truth = squares((0, 5, 0, 5), (0, 5, 5, 10))
    merged = squares((0, 5, 0, 10))
    scores = match_instances(truth, merged)
    # each half has IoU 0.5 with the merged object: one of them matches at 0.5
    assert (scores.tp, scores.fp, scores.fn) == (1, 0, 1)
    assert scores.f1 == pytest.approx(2 / 3)
    assert match_instances(truth, merged, threshold=0.6).tp == 0
    assert pixel_error(truth, merged) == 0.0
    assert rand_error(truth, merged) > 0


def test_iou_and_counts_on_a_shifted_object():
    truth = squares((0, 10, 0, 10))
    shifted = squares((0, 10, 2, 12))  # overlap 80 px, union 120 px
    scores = match_instances(truth, shifted)
    assert scores.mean_matched_iou == pytest.approx(80 / 120)
    assert (scores.tp, scores.fp, scores.fn) == (1, 0, 0)
    assert match_instances(truth, shifted, threshold=0.7).f1 == 0.0
    assert pixel_error(truth, shifted) == pytest.approx(40 / 400)


def test_extra_and_missing_objects():
    truth = squares((0, 4, 0, 4), (10, 14, 10, 14))
    prediction = squares((0, 4, 0, 4), (16, 20, 0, 4), (16, 20, 16, 20))
    scores = match_instances(truth, prediction)
    assert (scores.tp, scores.fp, scores.fn) == (1, 2, 1)
    assert scores.precision == pytest.approx(1 / 3) and scores.recall == 0.5
    empty = np.zeros_like(truth)
    assert match_instances(truth, empty).fn == 2 and match_instances(empty, empty).f1 == 1.0


def test_rand_error_matches_counting_pixel_pairs():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, (4, 5)), rng.integers(0, 4, (4, 5))
    pairs = list(itertools.combinations(range(a.size), 2))
    disagree = sum((a.flat[i] == a.flat[j]) != (b.flat[i] == b.flat[j]) for i, j in pairs)
    assert rand_error(a, b) == pytest.approx(disagree / len(pairs))


def test_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        match_instances(np.zeros((3, 3)), np.zeros((3, 4)))


def test_touching_pairs_within_a_distance():
    truth = squares((2, 6, 2, 6), (2, 6, 6, 10), (2, 6, 13, 17), (12, 16, 2, 6))
    # 1 and 2 share an edge; 2 and 3 are 3 px apart (columns 10-12 empty); 4 is 6 px away
    assert touching_pairs(truth, distance=1) == [(1, 2)]
    assert touching_pairs(truth, distance=4) == [(1, 2), (2, 3)]


def test_split_touching_pairs_counts_pairs_kept_apart():
    truth = squares((2, 6, 2, 6), (2, 6, 6, 10), (12, 16, 2, 6), (12, 16, 6, 10))
    merged_bottom = truth.copy()
    merged_bottom[truth == 4] = 3  # the second pair predicted as one object
    assert split_touching_pairs(truth, truth) == (2, 2)
    assert split_touching_pairs(truth, merged_bottom) == (1, 2)
    missing = np.where(truth == 1, 0, truth)  # a missed cell keeps its pair from counting
    assert split_touching_pairs(truth, missing) == (1, 2)
    assert split_touching_pairs(np.zeros((5, 5), int), np.zeros((5, 5), int)) == (0, 0)
    # (split, merged, total): merged only where a pair is one object; a missed cell is neither
    assert touching_pair_outcomes(truth, truth) == (2, 0, 2)
    assert touching_pair_outcomes(truth, merged_bottom) == (1, 1, 2)
    assert touching_pair_outcomes(truth, missing) == (1, 0, 2)
    half = np.where((truth == 2) & (np.arange(20)[None] >= 8), 1, truth)  # 2 half taken by 1
    assert touching_pair_outcomes(truth, half) == (1, 0, 2)  # 2 is covered by nothing over half


def test_every_pixel_is_joined_to_its_nearest_cell():
    labels = np.zeros((5, 9), np.int32)
    labels[1:4, 1], labels[1:4, 7] = 3, 8  # two cells, membrane and background between
    joined = joined_to_nearest_cell(labels)
    assert (joined[labels > 0] == labels[labels > 0]).all()  # cells keep their pixels
    assert (joined[:, :4] == 3).all() and (joined[:, 5:] == 8).all()  # the rest: the nearer
    assert set(np.unique(joined[:, 4])) <= {3, 8}
    assert (joined_to_nearest_cell(np.zeros((4, 4), np.int32)) == 1).all()  # no cell: one
