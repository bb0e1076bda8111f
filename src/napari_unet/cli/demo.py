"""``napari-unet demo``: napari with the sample data and the plugin's widgets, or the same
work without a display."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def add_parser(commands) -> None:
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
    demo.set_defaults(run=run)


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(args: argparse.Namespace) -> int:
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
    import numpy as np
    import tifffile

    from .._sample_data import touching_cells_sample
    from ..core.config import TrainConfig
    from ..core.events import drain
    from ..core.network.device import pick_device
    from ..core.segment import segment
    from ..core.training import train
    from ..model_io import save_trained
    from ._progress import TrainingProgress

    device = pick_device(device_name)
    out.mkdir(parents=True, exist_ok=True)
    (image, _, _), (annotation, _, _) = touching_cells_sample()
    painted = int(np.unique(annotation[annotation > 1]).size)
    print(f"napari-unet demo (headless) on {device}")
    print(f"  sample image      {image.shape[0]} x {image.shape[1]}, {painted} painted cells")
    progress = TrainingProgress(sys.stderr.isatty())
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
    import numpy as np
    from skimage.color import label2rgb
    from skimage.io import imsave

    from ..core.images import normalize

    grey = np.clip(normalize(image), 0, 1)  # as the network sees it
    rgb = label2rgb(labels, image=grey, alpha=0.35, bg_label=0)
    imsave(path, (rgb * 255).astype(np.uint8), check_contrast=False)
