"""Shared helpers for the benchmark scripts: timing and writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def wall_times(function, repeats: int, warmup: int = 1) -> list[float]:
    """Wall times of ``repeats`` calls after ``warmup`` untimed calls, in seconds."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(function, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls after ``warmup`` untimed calls."""
    return statistics.median(wall_times(function, repeats, warmup))


def write_results(name: str, rows: list[dict], **context) -> Path:
    """Write ``rows`` and the machine context to benchmarks/results/NAME.json."""
    import numpy
    import torch

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                },
                "versions": {"torch": torch.__version__, "numpy": numpy.__version__},
                **context,
                "rows": rows,
            },
            indent=2,
        )
    )
    return path


def write_tiled_cells(path: Path, size: int, dtype: str, chunk: int = 2048):
    """A SIZE x SIZE zarr array (uncompressed) of synthetic touching cells, tiled from four
    512 x 512 images (the generator is quadratic in size), rotated at random."""
    import numpy as np
    import zarr

    from napari_unet.core.synthetic import touching_cells

    image = zarr.create_array(
        store=str(path),
        shape=(size, size),
        chunks=(chunk, chunk),
        dtype=dtype,
        compressors=None,
        overwrite=True,
    )
    rng = np.random.default_rng(1)
    pieces = [touching_cells((512, 512), rng=rng).image for _ in range(4)]
    if np.issubdtype(np.dtype(dtype), np.integer):
        limits = np.iinfo(dtype)
        pieces = [np.clip(p, limits.min, limits.max) for p in pieces]
    pieces = [p.astype(dtype) for p in pieces]
    for r in range(0, size, chunk):
        for c in range(0, size, chunk):
            block = np.block(
                [
                    [
                        np.rot90(pieces[rng.integers(4)], rng.integers(4))
                        for _ in range(chunk // 512)
                    ]
                    for _ in range(chunk // 512)
                ]
            )
            image[r : r + chunk, c : c + chunk] = block[: size - r, : size - c]
    return image
