"""The fault matrix: what an unlucky user does, and what must happen.

Every case asserts the exit code (or the exception), a one-line message that names the
problem and the fix, no traceback, nothing left half-written, and the inputs and any older
output unchanged. Small inputs: the whole matrix runs in well under a minute.
"""

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from napari_unet.cli import main
from napari_unet.core.config import UNetConfig, preset
from napari_unet.core.network.model import UNet
from napari_unet.core.synthetic import touching_cells
from napari_unet.model_io import ModelFileError, load_model, save_model

CLI = [sys.executable, "-c", "import sys; from napari_unet.cli import main; sys.exit(main())"]


def snapshot(*folders: Path) -> dict:
    """Every file below ``folders`` with a hash of its bytes."""
    files = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


@pytest.fixture
def work(tmp_path):
    """A folder with a small image, its paint, a small trained-like model and an older
    output, as a user has them."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sample = touching_cells((64, 64), rng=np.random.default_rng(0), painted_cells=12)
    tifffile.imwrite(inputs / "image.tif", sample.image)
    tifffile.imwrite(inputs / "labels.tif", sample.annotation)
    model = UNet(UNetConfig(depth=2, base_channels=4, classes=3, dropout=0.0))
    model.reset_parameters(torch.Generator().manual_seed(0))
    save_model(inputs / "model.safetensors", model, training={"steps": 7, "best_f1": 0.9})
    return tmp_path


def train_args(work, *extra, out=None):
    inputs = work / "inputs"
    out = str(out if out is not None else work / "new.safetensors")
    return [
        "train",
        "--image",
        str(inputs / "image.tif"),
        "--labels",
        str(inputs / "labels.tif"),
    ] + [
        "--out",
        out,
        "--iterations",
        "1",
        *extra,
    ]


def fails(capsys, argv, code=1):
    """Run the command line; it must exit with ``code`` and say why in one last line."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"napari-unet {argv[0]}: "), err
    return last


def refused_by_argparse(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


# ------------------------------------------------------------------ training: the model file


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "has no name"),
        ("{work}/inputs", "is a folder; give a model file name inside it"),
        ("{work}/inputs/image.tif/m.safetensors", "is a file, not a folder"),
        ("/proc/napari-unet-m.safetensors", "cannot write /proc/napari-unet-m.safetensors"),
    ],
)
def test_the_model_file_is_checked_before_training_starts(work, capsys, out, message):
    before = snapshot(work)
    started = time.perf_counter()
    last = fails(capsys, train_args(work, out=out.format(work=work)))
    assert message in last
    assert time.perf_counter() - started < 10  # refused before the data were read
    assert snapshot(work) == before


def test_a_stop_before_the_first_step_writes_nothing_and_keeps_the_older_model(
    work, capsys, monkeypatch
):
    from contextlib import contextmanager

    import napari_unet.cli.train as cli_train

    @contextmanager
    def stopped_at_once(control):
        control.stop()  # as if Ctrl-C came while the data were read
        yield

    monkeypatch.setattr(cli_train, "_stopping_on_signals", stopped_at_once)
    older = work / "inputs" / "model.safetensors"
    before = snapshot(work)
    last = fails(capsys, train_args(work, out=older), code=130)
    assert "stopped before the first training step; no model was written" in last
    assert snapshot(work) == before  # the older model is as it was


def test_sigterm_stops_training_and_writes_a_loadable_model(work):
    out = work / "stopped.safetensors"
    args = train_args(work, out=out)
    args[args.index("--iterations") + 1] = "100000"
    process = subprocess.Popen([*CLI, *args], stderr=subprocess.PIPE, text=True)
    seen = ""
    while "training on" not in seen:  # the first step is next
        line = process.stderr.readline()
        assert line, f"training ended early: {seen}"
        seen += line
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[1]
    # (a few steps: written, but not ready to use, and said)
    assert process.returncode == 0 or "not ready to use" in rest, seen + rest
    assert process.returncode in (0, 1) and "Traceback" not in rest
    loaded = load_model(out)
    assert loaded.training["stopped"] and loaded.training["steps"] >= 1


def test_a_model_that_cannot_be_written_at_the_end_is_kept_somewhere_safe(
    work, capsys, monkeypatch
):
    import napari_unet.model_io as model_io

    real = model_io.write_atomically
    out = work / "gone" / "m.safetensors"

    def disk_full(path, data):
        if Path(path) == out:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(model_io, "write_atomically", disk_full)
    monkeypatch.setattr("tempfile.tempdir", str(work / "rescue"))
    (work / "rescue").mkdir()
    last = fails(capsys, train_args(work, out=out))
    assert "could not write" in last and "No space left on device" in last
    (rescued,) = (work / "rescue").glob("napari-unet-*.safetensors")
    assert f"the model is safe in {rescued}" in last
    assert load_model(rescued).training["steps"] == 1


def test_replacing_a_model_says_what_it_held_and_other_files_are_refused(
    work, capsys, train_command
):
    older = work / "inputs" / "model.safetensors"
    said = train_command(train_args(work, out=older)).out
    assert f"replaced the model that was in {older} (7 steps, validation F1 0.90)" in said
    assert load_model(older).training["steps"] == 1  # the new one
    image = work / "inputs" / "image.tif"
    before = snapshot(work / "inputs")
    last = fails(capsys, train_args(work, out=image))
    assert "exists and is not a napari-unet model file; choose another --out" in last
    assert snapshot(work / "inputs") == before


def test_stale_temporary_files_of_a_killed_write_are_cleaned_up(work):
    target = work / "m.safetensors"
    stale = work / ".m.safetensors.999999.deadbeef.tmp"  # no such process
    stale.write_bytes(b"half a model")
    mine = work / f".m.safetensors.{os.getpid()}.cafe.tmp"  # a live process's: kept
    mine.write_bytes(b"being written")
    save_model(target, UNet(UNetConfig(depth=1, base_channels=1)))
    assert not stale.exists() and mine.exists()


# ------------------------------------------------------------------ training: the data


def test_huge_label_values_cost_no_memory(work, train_command):
    labels = tifffile.imread(work / "inputs" / "labels.tif").astype(np.int64)
    labels = np.where(labels > 1, labels + 2**40, labels)
    tifffile.imwrite(work / "inputs" / "labels.tif", labels)
    train_command(train_args(work))  # (8 TiB as a bincount)
    assert load_model(work / "new.safetensors").training["steps"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("one cell", "only 1 cell(s) painted"),
        ("stack as channels", "is read as 3 channels of one plane"),
    ],
)
def test_doubtful_input_trains_with_a_note(work, train_command, change, message):
    inputs = work / "inputs"
    image = tifffile.imread(inputs / "image.tif")
    labels = tifffile.imread(inputs / "labels.tif")
    if change == "one cell":
        labels = np.where(labels > 2, 1, labels)
    else:
        stack = np.stack([image, image[::-1], image.T])
        tifffile.imwrite(inputs / "image.tif", stack, photometric="minisblack")
    tifffile.imwrite(inputs / "labels.tif", labels)
    assert message in train_command(train_args(work)).err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("tiny image", "too small to learn cells from (at least 8 x 8)"),
        ("empty dense mask", "no cell in the masks: complete masks"),
        ("folder as image", "is a folder, not an image; give image files, or a zarr store"),
    ],
)
def test_bad_training_input_is_refused_in_one_line(work, capsys, change, message):
    inputs = work / "inputs"
    args = train_args(work)
    if change == "tiny image":
        tifffile.imwrite(inputs / "image.tif", np.arange(9.0).reshape(3, 3))
        tifffile.imwrite(inputs / "labels.tif", np.array([[1, 1, 1], [1, 2, 1], [1, 1, 1]]))
    elif change == "empty dense mask":
        tifffile.imwrite(inputs / "labels.tif", np.zeros((64, 64), np.uint8))
        args.append("--dense")
    else:
        args[args.index("--image") + 1] = str(inputs)
    before = snapshot(work)
    assert message in fails(capsys, args)
    assert snapshot(work) == before


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--minutes", "inf", "must be a number of minutes above 0"),
        ("--minutes", "0", "must be a number of minutes above 0"),
        ("--iterations", "-3", "-3 must be a whole number above 0"),
    ],
)
def test_budgets_that_cannot_end_or_start_are_refused(work, capsys, option, value, message):
    args = train_args(work)
    args.remove("--iterations"), args.remove("1")
    assert message in refused_by_argparse(capsys, [*args, option, value])


# ------------------------------------------------------------------ segmenting


def segment_args(work, *extra):
    inputs = work / "inputs"
    return ["segment", str(inputs / "model.safetensors"), str(inputs / "image.tif")] + [
        "--out",
        str(work / "out"),
        *extra,
    ]


def test_a_full_disk_leaves_the_older_labels_and_names_the_file(work, capsys, monkeypatch):
    assert main(segment_args(work)) == 0
    labels = work / "out" / "image_labels.tif"
    older = labels.read_bytes()

    def full(path, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00 half a tiff")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full)
    last = fails(capsys, segment_args(work, "--overwrite"))
    assert f"could not write {labels}: No space left on device" in last
    assert labels.read_bytes() == older
    assert sorted(p.name for p in (work / "out").iterdir()) == ["image_labels.tif"]


def test_existing_outputs_are_kept_unless_overwrite(work, capsys):
    assert main(segment_args(work)) == 0
    before = snapshot(work)
    last = fails(capsys, segment_args(work))
    assert "image_labels.tif exists" in last and "add --overwrite" in last
    assert snapshot(work) == before
    assert main(segment_args(work, "--overwrite")) == 0


def test_ctrl_c_while_segmenting_is_one_line_and_leaves_no_empty_folder(work, capsys, monkeypatch):
    import napari_unet.core.segment as core_segment

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield  # a generator, like segment

    monkeypatch.setattr(core_segment, "segment", interrupted)
    before = snapshot(work)
    assert fails(capsys, segment_args(work), code=130).endswith("interrupted")
    assert snapshot(work) == before and not (work / "out").exists()


def test_a_failing_segment_creates_no_output_folder(work, capsys):
    args = segment_args(work)
    args[2] = str(work / "inputs" / "labels.tif")  # fine
    tifffile.imwrite(work / "inputs" / "nan.tif", np.full((20, 20), np.nan, np.float32))
    args[2] = str(work / "inputs" / "nan.tif")
    assert "NaN" in fails(capsys, args)
    assert not (work / "out").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--tile-size", "0", "0 must be a whole number above 0"),
        ("--tile-size", "-5", "-5 must be a whole number above 0"),
        ("--out", "", "an empty name is not a folder"),
    ],
)
def test_sizes_and_names_that_mean_nothing_are_refused(work, capsys, option, value, message):
    args = segment_args(work)
    if option == "--out":
        args[args.index("--out") + 1] = value
    else:
        args += [option, value]
    assert message in refused_by_argparse(capsys, args)


def test_a_huge_tile_size_is_bounded_by_memory_and_said(work, capsys):
    assert main(segment_args(work, "--tile-size", "100000")) == 0
    err = capsys.readouterr().err
    assert "tile size 100000 needs about" in err and "using" in err


# ------------------------------------------------------------------ model files


def rewrite(path: Path, description=None, tensors=None):
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    metadata = header["__metadata__"]["napari_unet"]
    if description is not None:
        metadata = description if isinstance(description, str) else json.dumps(description)
    new = load_safetensors(data)
    if tensors is not None:
        new = tensors(new)
    save_file(new, path, metadata={"napari_unet": metadata})


def described(path):
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    return json.loads(header["__metadata__"]["napari_unet"])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("huge description", "do not fit its architecture"),
        ("deep description", "do not fit its architecture"),
        ("list description", "description that is a JSON list, not an object"),
        ("bad json", "has a description that is not JSON"),
        ("wrong shape", "head.weight has shape"),
        ("nan weights", "hold NaN or infinite values"),
    ],
)
def test_damaged_model_files_are_refused_naming_the_file(work, damage, message):
    path = work / "inputs" / "model.safetensors"
    description = described(path)
    if damage == "huge description":  # would be 118 GiB
        rewrite(
            path,
            {
                **description,
                "architecture": {**description["architecture"], "base_channels": 10_000_000},
            },
        )
    elif damage == "deep description":
        rewrite(path, {**description, "architecture": {**description["architecture"], "depth": 8}})
    elif damage == "list description":
        rewrite(path, "[1, 2]")
    elif damage == "bad json":
        rewrite(path, "{not json")
    elif damage == "wrong shape":
        rewrite(path, tensors=lambda t: {**t, "head.weight": torch.zeros(3, 5, 1, 1)})
    else:
        rewrite(path, tensors=lambda t: {**t, "head.bias": torch.full((3,), float("nan"))})
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match=message) as error:
        load_model(path)
    assert "model.safetensors" in str(error.value) and "\n" not in str(error.value)
    assert time.perf_counter() - started < 5  # nothing huge was allocated


def test_a_damaged_optimiser_state_does_not_stop_segmenting(work, capsys):
    path = work / "inputs" / "model.safetensors"
    optimizer = torch.optim.Adam(UNet(UNetConfig(depth=2, base_channels=4, classes=3)).parameters())
    model = load_model(path).model
    save_model(path, model, optimizer_state=optimizer.state_dict())
    rewrite(path, tensors=lambda t: {**t, "optimizer.x.exp_avg": torch.zeros(2)})
    assert load_model(path).optimizer_problem is not None
    assert main(segment_args(work)) == 0


def test_a_folder_given_as_the_model_is_called_a_folder(work, capsys):
    args = segment_args(work)
    args[1] = str(work / "inputs")
    assert "is a folder; give a model file (.safetensors)" in fails(capsys, args)


def test_the_api_explains_a_missing_device_and_file_names_for_objects(work):
    path = work / "inputs" / "model.safetensors"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available here; use cpu"):
            load_model(path, device="cuda")
    from napari_unet.core.events import drain
    from napari_unet.core.segment import segment

    image = np.zeros((20, 20), np.float32)
    with pytest.raises(TypeError, match="for a model file use napari_unet.model_io.load_model"):
        drain(segment(str(path), image))
    with pytest.raises(TypeError, match="read image files with napari_unet.image_io.read_image"):
        drain(segment(load_model(path).model, str(work / "inputs" / "image.tif")))
    assert preset("light").classes == 2  # (the API's records are untouched)
