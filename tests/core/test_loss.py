"""The weighted cross-entropy of eq. 1."""

import math

import numpy as np
import pytest
import torch

from napari_unet.core.loss import weighted_cross_entropy


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
