"""The same work on every device this machine has: the CPU always, CUDA and Apple MPS where
present (skipped otherwise; ``benchmarks/gpu_check.sh`` runs them on a GPU machine). Each
test compares what a device computes with the float32 CPU result."""

import copy

import numpy as np
import pytest
import torch

from napari_unet.core.cells.metrics import match_instances
from napari_unet.core.cells.rules import InstanceRules
from napari_unet.core.config import TrainConfig, UNetConfig
from napari_unet.core.events import TrainingStarted, TrainStep, drain
from napari_unet.core.network.model import UNet
from napari_unet.core.network.predict import predict_image, predict_tiled
from napari_unet.core.segment import segment
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.training.loop import train
from napari_unet.model_io import load_model, save_trained

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
    pytest.param(
        "mps",
        marks=pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS device"),
    ),
]
# largest difference of probabilities from the CPU's float32 ones: CUDA convolutions may
# round through TF32 (float32) or bfloat16 (autocast, the default precision there)
FLOAT32 = {"cpu": 1e-5, "cuda": 5e-3, "mps": 1e-3}
AUTO = {"cpu": 1e-5, "cuda": 0.05, "mps": 1e-3}


def random_unet(seed=0):
    config = UNetConfig(classes=3, depth=2, base_channels=4, dropout=0.0, batch_norm=True)
    model = UNet(config)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model.eval()


@pytest.mark.parametrize("device", DEVICES)
def test_prediction_on_the_device_matches_the_cpu(device):
    image = np.random.default_rng(1).random((70, 90)).astype(np.float32)
    model = random_unet()
    on_cpu = copy.deepcopy(model)
    reference = predict_image(on_cpu, image)
    mirrored = predict_image(on_cpu, image, flips=True)
    assert not np.allclose(reference, mirrored, atol=1e-3)  # (so that flips are checked)

    whole = predict_image(model, image, device=device)
    tiled = drain(predict_tiled(model, image, tile_size=60, device=device, precision="float32"))
    auto = drain(predict_tiled(model, image, tile_size=60, device=device, flips=True))
    assert np.abs(whole - reference).max() <= FLOAT32[device]
    assert np.abs(tiled - reference).max() <= FLOAT32[device]
    assert np.abs(auto - mirrored).max() <= AUTO[device]
    assert np.allclose(auto.sum(axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_training_on_the_device_returns_cpu_models_and_leaves_the_given_one(device):
    sample = touching_cells((96, 96), rng=np.random.default_rng(0))
    given = random_unet()
    before = copy.deepcopy(given.state_dict())
    config = TrainConfig(minutes=None, iterations=6, batch_size=2, tile_size=60)
    events = []
    result = drain(
        train([(sample.image, sample.annotation)], config, start=given, device=device),
        events.append,
    )

    started = next(e for e in events if isinstance(e, TrainingStarted))
    assert isinstance(started, TrainingStarted) and started.device.startswith(device)
    expected = {"cpu": {"float32"}, "cuda": {"bfloat16", "float16"}, "mps": {"float32"}}
    assert started.precision in expected[device]
    losses = [e.loss for e in events if isinstance(e, TrainStep)]
    assert len(losses) == 6 and all(np.isfinite(loss) and loss > 0 for loss in losses)
    for model in (result.model, result.last_model):
        assert not model.training
        assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert not torch.equal(result.last_model.head.weight, before["head.weight"])  # it learned
    for name, value in given.state_dict().items():  # fine-tuning copies the model it is given
        assert value.device.type == "cpu" and torch.equal(value, before[name]), name


@pytest.mark.parametrize("device", DEVICES)
def test_segmentation_on_the_device_matches_the_cpu(device, make_threshold_unet):
    sample = touching_cells((120, 140), rng=np.random.default_rng(3))
    rules = InstanceRules(flips=True)
    reference = drain(segment(make_threshold_unet(depth=2), sample.image, rules=rules)).labels
    labels = drain(
        segment(make_threshold_unet(depth=2), sample.image, rules=rules, device=device)
    ).labels
    assert reference.max() >= 5  # cells were found, so the comparison means something
    assert labels.shape == reference.shape and labels.dtype == reference.dtype
    assert match_instances(reference, labels).f1 == 1.0
    assert ((labels > 0) == (reference > 0)).mean() >= 0.995  # bfloat16 rounding at edges


@pytest.mark.parametrize("device", DEVICES)
def test_training_on_the_device_resumes_from_a_file_written_on_the_cpu(device, tmp_path):
    sample = touching_cells((96, 96), rng=np.random.default_rng(0))
    pairs = [(sample.image, sample.annotation)]
    config = TrainConfig(minutes=None, iterations=3, batch_size=2, tile_size=60)
    first = drain(train(pairs, config, start=random_unet(), device="cpu"))
    loaded = load_model(save_trained(tmp_path / "m.safetensors", first))
    again = drain(train(pairs, config, start=loaded, device=device))
    state = again.optimizer_state["state"]
    assert state and all(float(s["step"]) == 6 for s in state.values())  # Adam went on
    assert all(torch.isfinite(p).all() for p in again.last_model.parameters())
    saved = save_trained(tmp_path / "again.safetensors", again)  # device tensors written
    assert load_model(saved).training["steps"] == 3


def test_cpu_threads_applies_inside_and_restores_after_even_on_error():
    from napari_unet.core.network.device import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(1):
        raise RuntimeError("training failed")
    assert torch.get_num_threads() == before
    with cpu_threads(0):  # 0: torch's own choice, left alone
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="1 or more"), cpu_threads(-2):
        pass
