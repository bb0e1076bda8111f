"""Model files: a round trip, and nothing in a file can run code."""

import json
import os
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from napari_unet import __version__
from napari_unet.core.cells.rules import InstanceRules
from napari_unet.core.config import LabelConfig, NormalizationConfig, UNetConfig
from napari_unet.core.network.model import UNet
from napari_unet.model_io import FORMAT_VERSION, ModelFileError, load_model, save_model

CONFIG = UNetConfig(in_channels=2, classes=3, depth=2, base_channels=4, dropout=0.25)


@pytest.fixture
def model():
    net = UNet(CONFIG)
    net.reset_parameters(torch.Generator().manual_seed(0))
    return net


def test_round_trip_keeps_weights_outputs_and_description(tmp_path, model):
    path = save_model(
        tmp_path / "m.safetensors",
        model,
        normalization=NormalizationConfig(2.0, 99.0),
        labels=LabelConfig(dense=True),
        training={"steps": 12, "loss": [0.9, 0.5]},
    )
    loaded = load_model(path)
    assert loaded.model.config == CONFIG
    assert not loaded.model.training  # eval mode: dropout off
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
    x = torch.rand(1, 2, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model.eval()(x))
    assert loaded.normalization == NormalizationConfig(2.0, 99.0)
    assert loaded.labels == LabelConfig(dense=True)
    assert loaded.training == {"steps": 12, "loss": [0.9, 0.5]}
    assert loaded.package_version == __version__


def test_the_description_is_plain_json_in_the_safetensors_header(tmp_path, model):
    path = save_model(tmp_path / "m.safetensors", model)
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    description = json.loads(header["__metadata__"]["napari_unet"])
    assert description["format_version"] == FORMAT_VERSION
    assert description["architecture"] == CONFIG.to_dict()
    assert description["normalization"] == {"low_percentile": 1.0, "high_percentile": 99.8}
    assert description["labels"] == {"dense": False, "background": 1}
    assert description["package_version"] == __version__


class _RunsCode:
    """Unpickling this object runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(ModelFileError, match="pickle.*can run arbitrary code"):
        load_model(evil)
    assert not marker.exists()


def test_a_torch_save_checkpoint_with_code_in_it_is_refused(tmp_path, model):
    marker = tmp_path / "pwned"
    evil = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": model.state_dict(), "hook": _RunsCode(marker)}, evil)
    assert zipfile.is_zipfile(evil)
    with pytest.raises(ModelFileError, match="torch.save checkpoint"):
        load_model(evil)
    assert not marker.exists()


def test_a_header_length_that_starts_like_a_pickle_still_loads(tmp_path, model):
    # the 8-byte header length comes first; a length of 128 + 256 k starts with 0x80,
    # the byte a pickle starts with
    for padding in range(512):  # the header is padded to 8 bytes: 64 lengths
        path = save_model(tmp_path / "m.safetensors", model, training={"note": "x" * padding})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no header length starting with 0x80 in 512 tries")
    assert load_model(path).training == {"note": "x" * padding}


def _rewrite_description(path, **changes):
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    description = json.loads(header["__metadata__"]["napari_unet"])
    description.update(changes)
    tensors = load_safetensors(data)
    save_file(tensors, path, metadata={"napari_unet": json.dumps(description)})


def test_a_newer_format_version_is_refused_with_what_to_do(tmp_path, model):
    path = save_model(tmp_path / "m.safetensors", model)
    _rewrite_description(path, format_version=FORMAT_VERSION + 1, package_version="9.0")
    with pytest.raises(
        ModelFileError, match=r"napari-unet 9.0 .* pip install -U napari-paint-unet"
    ):
        load_model(path)


@pytest.mark.parametrize("version", [0, "1", None])
def test_a_nonsense_format_version_is_refused(tmp_path, model, version):
    path = save_model(tmp_path / "m.safetensors", model)
    _rewrite_description(path, format_version=version)
    with pytest.raises(ModelFileError, match="unknown format version"):
        load_model(path)


def test_other_files_give_clear_errors(tmp_path, model):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match="not in the safetensors format"):
        load_model(text)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, foreign)
    with pytest.raises(ModelFileError, match="not a napari-unet model"):
        load_model(foreign)


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path, model):
    path = save_model(tmp_path / "m.safetensors", model)
    _rewrite_description(path, architecture={**CONFIG.to_dict(), "base_channels": 8})
    with pytest.raises(ModelFileError, match="do not fit its architecture"):
        load_model(path)


def test_saving_is_atomic_and_leaves_no_temporary_files(tmp_path, model, monkeypatch):
    path = save_model(tmp_path / "m.safetensors", model)
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, UNet(CONFIG))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_training_information_must_be_json(tmp_path, model):
    with pytest.raises(ModelFileError, match="not JSON-serialisable"):
        save_model(tmp_path / "m.safetensors", model, training={"optimizer": object()})
    assert not (tmp_path / "m.safetensors").exists()


def test_rules_for_cells_come_from_the_file_with_defaults_for_older_files(tmp_path, model):
    older = load_model(
        save_model(tmp_path / "a.safetensors", model, training={"min_size": 40, "neck_ratio": 0.7})
    )
    assert older.rules == InstanceRules(min_size=40, neck_ratio=0.7, core_threshold=0.0)
    assert not older.rules.flips  # files from before flips were predicted without them
    assert load_model(save_model(tmp_path / "b.safetensors", model)).rules == InstanceRules()
    for wrong in ({"min_size": -1}, {"flips": "yes"}):
        broken = load_model(save_model(tmp_path / "c.safetensors", model, training=wrong))
        with pytest.raises(ModelFileError, match=next(iter(wrong))):
            broken.rules  # noqa: B018
