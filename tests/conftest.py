"""Shared test helpers: small networks whose output is known in advance."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from napari_unet.core.config import UNetConfig
from napari_unet.core.network import precision
from napari_unet.core.network.model import UNet


@pytest.fixture(autouse=True)
def float32_on_every_cpu(monkeypatch):
    """Run the suite in float32 on every CPU, so it checks the same numbers everywhere.

    On a CPU with native bfloat16 (AVX-512 BF16, AMX), "auto" precision times both and
    may pick bfloat16: values then move in the third decimal, a short training run
    learns a little slower, and the choice itself depends on the timing. Tests of the
    bfloat16 path opt in by setting ``native_cpu_bfloat16`` themselves.
    """
    monkeypatch.setattr(precision, "native_cpu_bfloat16", lambda: False)


@pytest.fixture(autouse=True)
def own_cache_folder(monkeypatch, tmp_path_factory):
    """Each test remembers precision measurements in a folder of its own, never in the
    user's cache."""
    monkeypatch.setenv("NAPARI_UNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def threshold_unet(depth: int = 1, level: float = 0.5, steepness: float = 40.0) -> UNet:
    """A U-Net whose cell probability is sigmoid(steepness * (x - level)) of its input x.

    Every 3x3 convolution passes its input's centre pixel through (a delta kernel) on
    channel 0, the ReLUs keep the non-negative normalised intensity, and the 1x1 head
    turns it into class scores: a thresholding "network" with the real architecture,
    so that predictions can be checked exactly.
    """
    config = UNetConfig(depth=depth, base_channels=1, dropout=0.0)
    net = UNet(config)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for module in net.modules():
            if type(module) is torch.nn.Conv2d and module.kernel_size == (3, 3):
                module.weight[0, 0, 1, 1] = 1.0  # centre pixel, from channel 0 (the skip)
            if type(module) is torch.nn.ConvTranspose2d:
                module.weight[0, 0] = 1.0  # nearest-neighbour upsampling
        net.head.weight[1, 0, 0, 0] = steepness
        net.head.bias[1] = -steepness * level
    return net.eval()


def outline_unet(depth: int = 2, outline: float = 0.35, interior: float = 0.6) -> UNet:
    """A three-class U-Net that calls a pixel background below ``outline`` (normalised
    intensity), outline between ``outline`` and ``interior``, interior above: the
    blurred edges of bright cells become their outlines. Built as :func:`threshold_unet`."""
    steepness = 30.0
    net = UNet(UNetConfig(depth=depth, base_channels=1, dropout=0.0, classes=3))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for module in net.modules():
            if type(module) is torch.nn.Conv2d and module.kernel_size == (3, 3):
                module.weight[0, 0, 1, 1] = 1.0
            if type(module) is torch.nn.ConvTranspose2d:
                module.weight[0, 0] = 1.0
        # logits: background 0, outline s (x - outline), interior 2 s (x - mid), so that
        # interior beats outline above ``interior``
        net.head.weight[2, 0, 0, 0] = steepness
        net.head.bias[2] = -steepness * outline
        net.head.weight[1, 0, 0, 0] = 2 * steepness
        net.head.bias[1] = -steepness * (2 * interior - (interior - outline))
    return net.eval()


@pytest.fixture
def make_threshold_unet():
    return threshold_unet


@pytest.fixture(scope="session")
def make_outline_unet():
    return outline_unet


@pytest.fixture
def train_command(capsys):
    """Run ``napari-unet train``; a model of a few steps is written but, finding too few of
    its painted cells, not ready (exit 1, said): both count as having trained. Returns
    what was printed (out, err)."""
    from napari_unet.cli import main

    def run(argv):
        code = main(argv)
        captured = capsys.readouterr()
        not_ready = code == 1 and "the model is not ready to use" in captured.err
        assert code == 0 or not_ready, captured.err
        return captured

    return run


def as_foreign_package(package: Path, out: Path) -> tuple[Path, dict]:
    """``package`` (exported by us) without our model file and card, written to ``out``:
    as a package from elsewhere looks to us. Returns ``out`` and its rdf."""
    from napari_unet.bioimageio import MODEL_FILE

    with zipfile.ZipFile(package) as source, zipfile.ZipFile(out, "w") as target:
        rdf = yaml.safe_load(source.read("rdf.yaml"))
        rdf["attachments"] = []
        rdf.pop("config", None)
        for name in source.namelist():
            if name == "rdf.yaml":
                target.writestr(name, yaml.safe_dump(rdf))
            elif name != MODEL_FILE:
                target.writestr(name, source.read(name))
    return out, rdf


@pytest.fixture
def make_foreign_package():
    return as_foreign_package
