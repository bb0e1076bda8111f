"""``napari-unet train``: train (or fine-tune) a model on images and painted labels."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ._arguments import PRECISION_CHOICES, finite_minutes, positive_int

EXAMPLE = """example:
  napari-unet train --image cells.tif --labels painted.tif --out model.safetensors
  napari-unet train --image a.tif --labels a_paint.tif --image b.tif --labels b_paint.tif \\
      --out model.safetensors --minutes 10"""


def add_parser(commands) -> None:
    tr = commands.add_parser(
        "train",
        help="train a model on images and painted labels",
        description="Train a U-Net on image/labels pairs (TIFF, zarr, PNG, JPEG, ...; 2D or "
        "stacks; colour images with the colour axis last) and write one model file. Labels: "
        "0 = not annotated, 1 = background, 2 and up = one cell each (or, with --dense, "
        "complete masks with 0 = background). Ctrl-C (or kill) stops training early and "
        "still writes the best model so far; Ctrl-C twice quits at once, writing nothing.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument(
        "--image",
        type=Path,
        action="append",
        required=True,
        metavar="IMAGE",
        help="an image to learn from; repeat --image/--labels for more pairs",
    )
    tr.add_argument(
        "--labels",
        type=Path,
        action="append",
        required=True,
        metavar="LABELS",
        help="the painted labels of the --image before it (same order)",
    )
    tr.add_argument("--out", required=True, help="the model file to write")
    tr.add_argument(
        "--preset",
        default="light",
        choices=["light", "paper"],
        help="architecture of a new model: light (default, fast on a CPU) or paper (31 M "
        "parameters, for GPUs)",
    )
    budget = tr.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes",
        type=finite_minutes,
        default=None,
        metavar="M",
        help="train for M minutes (default: 450 steps or 3 minutes, whichever comes first)",
    )
    budget.add_argument(
        "--iterations",
        type=positive_int,
        default=None,
        metavar="N",
        help="train for N optimiser steps",
    )
    tr.add_argument("--dense", action="store_true", help="complete masks: 0 = background")
    tr.add_argument(
        "--init",
        type=Path,
        default=None,
        help="a model file or an exported bioimage.io package to fine-tune or resume",
    )
    tr.add_argument(
        "--two-classes",
        action="store_true",
        help="the paper's recipe: two classes with gap insertion (no outline class, no "
        "pasted neighbours, no batch normalisation)",
    )
    tr.add_argument(
        "--device",
        default="auto",
        help="auto (default: CUDA, then MPS, then CPU), cpu, cuda or mps",
    )
    tr.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help="arithmetic: auto (default; on a CPU, bfloat16 where measured faster, once per "
        "machine), float32 or bfloat16",
    )
    tr.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (default 0: one per core); on a computer busy with other work, "
        "1 can be several times faster",
    )
    tr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tr.set_defaults(run=run)


def train_config(args: argparse.Namespace):
    """The :class:`~napari_unet.core.config.TrainConfig` of the arguments: --minutes or
    --iterations alone as given, or neither and the defaults (450 steps or 3 minutes,
    whichever comes first)."""
    from ..core.config import PAPER_RECIPE, LabelConfig, TrainConfig

    given = args.minutes is not None or args.iterations is not None
    return TrainConfig(
        preset=args.preset,
        **({"minutes": args.minutes, "iterations": args.iterations} if given else {}),
        seed=args.seed,
        precision=args.precision,
        labels=LabelConfig(dense=args.dense),
        **(PAPER_RECIPE if args.two_classes else {}),
    )


def run(args: argparse.Namespace) -> int:
    from .._files import check_writable
    from ..bioimageio import open_for_training
    from ..core.events import drain
    from ..core.network.device import cpu_threads
    from ..core.training import TrainingControl, describe, train
    from ._progress import TrainingProgress

    pairs = _read_pairs(args)
    config = train_config(args)
    out = check_writable(args.out, "model file")
    replacing = _model_at(out)
    init = open_for_training(args.init) if args.init else None
    if init is not None and init.optimizer_problem:
        print(f"warning: {init.optimizer_problem}; the optimiser starts afresh", file=sys.stderr)
    control = TrainingControl()
    progress = TrainingProgress(sys.stderr.isatty())
    with _stopping_on_signals(control), cpu_threads(args.threads):
        result = drain(
            train(pairs, config, start=init, device=args.device, control=control), progress
        )
    progress.finish(result)
    if result.steps == 0:
        print(
            f"napari-unet train: stopped before the first training step; no model was "
            f"written ({out} is as it was)",
            file=sys.stderr,
        )
        return 130
    written = _save(out, result, [p.name for p in args.image])
    if written is None:
        return 1
    for line in describe(result):
        print(line)
    if replacing:
        print(f"replaced the model that was in {out} ({replacing})")
    print(f"written: {written}")
    if not result.ready:
        print(
            f"napari-unet train: the model is not ready to use (see above); it was written "
            f"so that training can go on from it: --init {written}",
            file=sys.stderr,
        )
        return 1
    return 0


def _read_pairs(args: argparse.Namespace) -> list:
    from ..core.images import colour_channels, is_colour, pair_channels
    from ..image_io import read_image, read_labels

    if len(args.image) != len(args.labels):
        raise ValueError(
            f"{len(args.image)} --image but {len(args.labels)} --labels; give them in pairs"
        )
    missing = [str(p) for p in [*args.image, *args.labels] if not p.exists()]
    if missing:
        raise ValueError(f"no such file: {', '.join(missing)}")
    pairs = []
    for image_path, labels_path in zip(args.image, args.labels, strict=True):
        image, labels = read_image(image_path), read_labels(labels_path)
        try:
            channels = pair_channels(colour_channels(image).shape, labels.shape)
        except ValueError as error:
            raise ValueError(f"{image_path.name} and {labels_path.name}: {error}") from None
        if channels > 1 and not is_colour(image.shape):
            print(
                f"note: {image_path.name} {tuple(image.shape)} with labels "
                f"{tuple(labels.shape)} is read as {channels} channels of one "
                f"{'stack' if labels.ndim == 3 else 'plane'} (labels of shape "
                f"{tuple(image.shape)} would make it a stack of {image.shape[0]} planes)",
                file=sys.stderr,
            )
        pairs.append((image, labels))
    return pairs


def _model_at(out: Path) -> str:
    """What the model file already at ``out`` holds ("" for none); refuses to overwrite a
    file that is not a napari-unet model."""
    from ..model_io import ModelFileError, load_model

    if not out.exists():
        return ""
    try:
        old = load_model(out)
    except ModelFileError:
        raise ValueError(
            f"{out} exists and is not a napari-unet model file; choose another --out, or "
            "remove it first"
        ) from None
    f1 = old.training.get("best_f1")
    score = f", validation F1 {f1:.2f}" if isinstance(f1, (int, float)) else ""
    return f"{old.training.get('steps', '?')} steps{score}"


def _save(out: Path, result, images: list[str]) -> Path | None:
    """Write the model to ``out``; if that fails now (the folder went away, the disk is
    full), write it to the temporary folder instead and say where. None on failure."""
    from ..model_io import save_trained

    try:
        return save_trained(out, result, images=images)
    except OSError as error:
        rescue = Path(tempfile.gettempdir()) / f"napari-unet-{time.strftime('%Y%m%d-%H%M%S')}"
        rescue = rescue.with_suffix(".safetensors")
        try:
            save_trained(rescue, result, images=images)
        except OSError:
            print(f"napari-unet train: could not write {out}: {error}", file=sys.stderr)
            return None
        print(
            f"napari-unet train: could not write {out} ({error.strerror or error}); the model "
            f"is safe in {rescue}",
            file=sys.stderr,
        )
        return None


@contextmanager
def _stopping_on_signals(control):
    """Ctrl-C and SIGTERM stop training after the current step (the best model is still
    written); a second Ctrl-C quits at once."""
    interrupted = []

    def stop(number, frame):
        if interrupted and number == signal.SIGINT:
            raise KeyboardInterrupt
        interrupted.append(number)
        control.stop()
        print("\nstopping after this step (Ctrl-C again quits at once)", file=sys.stderr)

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
