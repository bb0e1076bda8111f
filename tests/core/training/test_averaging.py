"""The mean of the weights over the last part of training: what it averages, from when, and
that training keeps, validates and calibrates that mean."""

import numpy as np
import pytest
import torch

from napari_unet.core.config import TrainConfig, UNetConfig
from napari_unet.core.events import drain
from napari_unet.core.network.model import UNet
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.training import loop, train
from napari_unet.core.training.averaging import WeightAverage


def small(seed, batch_norm=True):
    model = UNet(
        UNetConfig(in_channels=1, classes=3, depth=2, base_channels=4, batch_norm=batch_norm)
    )
    model.reset_parameters(torch.Generator().manual_seed(seed))
    for name, buffer in model.named_buffers():  # batch-norm statistics that differ by seed
        if name.endswith("running_mean"):
            buffer.fill_(seed)
        if name.endswith("num_batches_tracked"):
            buffer.fill_(10 * seed)
    return model


def test_the_mean_starts_at_its_fraction_and_averages_weights_and_statistics():
    average = WeightAverage(0.5)
    models = [small(seed) for seed in range(4)]
    average.update(models[0], 0.3)  # before the start: not counted
    assert average.model is None and average.current(models[0]) is models[0]
    for model, progress in zip(models[1:], (0.5, 0.7, 1.0), strict=True):
        average.update(model, progress)
    assert average.count == 3 and average.model not in models
    states = [m.state_dict() for m in models[1:]]
    for name, mean in average.model.state_dict().items():
        if mean.is_floating_point():
            expected = torch.stack([s[name] for s in states]).mean(0)
            torch.testing.assert_close(mean, expected)
        else:  # counts are not averaged: the latest
            assert torch.equal(mean, states[-1][name])
    running = [v for k, v in average.model.state_dict().items() if k.endswith("running_mean")]
    assert running and all(torch.allclose(v, torch.full_like(v, 2.0)) for v in running)
    assert average.current(models[3]) is average.model
    # the models averaged are left as they were
    assert torch.equal(models[1].state_dict()["head.weight"], small(1).state_dict()["head.weight"])
    average.restart()
    assert average.model is None and average.count == 0


def test_without_a_start_nothing_is_averaged():
    average = WeightAverage(None)
    model = small(0)
    average.update(model, 1.0)
    assert average.model is None and average.current(model) is model


def record_steps(monkeypatch):
    """The weights after each step of the next training."""
    states = []
    original = loop._step

    def step(model, *args, **kwargs):
        loss = original(model, *args, **kwargs)
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return loss

    monkeypatch.setattr(loop, "_step", step)
    return states


def quick(**overrides):
    settings = {"minutes": None, "iterations": 6, "batch_size": 2, "tile_size": 60}
    return TrainConfig(**{**settings, **overrides})


def test_training_keeps_the_mean_of_the_last_half_and_the_last_weights(monkeypatch):
    sample = touching_cells((96, 96), rng=np.random.default_rng(0))
    states = record_steps(monkeypatch)
    config = quick(average_from=0.5, validation_fraction=0.0)  # nothing held back
    result = drain(train([(sample.image, sample.annotation)], config, start=small(0)))
    assert len(states) == 6
    kept = result.model.state_dict()
    for name, value in result.last_model.state_dict().items():
        assert torch.equal(value, states[-1][name])  # the last weights, to resume from
        if value.is_floating_point():  # steps 3-6: progress 0.5 on
            expected = torch.stack([s[name] for s in states[2:]]).mean(0)
            torch.testing.assert_close(kept[name], expected)
    assert not torch.equal(kept["head.weight"], states[-1]["head.weight"])


def test_validation_scores_the_mean_once_it_starts(monkeypatch):
    sample = touching_cells((128, 128), rng=np.random.default_rng(0), painted_cells=14)
    states = record_steps(monkeypatch)
    scored = []
    validate = loop.validate

    def recording(model, *args):
        scored.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return validate(model, *args)

    monkeypatch.setattr(loop, "validate", recording)
    config = quick(iterations=4, average_from=0.5, validate_every=0.0)
    result = drain(train([(sample.image, sample.annotation)], config, start=small(0)))
    assert len(scored) == 4
    assert torch.equal(scored[0]["head.weight"], states[0]["head.weight"])  # step 1: itself
    for k in (1, 2, 3):  # steps 2-4 (progress 0.5 on): the mean from step 2
        expected = torch.stack([s["head.weight"] for s in states[1 : k + 1]]).mean(0)
        torch.testing.assert_close(scored[k]["head.weight"], expected)
    best = result.best_step - 1
    torch.testing.assert_close(
        result.model.state_dict()["head.weight"], scored[best]["head.weight"]
    )


def test_average_from_is_checked():
    with pytest.raises(ValueError, match="average_from"):
        TrainConfig(average_from=1.0)
    with pytest.raises(ValueError, match="average_from"):
        TrainConfig(average_from=-0.1)
    assert TrainConfig(average_from=0.0).average_from == 0.0
