"""``napari-unet train``: train (or fine-tune) a model on images and painted labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(commands) -> None:
    tr = commands.add_parser(
        "train",
        help="train a model on images and painted labels",
        description="Train a U-Net on image/labels pairs (TIFF, zarr, PNG, JPEG, ...; 2D or "
        "stacks; colour images with the colour axis last) and "
        "write one model file. Labels: 0 = not annotated, 1 = background, 2 and up = one cell "
        "each (or, with --dense, complete masks with 0 = background). Ctrl-C stops training "
        "early and still writes the best model so far.",
    )
    tr.add_argument("--image", type=Path, action="append", required=True, help="an image")
    tr.add_argument(
        "--labels", type=Path, action="append", required=True, help="its labels (same order)"
    )
    tr.add_argument("--out", type=Path, required=True, help="the model file to write")
    tr.add_argument("--preset", default="light", help="architecture: light (default) or paper")
    budget = tr.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes",
        type=float,
        default=None,
        metavar="M",
        help="train for M minutes (default: 450 steps or 3 minutes, whichever comes first)",
    )
    budget.add_argument(
        "--iterations", type=int, default=None, metavar="N", help="train for N optimiser steps"
    )
    tr.add_argument("--dense", action="store_true", help="complete masks: 0 = background")
    tr.add_argument("--init", type=Path, default=None, help="a model file to fine-tune/resume")
    tr.add_argument(
        "--two-classes",
        action="store_true",
        help="the paper's recipe: two classes with gap insertion (no outline class, no "
        "pasted neighbours, no batch normalisation)",
    )
    tr.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
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
        labels=LabelConfig(dense=args.dense),
        **(PAPER_RECIPE if args.two_classes else {}),
    )


def run(args: argparse.Namespace) -> int:
    import signal

    from ..core.events import drain
    from ..core.training import TrainingControl, train
    from ..image_io import read_image, read_labels
    from ..model_io import load_model, save_trained
    from ._progress import TrainingProgress

    if len(args.image) != len(args.labels):
        raise ValueError(
            f"{len(args.image)} --image but {len(args.labels)} --labels; give them in pairs"
        )
    missing = [str(p) for p in [*args.image, *args.labels] if not p.exists()]
    if missing:
        raise ValueError(f"no such file: {', '.join(missing)}")
    config = train_config(args)
    init = load_model(args.init) if args.init else None
    pairs = [
        (read_image(i), read_labels(lab)) for i, lab in zip(args.image, args.labels, strict=True)
    ]
    control = TrainingControl()
    previous = signal.signal(signal.SIGINT, lambda *_: control.stop())
    progress = TrainingProgress(sys.stderr.isatty())
    try:
        result = drain(
            train(pairs, config, start=init, device=args.device, control=control), progress
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    progress.finish()
    path = save_trained(args.out, result)
    f1 = "" if result.best_f1 is None else f", validation F1 {result.best_f1:.2f}"
    print(
        f"trained {len(result.history['steps'])} steps"
        + (" (stopped)" if result.stopped else "")
        + f"; best at step {result.best_step}{f1} -> {path}"
    )
    return 0
