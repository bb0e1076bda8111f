"""``napari-unet segment --blocks``: images larger than memory, block by block into
OME-Zarr, here or on a dask.distributed cluster (:mod:`napari_unet.slides`)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import time
from pathlib import Path

from ._progress import _say


def wanted(args: argparse.Namespace, path: Path) -> bool:
    """Whether to segment ``path`` block by block: asked for, or a 2D zarr image too
    large to label in memory (said on the terminal)."""
    if args.blocks or args.cluster:
        return True
    if not (path.is_dir() or path.suffix.lower() == ".zarr"):
        return False
    from ..image_io import open_lazy
    from ..slides import BIG_IMAGE

    try:
        shape = open_lazy(path, args.level).data.shape
    except ValueError:
        return False  # (said when it is read)
    if len(shape) == 2 and shape[0] * shape[1] > BIG_IMAGE:
        _say(
            f"{path.name}: {shape[1]} x {shape[0]} px, too large to label in memory: block by "
            f"block into {args.out / (_name(path) + '.ome.zarr')}",
            False,
        )
        return True
    return False


def run(args: argparse.Namespace, images: list[Path]) -> None:
    from ..bioimageio import is_bioimageio_package
    from ..slides import DEFAULT_BLOCK

    if args.model.suffix.lower() == ".zip" or is_bioimageio_package(args.model):
        raise ValueError(
            "block by block, segment with the model file (.safetensors); a bioimage.io "
            "package segments without --blocks (an image that fits in memory)"
        )
    if args.watershed:
        raise ValueError("--watershed is not available block by block; leave it out")
    if not args.model.is_file():
        raise ValueError(f"no such model file: {args.model}")
    block = DEFAULT_BLOCK if args.blocks in (None, True) else args.blocks
    with _client(args.cluster, args.workers) as client:
        for path in images:
            _segment(args, path, args.out / f"{_name(path)}.ome.zarr", block, client)


def _name(path: Path) -> str:
    return path.name.split(".")[0]  # cells.ome.zarr -> cells


@contextlib.contextmanager
def _client(cluster: str | None, workers: int | None):
    """No client (here, block after block), a LocalCluster sized to the machine (one
    worker per GPU, else per core, one thread each), or a client of a running scheduler."""
    if cluster is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--cluster needs dask.distributed: pip install distributed") from None
    if cluster == "local":
        import torch

        from ..slides import local_cluster

        count = workers or torch.cuda.device_count() or os.cpu_count() or 1
        with local_cluster(count) as local, Client(local) as client:
            _say(f"dask: {count} local workers; dashboard {client.dashboard_link}", False)
            yield client
        return
    try:
        client = Client(cluster, timeout="30s")
    except OSError as error:
        raise ValueError(f"no dask scheduler answers at {cluster}: {error}") from None
    with client:
        workers = len(client.scheduler_info()["workers"])
        _say(
            f"dask: scheduler {cluster}, {workers} workers now; dashboard {client.dashboard_link}",
            False,
        )
        yield client


def _segment(args, path: Path, out: Path, block: int, client) -> None:
    from ..slides import segment_slide

    start = time.perf_counter()
    live = sys.stderr.isatty()
    try:
        result = segment_slide(
            args.model,
            path,
            out,
            block=block,
            client=client,
            overwrite=args.overwrite,
            progress=BlockProgressLine(path.name, live),
            precision=args.precision,
            level=args.level,
            keep_probabilities=args.probabilities,
            **({"tile": args.tile_size} if args.tile_size else {}),
        )
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise ValueError(
                f"the disk of {out} is full; free some space and run the same command "
                "again: it goes on from the blocks already written"
            ) from None
        raise
    except ValueError as error:
        raise ValueError(f"{path.name}: {error}") from None
    if live:
        print(file=sys.stderr)
    done = "already segmented" if not any(result.computed) else "segmented"
    print(
        f"{path.name}: {done}, {result.cells} cells in {result.blocks} "
        f"block{'s' if result.blocks > 1 else ''}, "
        f"{time.perf_counter() - start:.1f} s -> {out} ({result.labels})"
    )


class BlockProgressLine:
    """Blocks done and the time left: one line rewritten in place on a terminal; in a log,
    a line each time another tenth of a pass is done."""

    def __init__(self, name: str, live: bool) -> None:
        self.name, self.live, self.reported = name, live, {}

    def __call__(self, progress) -> None:
        left = (
            ""
            if progress.seconds_left is None
            else f", about {_duration(progress.seconds_left)} left"
        )
        line = f"{self.name}: {progress.phase} {progress.done}/{progress.total} blocks{left}"
        if self.live:
            print(f"\r\033[K{line}", end="", file=sys.stderr)
            return
        tenth = 10 * progress.done // progress.total
        if tenth > self.reported.get(progress.phase, -1):
            self.reported[progress.phase] = tenth
            print(line, file=sys.stderr)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
