"""Architecture rules that keep the core usable without a GUI, checked in fresh interpreters."""

import json
import pkgutil
import subprocess
import sys

import pytest

import napari_unet.cli
import napari_unet.core

GUI_PACKAGES = {
    "napari",
    "qtpy",
    "magicgui",
    "superqt",
    "vispy",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
}
HEADLESS_MODULES = [
    "napari_unet",
    "napari_unet.model_io",
    "napari_unet.image_io",
    "napari_unet._sample_data",
    *(m.name for m in pkgutil.walk_packages(napari_unet.core.__path__, "napari_unet.core.")),
    *(m.name for m in pkgutil.walk_packages(napari_unet.cli.__path__, "napari_unet.cli.")),
]


def _imported_top_level_packages(code: str) -> set[str]:
    report = "import json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    script = f"{code}\n{report}"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_core_model_io_and_cli_never_import_napari_or_qt():
    assert len(HEADLESS_MODULES) > 30, "the core modules were not found"
    imported = _imported_top_level_packages("\n".join(f"import {m}" for m in HEADLESS_MODULES))
    assert "torch" in imported  # the check itself works: the core did load
    assert not imported & GUI_PACKAGES


def test_the_guard_would_notice_a_gui_import():
    assert "napari" in _imported_top_level_packages("import napari_unet._widgets.segment")


@pytest.mark.parametrize("argv", [["--help"], ["info", "--preset", "paper"]])
def test_the_command_line_runs_without_importing_napari(argv):
    code = (
        "from napari_unet.cli import main\n"
        "try:\n"
        f"    assert main({argv!r}) == 0\n"
        "except SystemExit as exit:  # --help\n"
        "    assert exit.code == 0\n"
    )
    imported = _imported_top_level_packages(code)
    assert "argparse" in imported and not imported & GUI_PACKAGES
