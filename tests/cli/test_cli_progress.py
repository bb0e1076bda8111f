"""Progress of long commands on the terminal, and in a log."""

from types import SimpleNamespace

from napari_unet.cli._progress import TilesProgress, TrainingProgress
from napari_unet.core.events import (
    PlaneDone,
    Status,
    TilesDone,
    TrainingStarted,
    TrainStep,
    Validation,
)

CLEAR = "\r\x1b[K"  # back to the line's start, the line cleared


def test_terminal_progress_names_the_plane_and_the_tiles_and_each_note_once(capsys):
    progress = TilesProgress("stack", planes=2)
    note = Status("tile size 90 spends 99.8% of the work on halo; using 180")
    for event in (note, TilesDone(1, 3), TilesDone(3, 3), PlaneDone(1, 2), note, TilesDone(2, 3)):
        progress(event)
    err = capsys.readouterr().err
    assert err.count("using 180") == 1
    assert err.replace(CLEAR, "").split("\r")[1:] == [
        "stack: plane 1/2, tiles 1/3",
        "stack: plane 1/2, tiles 3/3",
        "stack: plane 2/2, tiles 2/3",
    ]
    quiet = TilesProgress("log", planes=1, live=False)  # no terminal: the note only
    for event in (note, TilesDone(1, 3), TilesDone(3, 3)):
        quiet(event)
    assert capsys.readouterr().err == f"log: {note.message}\n"


def test_training_progress_shows_the_device_and_each_validation_at_once(capsys):
    progress = TrainingProgress(live=True)
    progress(Status("reading the images and the paint"))
    progress(TrainingStarted("cpu", "float32", cells=20, validation_cells=5, input_size=276))
    progress(TrainStep(step=9, loss=0.5, learning_rate=1e-3, elapsed=12.0, progress=1.0))
    progress(Validation(step=9, elapsed=12.0, f1=0.8, precision=1.0, recall=0.7, mean_iou=0.9))
    lines = capsys.readouterr().err.replace(CLEAR, "\r").split("\r")[1:]
    assert lines == [
        "reading the images and the paint ...\n",
        "training on cpu, float32: 20 painted cells, 5 held back to validate\n",
        "[####################] 100 %  step 9  loss 0.500  12 s",
        "[####################] 100 %  step 9  loss 0.500  validation F1 0.80  12 s",
    ]
    alone = TrainingStarted("cuda", "bfloat16", cells=3, validation_cells=0, input_size=1)
    assert alone.summary() == "training on cuda, bfloat16: 3 painted cells"  # the widget's too
    TrainingProgress(live=False)(
        TrainingStarted("cpu", "float32", 3, 0, 1, warnings=("pair 1: use --dense",))
    )
    assert capsys.readouterr().err.splitlines()[1] == "warning: pair 1: use --dense"


def test_in_a_log_progress_comes_every_tenth_and_ends_at_100(capsys):
    progress = TrainingProgress(live=False)
    for step, fraction in enumerate([0.05, 0.12, 0.51, 0.81, 0.83, 0.9], start=1):
        progress(TrainStep(step, 0.5, 1e-3, float(step), fraction))
    progress.finish(SimpleNamespace(stopped=False))
    percents = [
        line.split("]")[1].split("%")[0].strip() for line in capsys.readouterr().err.splitlines()
    ]
    assert percents == ["5", "12", "51", "81", "90", "100"]  # each tenth reached, then the end
    stopped = TrainingProgress(live=False)
    stopped(TrainStep(1, 0.5, 1e-3, 1.0, 0.3))
    stopped.finish(SimpleNamespace(stopped=True))  # a stopped training does not claim 100 %
    assert "100 %" not in capsys.readouterr().err
