"""Progress of long commands on the terminal."""

from napari_unet.cli._progress import TilesProgress, TrainingProgress


def test_terminal_progress_names_the_plane_and_the_tiles(capsys):
    from napari_unet.core.events import PlaneDone, TilesDone

    progress = TilesProgress("stack", planes=2)
    for event in (TilesDone(1, 3), TilesDone(3, 3), PlaneDone(1, 2), TilesDone(2, 3)):
        progress(event)
    assert capsys.readouterr().err.split("\r")[1:] == [
        "stack: plane 1/2, tiles 1/3",
        "stack: plane 1/2, tiles 3/3",
        "stack: plane 2/2, tiles 2/3",
    ]


def test_training_progress_shows_the_device_and_each_validation_at_once(capsys):
    from napari_unet.core.events import TrainingStarted, TrainStep, Validation

    progress = TrainingProgress(live=True)
    progress(TrainingStarted("cpu", "float32", cells=20, validation_cells=5, input_size=276))
    progress(TrainStep(step=9, loss=0.5, learning_rate=1e-3, elapsed=12.0, progress=1.0))
    progress(Validation(step=9, elapsed=12.0, f1=0.8, precision=1.0, recall=0.7, mean_iou=0.9))
    err = capsys.readouterr().err
    assert err.startswith("training on cpu, float32: 20 painted cells, 5 held back")
    assert err.split("\r")[1:] == [
        "[####################] 100 %  step 9  loss 0.500  12 s",
        "[####################] 100 %  step 9  loss 0.500  validation F1 0.80  12 s",
    ]
    alone = TrainingStarted("cuda", "bfloat16", cells=3, validation_cells=0, input_size=1)
    assert alone.summary() == "training on cuda, bfloat16: 3 painted cells"  # the widget's too
    TrainingProgress(live=False)(
        TrainingStarted("cpu", "float32", 3, 0, 1, warnings=("pair 1: use --dense",))
    )
    assert capsys.readouterr().err.splitlines()[1] == "warning: pair 1: use --dense"
