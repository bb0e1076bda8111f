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
