"""The ``napari-unet`` command line.

    napari-unet demo                 napari with the sample data and the plugin's widgets
    napari-unet demo --headless      the same work without a display; files in --out
    napari-unet train --image IMG --labels LBL --out MODEL   train (or fine-tune) a model
    napari-unet segment MODEL IMAGE... --out DIR   label TIFFs for images (TIFF, zarr, PNG, ...)
    napari-unet info MODEL|--preset  what a model file or preset holds, and its tile sizes

Thin: it parses arguments and calls the core. napari is imported only by ``demo`` with a
display, so that the rest works on a server without Qt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from .core.config import PAPER_RECIPE, LabelConfig, TrainConfig, preset

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 = success)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, MemoryError) as error:  # ModelFileError: a ValueError
        print(f"napari-unet {args.command}: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="napari-unet",
        description="U-Net segmentation of touching cells (Ronneberger et al. 2015).",
    )
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="open napari with the sample data and the plugin's widgets",
        description="Open napari with the sample image (touching cells, a few painted) and "
        "the plugin's widgets docked. With --headless, or when there is no display, run the "
        "plugin's pipeline on the sample and write the results to --out instead.",
    )
    demo.add_argument("--headless", action="store_true", help="no window: write files to --out")
    demo.add_argument("--out", type=Path, default=Path("napari-unet-demo"), help="output folder")
    demo.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    demo.add_argument(
        "--minutes", type=float, default=0.5, help="headless training time (default 0.5)"
    )
    demo.set_defaults(run=_demo)

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
    tr.set_defaults(run=_train)

    seg = commands.add_parser(
        "segment",
        help="segment images with a model file",
        description="Segment images (TIFF, zarr, PNG, JPEG, ...; 2D, or stacks with the plane "
        "axis first; colour images with the colour axis last) "
        "and write one label TIFF per image, NAME_labels.tif, to --out.",
    )
    seg.add_argument("model", type=Path, help="a model file (.safetensors)")
    seg.add_argument(
        "images", type=Path, nargs="+", help="image files (TIFF, PNG, ...) or zarr arrays"
    )
    seg.add_argument("--out", type=Path, required=True, help="output folder")
    seg.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    seg.add_argument("--tile-size", type=int, default=None, help="input tile size in px")
    seg.add_argument("--probabilities", action="store_true", help="also write NAME_probability.tif")
    seg.add_argument(
        "--watershed",
        action="store_true",
        help="split cells the network merged (distance-transform watershed)",
    )
    seg.set_defaults(run=_segment)

    info = commands.add_parser(
        "info",
        help="describe a model file or a preset",
        description="Print the architecture, size, halo and valid tile sizes of a model file "
        "or a preset.",
    )
    source = info.add_mutually_exclusive_group(required=True)
    source.add_argument("model", nargs="?", type=Path, help="a model file (.safetensors)")
    source.add_argument("--preset", help="a preset name: paper or light")
    info.set_defaults(run=_info)
    return parser


# --------------------------------------------------------------------------- info


def _info(args: argparse.Namespace) -> int:
    from .core.model import UNet, halo, nearest_valid_input_sizes, output_size

    if args.preset:
        config, details = preset(args.preset), {}
        title = f"preset {args.preset}"
    else:
        from .model_io import load_model

        loaded = load_model(args.model)
        config = loaded.model.config
        title = str(args.model)
        details = {
            "normalization": loaded.normalization.to_dict(),
            "labels": loaded.labels.to_dict(),
            "cells": loaded.rules.to_dict(),
            "written by": f"napari-unet {loaded.package_version}",
        }
    parameters = sum(p.numel() for p in UNet(config).parameters())
    smallest = nearest_valid_input_sizes(config, 1)[1]
    examples = [smallest] + [nearest_valid_input_sizes(config, s)[1] for s in (256, 512, 1024)]
    print(title)
    for key, value in {**config.to_dict(), **details}.items():
        print(f"  {key + ':':<16} {value}")
    print(f"  {'parameters:':<16} {parameters:,}")
    print(f"  {'halo:':<16} {halo(config)} px per side")
    print(
        f"  {'tile sizes:':<16} {smallest} + {2**config.poolings} k px, e.g. "
        + ", ".join(f"{s} -> {output_size(config, s)}" for s in examples)
    )
    return 0


# --------------------------------------------------------------------------- train


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The settings of ``train``: --minutes or --iterations alone as given, or neither
    and the defaults (450 steps or 3 minutes, whichever comes first)."""
    given = args.minutes is not None or args.iterations is not None
    return TrainConfig(
        preset=args.preset,
        **({"minutes": args.minutes, "iterations": args.iterations} if given else {}),
        seed=args.seed,
        **(PAPER_RECIPE if args.two_classes else {}),
    )


def _train(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .core.events import drain
    from .core.train import train
    from .model_io import load_model, save_trained

    if len(args.image) != len(args.labels):
        raise ValueError(
            f"{len(args.image)} --image but {len(args.labels)} --labels; give them in pairs"
        )
    missing = [str(p) for p in [*args.image, *args.labels] if not p.exists()]
    if missing:
        raise ValueError(f"no such file: {', '.join(missing)}")
    config = _train_config(args)
    init = load_model(args.init) if args.init else None
    pairs = [
        (read_image(i), read_labels(lab)) for i, lab in zip(args.image, args.labels, strict=True)
    ]
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    progress = _TrainingProgress(sys.stderr.isatty())
    try:
        result = drain(
            train(
                pairs,
                config,
                model=init.model if init else None,
                optimizer_state=init.optimizer_state if init else None,
                normalization=init.normalization if init else None,
                labels=LabelConfig(dense=args.dense),
                device=args.device,
                stop=stop,
            ),
            progress,
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


class _TrainingProgress:
    """Training progress on the terminal: one line rewritten in place (or a line every
    10 % when the output is not a terminal)."""

    def __init__(self, live: bool) -> None:
        self.live, self.f1, self.reported, self.step = live, None, -1, None

    def __call__(self, event) -> None:
        from .core.events import LabelsIgnored, TrainingStarted, TrainStep, Validation

        if isinstance(event, TrainingStarted):
            print(event.summary(), file=sys.stderr)
            for warning in event.warnings:
                print(f"warning: {warning}", file=sys.stderr)
        elif isinstance(event, Validation):
            self.f1 = event.f1
            if self.live and self.step is not None:  # show it now, not at the next step
                print(f"\r{self._line()}", end="", file=sys.stderr)
        elif isinstance(event, LabelsIgnored):
            print(f"\nlabels ignored: {event.reason}", file=sys.stderr)
        elif isinstance(event, TrainStep):
            self.step = event
            if self.live:
                print(f"\r{self._line()}", end="", file=sys.stderr)
            elif int(10 * event.progress) > self.reported:
                self.reported = int(10 * event.progress)
                print(self._line(), file=sys.stderr)

    def _line(self) -> str:
        step = self.step
        bar = "#" * int(20 * step.progress)
        f1 = "" if self.f1 is None else f"  validation F1 {self.f1:.2f}"
        return (
            f"[{bar:<20}] {100 * step.progress:3.0f} %  step {step.step}  "
            f"loss {step.loss:.3f}{f1}  {step.elapsed:.0f} s"
        )

    def finish(self) -> None:
        if self.live:
            print(file=sys.stderr)


# --------------------------------------------------------------------------- segment


def _segment(args: argparse.Namespace) -> int:
    import tifffile

    from .core.colour import colour_channels
    from .core.device import pick_device
    from .core.events import drain
    from .core.segment import segment, stack_planes
    from .model_io import load_model

    missing = [str(p) for p in args.images if not p.exists()]
    if missing:
        raise ValueError(f"no such image: {', '.join(missing)}")
    names = [p.name.split(".")[0] for p in args.images]  # cells.ome.tif -> cells
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(
            f"two images would write {clashes[0]}_labels.tif; segment them into separate "
            "--out folders"
        )
    device = pick_device(args.device)
    loaded = load_model(args.model, device=device)
    args.out.mkdir(parents=True, exist_ok=True)
    for path, name in zip(args.images, names, strict=True):
        image = read_image(path)
        start = time.perf_counter()
        try:
            image = colour_channels(image, loaded.model.config.in_channels)
            planes = stack_planes(image.shape, loaded.model.config.in_channels)
            progress = _TerminalProgress(name, planes) if sys.stderr.isatty() else None
            result = drain(
                segment(
                    loaded.model,
                    image,
                    loaded.normalization,
                    tile_size=args.tile_size,
                    device=device,
                    keep_probability=args.probabilities,
                    method="watershed" if args.watershed else "components",
                    rules=loaded.rules,
                ),
                progress,
            )
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from None
        if progress is not None:
            print(file=sys.stderr)
        written = [args.out / f"{name}_labels.tif"]
        tifffile.imwrite(written[0], result.labels, compression="zlib")
        if args.probabilities:
            written.append(args.out / f"{name}_probability.tif")
            tifffile.imwrite(written[1], result.cell_probability, compression="zlib")
        objects = len(np.unique(result.labels)) - 1
        print(
            f"{path.name}: {objects} objects in {time.perf_counter() - start:.1f} s -> "
            + ", ".join(str(p) for p in written)
        )
    return 0


class _TerminalProgress:
    """One line on the terminal, rewritten in place: the plane and the tiles done."""

    def __init__(self, name: str, planes: int) -> None:
        self.name, self.planes, self.plane = name, planes, 1

    def __call__(self, event) -> None:
        from .core.events import PlaneDone

        if isinstance(event, PlaneDone):
            self.plane = min(event.done + 1, self.planes)
            return
        line = f"{self.name}: plane {self.plane}/{self.planes}, tiles {event.done}/{event.total}"
        print(f"\r{line}", end="", file=sys.stderr)


def read_image(path: Path):
    """Read a TIFF file, a zarr array (for an OME-Zarr group, its full-resolution "0") or
    another image file that imageio reads (PNG, JPEG, BMP, ...)."""
    try:
        if path.is_dir() or path.suffix == ".zarr":
            import zarr

            node = zarr.open(str(path), mode="r")
            if not hasattr(node, "shape") and "0" in node:  # an OME-Zarr group
                node = node["0"]
            if not hasattr(node, "shape"):
                raise ValueError("it is a zarr group without an array '0'; name an array")
            return np.asarray(node)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        import imageio.v3 as iio

        return iio.imread(path)
    except Exception as error:  # the readers raise many kinds for unreadable files
        raise ValueError(f"cannot read {path}: {error}") from None


def read_labels(path: Path):
    """Read a label image (as :func:`read_image`); refuse colour-coded ones."""
    from .core.colour import is_colour

    labels = read_image(path)
    if labels.ndim == 3 and is_colour(labels.shape):
        raise ValueError(
            f"{path} is a colour image (shape {labels.shape}); labels need one whole number "
            "per pixel (0 not annotated, 1 background, 2, 3, ... one per cell)"
        )
    return labels


# --------------------------------------------------------------------------- demo


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _demo(args: argparse.Namespace) -> int:
    if not args.headless and not _has_display():
        print("napari-unet demo: no display found (DISPLAY is not set); running --headless.")
        args.headless = True
    if args.headless:
        return _demo_headless(args.out, args.device, args.minutes)
    import napari

    viewer = napari.Viewer(title="napari-unet demo")
    viewer.open_sample("napari-unet", "touching_cells")
    viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    viewer.window.add_plugin_dock_widget("napari-unet", "Segment layer", tabify=True)
    napari.run()
    return 0


def _demo_headless(out: Path, device_name: str, minutes: float) -> int:
    """Train briefly on the sample image, segment it, and write what it made to ``out``."""
    import tifffile

    from ._sample_data import touching_cells_sample
    from .core.device import pick_device
    from .core.events import drain
    from .core.segment import segment
    from .core.train import train
    from .model_io import save_trained

    device = pick_device(device_name)
    out.mkdir(parents=True, exist_ok=True)
    (image, _, _), (annotation, _, _) = touching_cells_sample()
    painted = int(np.unique(annotation[annotation > 1]).size)
    print(f"napari-unet demo (headless) on {device}")
    print(f"  sample image      {image.shape[0]} x {image.shape[1]}, {painted} painted cells")
    progress = _TrainingProgress(sys.stderr.isatty())
    result = drain(
        train([(image, annotation)], TrainConfig(minutes=minutes, iterations=None), device=device),
        progress,
    )
    progress.finish()
    model_path = save_trained(out / "demo-model.safetensors", result)
    steps = len(result.history["steps"])
    print(f"  training          {steps} steps in {minutes:g} min (preset light)")

    start = time.perf_counter()
    segmentation = drain(
        segment(
            result.model,
            image,
            result.normalization,
            device=device,
            rules=result.rules,
            keep_probability=True,
        )
    )
    seconds = time.perf_counter() - start
    labels = segmentation.labels
    tifffile.imwrite(out / "image.tif", image)
    tifffile.imwrite(out / "painted.tif", annotation)
    tifffile.imwrite(out / "cell-probability.tif", segmentation.cell_probability)
    tifffile.imwrite(out / "labels.tif", labels)
    _write_overlay_png(out / "overlay.png", image, labels)
    print(f"  segmentation      {int(labels.max())} cells in {seconds:.2f} s")
    print(
        f"  written to        {out}/: image.tif painted.tif cell-probability.tif labels.tif "
        f"overlay.png {model_path.name}"
    )
    return 0


def _write_overlay_png(path: Path, image, labels) -> None:
    """Grey image with each labelled object tinted in a colour of its own."""
    from skimage.color import label2rgb
    from skimage.io import imsave

    low, high = np.percentile(image, [1, 99.8])
    grey = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    rgb = label2rgb(labels, image=grey, alpha=0.35, bg_label=0)
    imsave(path, (rgb * 255).astype(np.uint8), check_contrast=False)


if __name__ == "__main__":
    sys.exit(main())
