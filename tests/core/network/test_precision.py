"""Mixed precision where it is measured faster: the choice, the measurement's side
effects (none), and training and prediction in bfloat16."""

import numpy as np
import pytest
import torch

from napari_unet.core import training as train_module
from napari_unet.core.config import TrainConfig, UNetConfig
from napari_unet.core.events import TrainingStarted, TrainStep, drain
from napari_unet.core.network import precision as precision_module
from napari_unet.core.network.model import UNet
from napari_unet.core.network.precision import (
    BFLOAT16,
    CPU_PREDICTION,
    CPU_TRAINING,
    Precision,
    cache_file,
    choose_precision,
    named_precision,
    native_cpu_bfloat16,
    will_measure,
)
from napari_unet.core.network.predict import predict_tiled
from napari_unet.core.synthetic import touching_cells

CPU = torch.device("cpu")
SHAPE = (2, 1, 60, 60)


def tiny(batch_norm=True):
    config = UNetConfig(depth=2, base_channels=4, classes=3, batch_norm=batch_norm)
    model = UNet(config)
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


@pytest.fixture
def measured(monkeypatch):
    """A CPU with native bfloat16 on which the passes take the given seconds; returns
    the calls made to the (fake) measurement."""
    calls = []

    def setup(float32_seconds, bfloat16_seconds):
        def fake(model, shape, precision, training, clock):
            calls.append((precision, training))
            return bfloat16_seconds if precision == BFLOAT16 else float32_seconds

        monkeypatch.setattr(precision_module, "native_cpu_bfloat16", lambda: True)
        monkeypatch.setattr(precision_module, "_time_passes", fake)
        monkeypatch.setattr(precision_module, "_measured", {})
        cache_file().unlink(missing_ok=True)  # a machine that never measured
        return calls

    return setup


def test_without_native_bfloat16_the_cpu_runs_float32_without_measuring(monkeypatch):
    monkeypatch.setattr(precision_module, "native_cpu_bfloat16", lambda: False)
    monkeypatch.setattr(precision_module, "_time_passes", pytest.fail)
    assert choose_precision(tiny(), CPU, SHAPE, training=True) == CPU_TRAINING
    assert choose_precision(tiny(), CPU, SHAPE, training=False) == CPU_PREDICTION
    assert CPU_TRAINING.memory_format == torch.contiguous_format
    assert CPU_PREDICTION.memory_format == torch.channels_last
    assert isinstance(native_cpu_bfloat16(), bool)


def test_bfloat16_is_chosen_only_when_clearly_faster_and_measured_once(measured):
    calls = measured(float32_seconds=1.0, bfloat16_seconds=0.4)
    assert choose_precision(tiny(), CPU, SHAPE, training=True) == BFLOAT16
    assert choose_precision(tiny(), CPU, SHAPE, training=True) == BFLOAT16
    assert calls == [(CPU_TRAINING, True), (BFLOAT16, True)]  # remembered
    # another pass (prediction) or shape is measured anew
    assert choose_precision(tiny(), CPU, SHAPE, training=False) == BFLOAT16
    assert calls[2:] == [(CPU_PREDICTION, False), (BFLOAT16, False)]

    calls = measured(float32_seconds=1.0, bfloat16_seconds=0.9)  # within the margin
    assert choose_precision(tiny(), CPU, SHAPE, training=True) == CPU_TRAINING
    calls = measured(float32_seconds=1.0, bfloat16_seconds=10.0)  # emulated
    assert choose_precision(tiny(), CPU, SHAPE, training=False) == CPU_PREDICTION


def test_precision_names():
    assert CPU_TRAINING.name == "float32" and BFLOAT16.name == "bfloat16"
    assert Precision(torch.float16).name == "float16"
    assert choose_precision(tiny(), torch.device("mps"), SHAPE, training=True).name == "float32"


@pytest.mark.parametrize("training", [True, False])
def test_the_measurement_leaves_the_model_and_the_random_state_alone(training):
    model = tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.random.get_rng_state()
    # the warm-up starts at 0 and is not timed; then passes of 2 s and 1 s
    clock = iter([0.0, 10.0, 12.0, 20.0, 21.0]).__next__
    seconds = precision_module._time_passes(model, SHAPE, CPU_TRAINING, training, clock)
    assert seconds == 1.0  # the fastest timed pass
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert model.training and all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():  # batch-norm statistics included
        assert torch.equal(value, before[name]), name


def test_training_and_prediction_run_in_the_chosen_precision(monkeypatch):
    monkeypatch.setattr("napari_unet.core.training.loop.choose_precision", lambda *a, **k: BFLOAT16)
    sample = touching_cells((96, 96), rng=np.random.default_rng(0))
    config = TrainConfig(minutes=None, iterations=2, batch_size=2, tile_size=60)
    seen = []
    result = drain(train_module.train([(sample.image, sample.annotation)], config), seen.append)
    assert isinstance(seen[1], TrainingStarted) and seen[1].precision == "bfloat16"
    assert all(np.isfinite(e.loss) for e in seen if isinstance(e, TrainStep))
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # weights stay float32

    full = drain(predict_tiled(result.model, sample.image, precision="float32"))
    half = drain(predict_tiled(result.model, sample.image, precision="bfloat16"))
    assert 0 < np.abs(full - half).max() < 0.1  # bfloat16 did run, and close to float32


def test_a_measurement_is_remembered_for_this_machine_across_processes(measured):
    calls = measured(float32_seconds=1.0, bfloat16_seconds=0.4)
    assert will_measure(tiny(), CPU, SHAPE, training=True)
    assert choose_precision(tiny(), CPU, SHAPE, training=True) == BFLOAT16
    assert len(calls) == 2 and cache_file().is_file()
    precision_module._measured.clear()  # as a new process starts
    assert not will_measure(tiny(), CPU, SHAPE, training=True)
    precision_module._time_passes = pytest.fail  # (restored by monkeypatch)
    assert choose_precision(tiny(), CPU, SHAPE, training=True) == BFLOAT16  # not measured again
    measured(float32_seconds=0.4, bfloat16_seconds=1.0)
    cache_file().write_text("{not json")  # a damaged cache is measured anew, not an error
    assert choose_precision(tiny(), CPU, SHAPE, training=True) == CPU_TRAINING


def test_a_precision_can_be_named():
    assert named_precision("float32", CPU, training=True) == CPU_TRAINING
    assert named_precision("float32", CPU, training=False) == CPU_PREDICTION
    assert named_precision("bfloat16", CPU, training=True) == BFLOAT16
    with pytest.raises(ValueError, match="float16 runs on GPUs only"):
        named_precision("float16", CPU, training=False)
    with pytest.raises(ValueError, match="precision 'double' is not known"):
        named_precision("double", CPU, training=False)
