"""Segment layer for images larger than memory: block by block into a zarr store in the
user's cache folder, shown as a Labels layer that fills as blocks finish
(:mod:`napari_unet.slides`)."""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import slides
from ..bioimageio import ForeignModel, open_model
from ..core.network.precision import cache_file
from ..model_io import LoadedModel
from ._session import TrainedModel


def is_large(image) -> bool:
    """Whether Segment layer labels ``image`` block by block: one 2D plane larger than
    :data:`~napari_unet.slides.BIG_IMAGE` px."""
    return image.ndim == 2 and image.shape[0] * image.shape[1] > slides.BIG_IMAGE


def store_for(name: str, loaded: LoadedModel) -> Path:
    """Where the labels of the layer ``name`` by this model go: one store per layer and
    model, in napari-unet's cache folder, so that a second run goes on from the first."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "image"
    folder = cache_file().parent / "labels"
    return folder / f"{safe}-{slides.model_fingerprint(loaded)[:8]}.ome.zarr"


@dataclass(frozen=True)
class StoreOpened:
    """The run writes into ``store`` (its cells appear in ``work/cells`` block by block)."""

    store: Path


def segment_large(
    image, source: Path | TrainedModel, name: str, run_its_code: bool = False
) -> Generator[StoreOpened | slides.BlockProgress, None, slides.SlideResult]:
    """Label ``image`` block by block into :func:`store_for` (a worker's generator: it
    stops between blocks when cancelled, and a second run resumes)."""
    if isinstance(source, TrainedModel):
        loaded = LoadedModel(source.model, source.normalization, training=source.rules.to_dict())
    else:
        loaded = open_model(source, run_its_code=run_its_code)
        if isinstance(loaded, ForeignModel):
            raise ValueError(
                "images this large are segmented block by block, with napari-paint-unet "
                "models only; this bioimage.io model is from elsewhere"
            )
    store = store_for(name, loaded)
    steps = slides.slide_steps(loaded, image, store, block=slides.DEFAULT_BLOCK, tile=slides.TILE)
    try:
        first = next(steps)  # (the store exists once the first block is written)
    except StopIteration as finished:  # (done in an earlier run)
        yield StoreOpened(store)
        return finished.value
    yield StoreOpened(store)
    yield first
    return (yield from steps)


class LiveLabels:
    """The cells of a run's store, read where napari looks: the blocks written so far,
    then the finished labels (the work array is deleted when they are written)."""

    def __init__(self, store: Path) -> None:
        import zarr

        self.store = store
        self._root = zarr.open_group(str(store), mode="r")
        cells = self._root["work/cells"] if "work" in self._root else finished_labels(store)[0]
        self.shape, self.dtype, self.ndim = cells.shape, cells.dtype, cells.ndim

    def __getitem__(self, index):
        try:
            return self._root["work/cells"][index]
        except KeyError:
            return self._root["labels/cells/s0"][index]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[...], dtype=dtype)


def finished_labels(store: Path) -> list:
    """The finished labels pyramid of ``store``, full resolution first."""
    import zarr

    group = zarr.open_group(str(store), mode="r")["labels/cells"]
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    return [group[d["path"]] for d in datasets]
