"""Images larger than memory: cells block by block into an OME-Zarr store, resumable, on
one machine or spread over a dask.distributed cluster.

Passes over a grid of blocks, each block a task that writes its own part of a zarr
store and is marked done, so an interrupted run resumes where it stopped and a task run
twice (a worker that died) writes the same thing again:

1. **probabilities** of each block, exactly as predicting the whole image gives them: the
   tiles of the whole image's plan (:func:`~napari_unet.core.network.tiling.plan_tiles`)
   whose outputs start in the block, with the intensity percentiles of the whole image
   (from a subsample);
2. **background** pieces of each block
   (:func:`~napari_unet.core.cells.blocks.background_block`), joined here into the holes
   of the cell mask (:func:`~napari_unet.core.cells.blocks.find_holes`);
3. **cells** of each block's core, exactly as labelling the whole image gives them, with
   ids that agree between blocks (:func:`~napari_unet.core.cells.blocks.label_block`);
4. where the rules join cells inside cells: the **contacts** of each block's cells
   (:func:`~napari_unet.core.cells.enclosed.block_contacts`), joined here into the cells
   that lie in a hole of another (:func:`~napari_unet.core.cells.enclosed.find_enclosed`);
5. those cells **joined** to the cell around them, block by block
   (:func:`~napari_unet.core.cells.enclosed.join_block`).

Then the labels are written as an OME-Zarr ``labels/`` group with a multiscale pyramid
(nearest neighbour) by the ``ome-zarr`` library, with the image's pixel scale, so that
napari, QuPath and Fiji open them.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr  # (not in the tasks: a worker importing it in two threads got half of it)

from .core.cells.blocks import (
    BackgroundPieces,
    background_block,
    find_holes,
    label_block,
    plan_blocks,
)
from .core.cells.enclosed import Contacts, block_contacts, find_enclosed, join_block
from .core.events import drain
from .core.images import intensity_range
from .core.network.device import pick_device
from .core.network.model import output_size
from .core.network.predict import predict_tiles
from .core.network.tiling import plan_tiles, usable_tile_size
from .image_io import LazyImage, open_lazy
from .model_io import LoadedModel, load_model

__all__ = [
    "WORKER_CONFIG",
    "local_cluster",
    "BIG_IMAGE",
    "BlockProgress",
    "SlideResult",
    "model_fingerprint",
    "segment_slide",
    "slide_steps",
]

# px per side of a block's core: labelling a block takes about 140 bytes a pixel of its
# window (docs/decisions/2026-12-05-labels-block-by-block.md)
DEFAULT_BLOCK = 1024
# px: 2D images larger than this are labelled block by block even unasked (labelling in
# memory takes about 120 bytes a pixel: 2 GB at this size)
BIG_IMAGE = 4096 * 4096
THRESHOLD = 0.5  # cell probability: as segment() labels
TILE = 540  # px: input tiles of the light preset that fit any block (output 452 = 56 x 8 + 4)


@dataclass(frozen=True)
class BlockProgress:
    """``done`` of ``total`` blocks of ``phase`` ("probabilities", "background", "cells",
    "contacts" or "joined") are written;
    ``seconds_left``: the estimate from the blocks done in this run (None before one)."""

    phase: str
    done: int
    total: int
    seconds_left: float | None


@dataclass(frozen=True)
class SlideResult:
    store: Path  # the zarr store with probabilities/ and labels/
    labels: str  # the labels' path inside it (an OME-Zarr labels image)
    cells: int  # how many cells (distinct ids)
    blocks: int  # blocks per pass
    computed: tuple[int, ...]  # blocks computed in this run, per pass (others resumed)
    tile: int  # px: the input tiles of the prediction (the whole image's plan)


WORKER_CONFIG = {
    # distributed sets a fixed malloc trim threshold in its workers, which also fixes
    # glibc's mmap threshold: every large array is then mapped and faulted in afresh,
    # and predicting took 1.4-1.8x as long as in a plain process (measured, 2026-12-05)
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # a worker imports this module (torch, zarr) as it starts, not in its first task
    "distributed.worker.preload": ["napari_unet.slides"],
}


def local_cluster(workers: int, dashboard: str | None = ":8787"):
    """A ``distributed.LocalCluster`` of ``workers`` processes of one thread each, set up
    for these tasks (:data:`WORKER_CONFIG`), its dashboard at ``dashboard`` (None: none);
    use it as a context manager."""
    import dask
    from distributed import LocalCluster

    # (a cluster started earlier in this process left the variable here for children)
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set(WORKER_CONFIG):
        return LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=dashboard
        )


def segment_slide(
    model,
    image,
    out: str | Path,
    *,
    progress: Callable[[BlockProgress], None] | None = None,
    **options,
) -> SlideResult:
    """Segment a 2D image larger than memory block by block into the zarr store ``out``;
    ``progress`` sees a :class:`BlockProgress` after every block. ``options`` and the rest
    as :func:`slide_steps`, which this runs to its end."""
    return drain(slide_steps(model, image, out, **options), progress)


def slide_steps(
    model,
    image,
    out: str | Path,
    *,
    block: int = DEFAULT_BLOCK,
    client=None,
    overwrite: bool = False,
    retries: int = 2,
    precision: str = "auto",
    level: int = 0,
    tile: int = TILE,
    keep_probabilities: bool = False,
) -> Generator[BlockProgress, None, SlideResult]:
    """Segment a 2D image block by block into the zarr store ``out``, yielding a
    :class:`BlockProgress` after every block (stopping between two blocks leaves a store
    that a second run completes); returns a :class:`SlideResult`.

    model: a model file, or (here only, without ``client``) a loaded model.
    image: a path (a zarr array, an OME-Zarr image at resolution ``level``, or a TIFF, read
        lazily: :func:`~napari_unet.image_io.open_lazy`), or (without ``client``) an array
        (numpy, zarr, dask), read a window at a time.
    block: px per side of a block (rounded up to a whole number of prediction steps).
    tile: px per side of the network's input tiles (made a valid size that fits in 1 GiB).
    client: a ``distributed.Client``: every block is a task on its workers (each worker
        loads the model once); None computes here, block after block.
    overwrite: start afresh; otherwise blocks already written are kept (a run resumes,
        and a finished store is left as it is).
    precision: as :func:`~napari_unet.core.network.predict.predict_tiled` takes it, chosen
        on each worker ("auto") or forced; each worker predicts on its best device
        (:func:`~napari_unet.core.network.device.pick_device`: its GPU where it has one).
    keep_probabilities: keep the class probabilities (``probabilities``, float32) in the
        store; by default the work arrays are deleted once the labels are written.
    Raises ``ValueError`` before any work when ``out`` holds another run's work (unless
    ``overwrite``), cannot be written, or its disk has less room than the run may need,
    and for images or models it cannot take.
    """
    from_files = isinstance(model, (str, Path)) and isinstance(image, (str, Path))
    if client is not None and not from_files:
        raise ValueError("on a cluster, give the model and the image as files (paths)")
    loaded = load_model(model) if isinstance(model, (str, Path)) else model
    opened = open_lazy(image, level) if isinstance(image, (str, Path)) else LazyImage(image)
    plan = _plan(loaded, opened.data, block, tile)
    identity = {
        "image": str(Path(image).resolve()) if isinstance(image, (str, Path)) else "an array",
        "level": level,
        "shape": list(plan.shape),
        "model": model_fingerprint(loaded),
        "block": plan.block,
        "tile": plan.tile,
        "intensity": list(intensity_range(opened.data, loaded.normalization)),
        "rules": loaded.rules.to_dict(),
        "precision": precision,
    }
    classes = loaded.model.config.classes
    root = _open_store(Path(out), identity, overwrite, plan, classes)
    passes = [
        (phase, task) for phase, task in PASSES if loaded.rules.join_enclosed or phase in BASIC
    ]
    if root.attrs["napari_unet"].get("finished"):
        return _result(root, Path(out), plan, (0,) * len(passes))
    source = (str(image), level) if isinstance(image, (str, Path)) else opened.data
    computed = []
    for phase, task in passes:
        if phase == "cells" and not root.attrs["napari_unet"].get("holes"):
            _save_holes(root, plan.cores)
        if phase == "joined" and not root.attrs["napari_unet"].get("enclosed"):
            _save_enclosed(root, plan.cores)
        todo = [k for k, done in enumerate(root.attrs["napari_unet"]["done"][phase]) if not done]
        run = functools.partial(
            task,
            str(model) if isinstance(model, (str, Path)) else loaded,
            source,
            str(out),
            plan.cores,
            plan.tile,
            identity["intensity"],
            precision,
        )
        yield from _run_blocks(run, todo, len(plan.cores), phase, root, client, retries)
        computed.append(len(todo))
    _write_pyramid(Path(out), opened.scale)
    _finish(root, keep_probabilities)
    return _result(root, Path(out), plan, tuple(computed))


@dataclass(frozen=True)
class _Plan:
    shape: tuple[int, int]
    tile: int  # px, input tiles
    block: int  # px, a whole number of tiles' outputs
    cores: list[tuple[slice, slice]]


def _plan(loaded: LoadedModel, image, block: int, tile: int) -> _Plan:
    """Tiles and blocks for ``image``; ``ValueError`` for what cannot be done in blocks."""
    config = loaded.model.config
    if config.scale != 1:
        raise ValueError(
            f"this model works at {config.scale:g} of the image's pixels; large images are "
            "segmented block by block only with models at the image's own pixels (scale 1)"
        )
    if config.in_channels != 1 or image.ndim != 2:
        raise ValueError(
            f"block by block, napari-paint-unet segments 2D one-channel images; this one has "
            f"shape {tuple(image.shape)} (stacks and colour: segment them without blocks)"
        )
    shape = (int(image.shape[0]), int(image.shape[1]))
    tile = usable_tile_size(config, tile, memory=2**30)[0]
    step = output_size(config, tile) // 2**config.poolings * 2**config.poolings
    block = math.ceil(block / step) * step  # blocks hold whole tiles' outputs
    return _Plan(shape, tile, block, plan_blocks(shape, block))


def _result(root, out: Path, plan: _Plan, computed) -> SlideResult:
    cells = int(root.attrs["napari_unet"].get("cells", 0))
    return SlideResult(out, "labels/cells", cells, len(plan.cores), computed, plan.tile)


def _finish(root, keep_probabilities: bool) -> None:
    """Count the cells, delete the work arrays (and the probabilities unless kept), and
    mark the store finished."""
    attrs = dict(root.attrs["napari_unet"])
    attrs["cells"] = _count_cells(root["labels/cells/s0"])
    attrs["finished"] = True  # (first: stopped while deleting, the store is still whole)
    root.attrs["napari_unet"] = attrs
    del root["work"]
    if not keep_probabilities:
        del root["probabilities"]


def model_fingerprint(loaded: LoadedModel) -> str:
    """A short hash of the model's weights (which model made a store)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(loaded.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def _open_store(out: Path, identity: dict, overwrite: bool, plan: _Plan, classes: int):
    """The zarr store of a run: new, or the one an earlier run of the same image, model
    and blocks left (to resume). Raises ``ValueError``, before anything is written, for
    another run's store, a folder that is not one, a target that cannot be written and a
    disk with less room than the run may need."""
    found = _our_attributes(out)
    if out.exists() and found is None:
        raise ValueError(
            f"{out} exists and is not a napari-paint-unet segmentation; choose another --out"
        )
    if found is not None and not overwrite:
        if {k: found.get(k) for k in identity} != identity:
            raise ValueError(
                f"{out} holds the segmentation of another image, model or block size; "
                "--overwrite replaces it, or choose another --out"
            )
        return zarr.open_group(str(out), mode="r+")
    _check_room(out, plan, classes)
    root = zarr.open_group(str(out), mode="w")
    root.attrs["napari_unet"] = {
        **identity,
        "done": {phase: [False] * len(plan.cores) for phase, _ in PASSES},
    }
    chunks = (plan.block // 2 if plan.block > 1024 else plan.block,) * 2  # within blocks
    root.create_array(
        "probabilities",
        shape=(classes, *plan.shape),
        chunks=(classes, *chunks),
        dtype="f4",  # as predicted: the cells come out as of the whole image
        fill_value=0,
    )
    work = root.create_group("work")  # deleted when the labels are written
    for name in ("background", "cells"):
        work.create_array(name, shape=plan.shape, chunks=chunks, dtype="u8", fill_value=0)
    work.create_group("pieces")  # each block's summary of its background pieces
    work.create_group("contacts")  # each block's summary of its cells' contacts
    return root


def _our_attributes(out: Path) -> dict | None:
    """The run record of a store written here, or None for anything else."""
    if not out.is_dir():
        return None
    try:
        return dict(zarr.open_group(str(out), mode="r").attrs["napari_unet"])
    except Exception:  # noqa: BLE001 - not a zarr group, or not ours
        return None


def _check_room(out: Path, plan: _Plan, classes: int) -> None:
    """Raise ``ValueError`` when ``out`` cannot be written or its disk has less free
    space than the run's arrays take uncompressed (probabilities, two work arrays, the
    labels and their pyramid)."""
    parent = next(p for p in (out.parent, *out.parent.parents) if p.exists())
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot write in {parent}: it is read-only for you; choose another --out")
    pixels = plan.shape[0] * plan.shape[1]
    needed = pixels * (4 * classes + 8 + 8 + 8 * 4 / 3)
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise ValueError(
            f"{parent} has {free / 1e9:.1f} GB free; segmenting this image there may take up "
            f"to {needed / 1e9:.1f} GB (less, compressed); free some space or choose another "
            "--out"
        )


def _run_blocks(run, todo, total, phase, root, client, retries):
    """Run ``run(k)`` for the blocks ``todo`` (here, or as tasks of ``client``), marking
    each done in the store's attributes as it finishes and yielding a BlockProgress."""
    started, finished = time.perf_counter(), 0
    done_before = total - len(todo)

    def mark(k: int) -> BlockProgress:
        nonlocal finished
        attrs = dict(root.attrs["napari_unet"])
        attrs["done"][phase][k] = True
        root.attrs["napari_unet"] = attrs
        finished += 1
        left = (time.perf_counter() - started) / finished * (len(todo) - finished)
        return BlockProgress(phase, done_before + finished, total, left)

    if client is None:
        for k in todo:
            run(k)
            yield mark(k)
        return
    from distributed import as_completed

    futures = client.map(run, todo, retries=retries, pure=False)
    try:
        for future in as_completed(futures):
            yield mark(future.result())
    finally:
        client.cancel(futures)  # (stopped early: nothing more is started)


def _model_on_worker(model) -> LoadedModel:
    """The model: as given (here), or loaded from its file once per process (a worker)."""
    return model if isinstance(model, LoadedModel) else _load_once(model)


@functools.lru_cache(maxsize=2)
def _load_once(path: str) -> LoadedModel:
    """On a dask worker, each task slot is a core: torch computes on one thread (else two
    workers on two cores would each run as many threads as there are cores)."""
    if _worker() is not None:
        torch.set_num_threads(1)
    return load_model(path)


def _worker():
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):  # not on a dask worker
        return None


def _worker_device() -> torch.device:
    """This process's device: on a machine with several GPUs, worker k of a local
    cluster takes GPU k (mod their number); elsewhere the best one there is."""
    device = pick_device("auto")
    worker = _worker()
    if device.type == "cuda" and worker is not None and torch.cuda.device_count() > 1:
        name = str(worker.name)
        index = int(name) if name.isdigit() else 0
        device = torch.device("cuda", index % torch.cuda.device_count())
    return device


def _probability_task(model, source, out, cores, tile, intensity, precision, k: int) -> int:
    """Write the probabilities of block ``k``: the tiles of the whole image's plan whose
    outputs start in it."""
    loaded = _model_on_worker(model)
    image = open_lazy(*source).data if isinstance(source, tuple) else source
    target = zarr.open_group(out, mode="r+")["probabilities"]
    tiles = plan_tiles(tuple(image.shape), loaded.model.config, tile, within=cores[k])
    device = _worker_device()
    for t, probabilities in predict_tiles(
        loaded.model,
        image,
        tiles,
        intensity,
        device=device,
        precision=precision,
        flips=loaded.rules.flips,
    ):
        target[(slice(None), *t.write)] = probabilities
    return k


def _background_task(model, source, out, cores, tile, intensity, precision, k: int) -> int:
    """Write the background pieces of block ``k`` and their summary."""
    root = zarr.open_group(out, mode="r+")
    pieces = background_block(root["probabilities"], cores[k], threshold=THRESHOLD)
    root["work/background"][cores[k]] = pieces.ids
    _write_summary(root["work/pieces"], k, pieces, PIECES)
    return k


EDGES = ("top", "bottom", "left", "right")  # a block's edges, as its summary names them
PIECES = ("found", "open")  # the summary of a block's background pieces (and EDGES)
CONTACTS = ("cells", "pieces", "pairs", "open")  # that of its cells' contacts (and EDGES)


def _write_summary(folder, k: int, record, names: tuple[str, ...]) -> None:
    """Block ``k``'s summary for a pass run here: the fields ``names`` of ``record``
    (BackgroundPieces or Contacts) and its edges' values, as arrays of ``folder/k``."""
    group = folder.require_group(str(k))
    arrays = [(name, getattr(record, name)) for name in names]
    for name, values in (*arrays, *zip(EDGES, record.edges, strict=True)):
        group.create_array(name, data=values, overwrite=True)


def _read_summaries(folder, cores, names: tuple[str, ...]):
    """Every block's summary in ``folder``: for each, the arrays ``names`` and the edges'."""
    for k in range(len(cores)):
        group = folder[str(k)]
        yield k, [group[name][...] for name in names], tuple(group[e][...] for e in EDGES)


def _save_holes(root, cores) -> None:
    """``work/holes``: the ids of the background pieces that are holes, from the
    blocks' summaries."""
    pieces = {
        k: BackgroundPieces(None, *arrays, edges)
        for k, arrays, edges in _read_summaries(root["work/pieces"], cores, PIECES)
    }
    holes = find_holes(pieces, cores)
    root["work"].create_array("holes", data=holes, overwrite=True)
    attrs = dict(root.attrs["napari_unet"])
    attrs["holes"] = True  # (written whole: a run stopped while writing them redoes it)
    root.attrs["napari_unet"] = attrs


def _cells_task(model, source, out, cores, tile, intensity, precision, k: int) -> int:
    """Write the cells of block ``k``'s core."""
    loaded = _model_on_worker(model)
    root = zarr.open_group(out, mode="r+")
    root["work/cells"][cores[k]] = label_block(
        root["probabilities"],
        root["work/background"],
        root["work/holes"][...],
        cores[k],
        loaded.rules,
        threshold=THRESHOLD,
    )
    return k


def _contacts_task(model, source, out, cores, tile, intensity, precision, k: int) -> int:
    """Write the summary of which cells and unlabelled pieces of block ``k`` touch."""
    root = zarr.open_group(out, mode="r+")
    shape = root["work/cells"].shape
    contacts = block_contacts(root["work/cells"][cores[k]], cores[k], shape)
    _write_summary(root["work/contacts"], k, contacts, CONTACTS)
    return k


def _save_enclosed(root, cores) -> None:
    """``work/enclosed`` and ``work/into``: the ids of the cells and unlabelled pieces in
    a hole of another cell, and the cell each joins, from the blocks' contacts."""
    contacts = {
        k: Contacts(*arrays, edges)
        for k, arrays, edges in _read_summaries(root["work/contacts"], cores, CONTACTS)
    }
    enclosed, into = find_enclosed(contacts, cores)
    root["work"].create_array("enclosed", data=enclosed, overwrite=True)
    root["work"].create_array("into", data=into, overwrite=True)
    attrs = dict(root.attrs["napari_unet"])
    attrs["enclosed"] = True  # (written whole: a run stopped while writing them redoes it)
    root.attrs["napari_unet"] = attrs


def _joined_task(model, source, out, cores, tile, intensity, precision, k: int) -> int:
    """Join the cells of block ``k`` that lie in a hole of another cell to it (a block
    joined twice comes out the same)."""
    root = zarr.open_group(out, mode="r+")
    cells = root["work/cells"]
    joined = (root["work/enclosed"][...], root["work/into"][...])
    cells[cores[k]] = join_block(cells[cores[k]], cores[k], cells.shape, joined)
    return k


BASIC = ("probabilities", "background", "cells")  # (the others join cells inside cells)
PASSES = (
    ("probabilities", _probability_task),
    ("background", _background_task),
    ("cells", _cells_task),
    ("contacts", _contacts_task),
    ("joined", _joined_task),
)


def _count_cells(labels) -> int:
    """The cells of a zarr array of block labels, read chunk by chunk: a cell's id is one
    plus the flat index of its first pixel, so each cell has one pixel that holds its own
    index plus one."""
    count = 0
    height, width = labels.shape
    step_r, step_c = labels.chunks
    for r in range(0, height, step_r):
        for c in range(0, width, step_c):
            chunk = labels[r : r + step_r, c : c + step_c]
            rows, columns = np.indices(chunk.shape, dtype=np.uint64)
            count += int(np.count_nonzero(chunk == 1 + (rows + r) * width + (columns + c)))
    return count


PYRAMID = (1, 2, 4, 8)  # the labels' levels: every k-th pixel (nearest neighbour)


def _write_pyramid(out: Path, scale: tuple[float, float] | None) -> None:
    """``labels/cells``: the OME-Zarr labels image with its downsampled levels (every
    2nd, 4th, 8th pixel: nearest neighbour) and the image's pixel scale where it has one,
    from the cells of the blocks, chunk by chunk (each level's chunk depends on one chunk
    of the cells: memory stays a few chunks; ome-zarr's own downsampling held 2.5 GB for
    a 32768 px image)."""
    import dask
    import dask.array as da
    from ome_zarr.writer import write_multiscale_labels

    root = zarr.open_group(str(out), mode="r+")
    if "labels" in root and "cells" in root["labels"]:
        del root["labels"]["cells"]  # (an earlier run's, when resuming)
    cells = root["work/cells"]
    full = da.from_zarr(cells)
    pixel = scale or (1.0, 1.0)
    # here, with plain tasks: not a shuffle on a cluster's workers (with a Client active,
    # dask would plan one, and it fails on threads)
    with dask.config.set({"scheduler": "threads", "array.rechunk.method": "tasks"}):
        write_multiscale_labels(
            [full[::k, ::k] for k in PYRAMID],
            root,
            name="cells",
            axes="yx",
            coordinate_transformations=[
                [{"type": "scale", "scale": [pixel[0] * k, pixel[1] * k]}] for k in PYRAMID
            ],
            storage_options={"chunks": cells.chunks},
        )
