"""The npe2 manifest: one file at the repository root, found by napari when installed
editable and from a wheel, every command importable."""

import subprocess
import sys
import zipfile
from pathlib import Path

import npe2
import pytest
from npe2 import PluginManifest
from npe2.manifest.utils import import_python_name

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "napari.yaml"


@pytest.fixture(scope="module")
def manifest():
    return PluginManifest.from_file(MANIFEST)


def test_root_manifest_is_valid_and_names_the_plugin(manifest):
    assert manifest.name == "napari-paint-unet"
    assert [w.display_name for w in manifest.contributions.widgets] == [
        "Train U-Net",
        "Segment layer",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", str(MANIFEST)], capture_output=True, text=True
    )
    assert result.returncode == 0 and "valid" in result.stdout, result.stdout + result.stderr


def test_every_python_name_in_the_manifest_imports(manifest):
    commands = manifest.contributions.commands
    assert len(commands) >= 2
    for command in commands:
        assert callable(import_python_name(command.python_name)), command.python_name


def test_the_installed_plugin_uses_the_root_manifest(manifest):
    """The installed package (editable here) finds napari.yaml through the entry point."""
    installed = PluginManifest.from_distribution("napari-paint-unet")
    assert installed.model_dump(exclude={"package_metadata"}) == manifest.model_dump(
        exclude={"package_metadata"}
    )
    pm = npe2.PluginManager()
    pm.discover(include_npe1=False)
    assert "napari-paint-unet" in {m.name for m in pm.iter_manifests()}


def test_sample_data_follows_the_label_convention():
    (image, image_meta, image_kind), (labels, labels_meta, labels_kind) = import_python_name(
        "napari_unet._sample_data:touching_cells_sample"
    )()
    assert (image_kind, labels_kind) == ("image", "labels")
    assert image.shape == labels.shape == (256, 256)
    assert set(range(0, 14)) == set(labels.ravel().tolist())  # 0, background 1, 12 cells
    assert image_meta["name"] and labels_meta["name"]


@pytest.mark.slow
def test_the_wheel_carries_the_root_manifest_and_npe2_reads_it(tmp_path, manifest):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("napari_paint_unet-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("napari_unet/napari.yaml") == MANIFEST.read_bytes()
        entry_points = archive.read(
            next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        )
        licence = next(n for n in archive.namelist() if n.endswith("dist-info/licenses/LICENSE"))
        assert archive.read(licence) == (ROOT / "LICENSE").read_bytes()
    assert b"napari-paint-unet = napari_unet:napari.yaml" in entry_points
    from_wheel = npe2.get_manifest_from_wheel(wheel)
    assert from_wheel.name == "napari-paint-unet"
    assert [c.id for c in from_wheel.contributions.commands] == [
        c.id for c in manifest.contributions.commands
    ]
    assert from_wheel.contributions.widgets == manifest.contributions.widgets
