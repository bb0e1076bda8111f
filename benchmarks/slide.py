"""Images larger than memory, block by block: peak memory, exactness, and dask speed-up.

    python benchmarks/slide.py memory [--size 32768] [--folder /tmp/napari-unet-slide] [--resume]
    python benchmarks/slide.py speedup [--size 8192]

memory: writes a SIZE x SIZE float32 zarr image of synthetic touching cells (32768 x 32768
  = 4 GiB), segments it with `napari-unet segment --blocks` in a subprocess (as a user
  runs it) and reports that process's peak resident memory; then checks the labels of a
  4096 x 4096 crop, segmented block by block, against the crop segmented in memory
  (pixels that differ after renumbering).
speedup: segments a SIZE x SIZE image here (one thread), on a LocalCluster of one worker
  of one thread, and of two workers of one thread each; reports the time per block of
  each pass, the scheduler's overhead (one worker's wall time less its tasks' compute
  time, from distributed's task stream) and the speed-up; and
  the machine's own ceiling: the same prediction in two processes at once against one,
  with no scheduler (two cores may not make two cores' worth of work).

The model is the demo's (the light preset, 300 steps on the sample image), saved with
test-time flips off so that the run measures the pipeline, not four predictions a tile.
Results go to benchmarks/results/slide_memory.json and slide_speedup.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import zarr
from _common import write_results, write_tiled_cells

from napari_unet._sample_data import sample_cells
from napari_unet.core.config import TrainConfig
from napari_unet.core.events import drain
from napari_unet.core.network.predict import predict_tiled
from napari_unet.core.segment import segment
from napari_unet.core.training import train
from napari_unet.model_io import load_model, save_trained
from napari_unet.slides import local_cluster, segment_slide


def demo_model(folder: Path) -> Path:
    path = folder / "demo-noflips.safetensors"
    if not path.exists():
        sample = sample_cells()
        config = TrainConfig(minutes=None, iterations=300)
        result = drain(train([(sample.image, sample.annotation)], config))
        result = dataclasses.replace(result, rules=dataclasses.replace(result.rules, flips=False))
        save_trained(path, result, images=["sample"])
    return path


def write_image(path: Path, size: int) -> zarr.Array:
    return write_tiled_cells(path, size, "float32")


def renumbering_differences(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels that differ between two label images after the best renumbering (each
    label of ``a`` to the label of ``b`` it shares most pixels with, one to one)."""
    pairs, counts = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1, return_counts=True)
    order = np.argsort(-counts)
    used_a, used_b, agree = set(), set(), 0
    for k in order:
        x, y = pairs[0, k], pairs[1, k]
        if x not in used_a and y not in used_b and (x == 0) == (y == 0):
            used_a.add(x)
            used_b.add(y)
            agree += counts[k]
    return int(a.size - agree)


def memory(args) -> None:
    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    model = demo_model(folder)
    start = time.perf_counter()
    if args.resume and (folder / "slide.zarr").exists():
        image = zarr.open_array(str(folder / "slide.zarr"), mode="r")
    else:
        image = write_image(folder / "slide.zarr", args.size)
    write_s = time.perf_counter() - start
    gib = args.size**2 * 4 / 2**30
    print(f"image {args.size} x {args.size} float32, {gib:.2f} GiB (zarr, uncompressed)")
    out = folder / "out"
    if not args.resume:
        shutil.rmtree(out, ignore_errors=True)
    command = [
        str(Path(sys.executable).with_name("napari-unet")),
        "segment",
        str(model),
        str(folder / "slide.zarr"),
        "--out",
        str(out),
        "--blocks",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    segment_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"napari-unet segment --blocks: {segment_s:.0f} s, peak resident memory {peak:.0f} MiB")

    crop = np.asarray(image[:4096, :4096])
    stored = zarr.create_array(
        store=str(folder / "crop.zarr"),
        shape=crop.shape,
        chunks=(1024, 1024),
        dtype=crop.dtype,
        overwrite=True,
    )
    stored[:] = crop
    result = segment_slide(model, folder / "crop.zarr", folder / "crop-out", overwrite=True)
    blocks = zarr.open_group(str(result.store), mode="r")["labels/cells/s0"][...]
    loaded = load_model(model)
    whole = drain(
        segment(loaded.model, crop, loaded.normalization, rules=loaded.rules, tile_size=result.tile)
    ).labels
    differ = renumbering_differences(blocks, whole)
    print(f"4096 x 4096 crop: {int(whole.max())} cells; {differ} pixels differ after renumbering")
    row = {
        "image_shape": [args.size, args.size],
        "image_gib": gib,
        "write_image_s": write_s,
        "segment_s": segment_s,
        "peak_rss_mib": peak,
        "crop_cells": int(whole.max()),
        "crop_pixels_differing": differ,
        "resumed": bool(args.resume),
    }
    print(f"written: {write_results('slide_memory', [row])}")
    shutil.rmtree(folder / "slide.zarr")
    shutil.rmtree(out)


def _predict_repeatedly(model: str, repeats: int, start_at: float) -> float:
    """Seconds for ``repeats`` predictions of a 1024 x 1024 image on one thread, timed
    from the wall-clock time ``start_at`` (so that two processes start together)."""
    torch.set_num_threads(1)
    loaded = load_model(model)
    image = np.random.default_rng(0).random((1024, 1024), np.float32)

    def run():
        drain(predict_tiled(loaded.model, image, loaded.normalization, flips=False))

    run()  # (warm-up)
    time.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    for _ in range(repeats):
        run()
    return time.perf_counter() - began


def machine_ceiling(model: Path, repeats: int = 8) -> float:
    """The speed-up this machine gives two single-threaded processes over one, on the
    same prediction with no scheduler at all: the most two workers can reach here
    (below 2 where the two cores share caches, memory bandwidth or a clock)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        alone = pool.apply(_predict_repeatedly, (str(model), repeats, 0.0))
        start_at = time.time() + 20  # both loaded and warmed up by then
        together = pool.starmap(_predict_repeatedly, [(str(model), repeats, start_at)] * 2)
    return 2 * alone / max(together)


def stamps(times: dict[str, list[float]], started: float):
    """A progress callback: the seconds since ``started`` at which each block of each pass
    was done, into ``times`` (pass -> list)."""
    return lambda progress: times.setdefault(progress.phase, []).append(
        time.perf_counter() - started
    )


def speedup(args) -> None:
    from distributed import Client, get_task_stream

    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    model = demo_model(folder)
    write_image(folder / "speed.zarr", args.size)
    torch.set_num_threads(1)  # here as on a worker: one thread
    rows = []
    for workers in (0, 1, 2):
        out = folder / f"speed-{workers}"
        times: dict[str, list[float]] = {}
        tasks_s = 0.0
        if workers == 0:
            started = time.perf_counter()
            result = segment_slide(
                model, folder / "speed.zarr", out, overwrite=True, progress=stamps(times, started)
            )
        else:
            with local_cluster(workers, dashboard=None) as cluster, Client(cluster) as client:
                client.wait_for_workers(workers)
                started = time.perf_counter()  # (the workers' start is not timed)
                with get_task_stream(client) as stream:
                    result = segment_slide(
                        model,
                        folder / "speed.zarr",
                        out,
                        overwrite=True,
                        client=client,
                        progress=stamps(times, started),
                    )
                tasks_s = sum(
                    part["stop"] - part["start"]
                    for task in stream.data
                    for part in task["startstops"]
                    if part["action"] == "compute"
                )
        wall = time.perf_counter() - started
        passes = {}
        begin = 0.0
        for phase, done_at in times.items():
            passes[phase] = done_at[-1] - begin
            begin = done_at[-1]
        row = {
            "workers": workers,
            "blocks": result.blocks,
            "cells": result.cells,
            "wall_s": wall,
            "pass_s": passes,
            "s_per_block": {k: v / result.blocks for k, v in passes.items()},
            "tasks_s": tasks_s if workers else None,  # the workers' compute, all tasks
        }
        rows.append(row)
        shutil.rmtree(out)
    here, one, two = rows
    print(
        f"{args.size} x {args.size} px, {here['blocks']} blocks of 1024 px, {here['cells']} cells"
    )
    print("| where | wall | probabilities s/block | background s/block | cells s/block |")
    print("|---|---|---|---|---|")
    for name, row in (
        ("here, 1 thread", here),
        ("1 worker x 1 thread", one),
        ("2 workers x 1 thread", two),
    ):
        per = row["s_per_block"]
        print(
            f"| {name} | {row['wall_s']:.0f} s | {per['probabilities']:.1f} | "
            f"{per['background']:.2f} | {per['cells']:.1f} |"
        )
    overhead = one["wall_s"] - one["tasks_s"]
    print(
        f"1 worker: the tasks computed {one['tasks_s']:.0f} s of the {one['wall_s']:.0f} s; "
        f"the rest, {overhead:.1f} s ({100 * overhead / one['wall_s']:.1f} %), is the "
        "scheduler's overhead and the work between the passes here"
    )
    print(f"1 worker against here: {one['wall_s'] - here['wall_s']:+.1f} s")
    print(f"speed-up, 2 workers / 1 worker: {one['wall_s'] / two['wall_s']:.2f}x")
    ceiling = machine_ceiling(model)
    print(f"this machine's ceiling (the same prediction in 2 processes / 1): {ceiling:.2f}x")
    rows.append({"machine_ceiling": ceiling})
    print(f"written: {write_results('slide_speedup', rows)}")
    shutil.rmtree(folder / "speed.zarr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["memory", "speedup"])
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/napari-unet-slide"))
    parser.add_argument(
        "--resume",
        action="store_true",
        help="memory: keep the image and the unfinished output of an interrupted run, and "
        "finish it (the time is then the rest of the run only)",
    )
    args = parser.parse_args()
    if args.what == "memory":
        args.size = args.size or 32768
        memory(args)
    else:
        args.size = args.size or 8192
        speedup(args)


if __name__ == "__main__":
    main()
