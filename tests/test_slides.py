"""Large images block by block into OME-Zarr: the same cells as the whole image, resumable,
on one machine or a dask.distributed cluster."""

import os
import signal
import sys

import numpy as np
import pytest
import zarr

from napari_unet._sample_data import sample_cells
from napari_unet.core.events import drain
from napari_unet.core.segment import segment
from napari_unet.model_io import load_model, save_model
from napari_unet.slides import segment_slide

pytest.importorskip("ome_zarr")


def same_up_to_renumbering(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


@pytest.fixture(scope="module")
def slide(tmp_path_factory, make_outline_unet):
    """An OME-Zarr image (0.5 um pixels) of 300 x 420 px, and a three-class model."""
    from ome_zarr.writer import write_image

    folder = tmp_path_factory.mktemp("slide")
    image = np.tile(sample_cells().image, (2, 2))[:300, :420]
    root = zarr.open_group(str(folder / "image.ome.zarr"), mode="w")
    write_image(image, root, axes="yx", scale_factors=(2,), scale={"y": 0.5, "x": 0.5})
    model = save_model(folder / "outline.safetensors", make_outline_unet())
    return folder, image, model


def whole_image_labels(model, image, tile):
    loaded = load_model(model)
    return drain(
        segment(
            loaded.model,
            image,
            loaded.normalization,
            rules=loaded.rules,
            tile_size=tile,
            precision="float32",
        )
    ).labels


def labels_of(result) -> np.ndarray:
    return zarr.open_group(str(result.store), mode="r")[f"{result.labels}/s0"][...]


def test_a_slide_gets_the_cells_of_the_whole_image(slide, tmp_path):
    folder, image, model = slide
    seen = []
    result = segment_slide(
        model,
        folder / "image.ome.zarr",
        tmp_path / "out.zarr",
        block=100,
        tile=100,
        precision="float32",
        progress=seen.append,
    )
    expected = whole_image_labels(model, image, result.tile)
    labels = labels_of(result)
    n = result.blocks
    assert n == 6 and result.computed == (n,) * 5  # 2 x 3 blocks of 184 px (2 tiles' output)
    assert result.cells == int(expected.max()) > 50
    assert same_up_to_renumbering(labels, expected)
    assert [p.done for p in seen if p.phase == "cells"] == list(range(1, n + 1))
    assert seen[-1].seconds_left == 0

    # an OME-Zarr labels image with a nearest-neighbour pyramid at the image's pixel size
    group = zarr.open_group(str(result.store), mode="r")
    assert group["labels"].attrs["ome"]["labels"] == ["cells"]
    datasets = group["labels/cells"].attrs["ome"]["multiscales"][0]["datasets"]
    assert datasets[0]["coordinateTransformations"][0]["scale"] == [0.5, 0.5]
    half = group["labels/cells/s1"][...]
    assert set(np.unique(half)) <= set(np.unique(labels))  # picked, not averaged


def test_a_run_resumes_where_it_stopped_and_refuses_another_runs_store(slide, tmp_path):
    folder, image, model = slide
    out = tmp_path / "out.zarr"

    class Stop(Exception):
        pass

    def stop_after_two(phase):
        def stop(progress):
            if progress.phase == phase and progress.done == 2:
                raise Stop

        return stop

    arguments = dict(block=100, tile=100, precision="float32")
    expected = None
    for phase, left in (("cells", (0, 0, 4, 6, 6)), ("joined", (0, 0, 0, 0, 4))):
        with pytest.raises(Stop):
            segment_slide(
                model,
                folder / "image.ome.zarr",
                out,
                progress=stop_after_two(phase),
                overwrite=True,
                **arguments,
            )
        result = segment_slide(model, folder / "image.ome.zarr", out, **arguments)
        assert result.computed == left  # only the missing blocks
        expected = whole_image_labels(model, image, result.tile) if expected is None else expected
        assert same_up_to_renumbering(labels_of(result), expected)
    with pytest.raises(ValueError, match="holds the segmentation of another image, model or"):
        segment_slide(model, folder / "image.ome.zarr", out, block=200, tile=100)
    finished = segment_slide(model, folder / "image.ome.zarr", out, **arguments)
    assert finished.computed == (0,) * 5 and finished.cells == result.cells  # nothing to do
    again = segment_slide(model, folder / "image.ome.zarr", out, overwrite=True, **arguments)
    assert again.computed == (6,) * 5


def test_the_store_keeps_the_labels_and_what_was_asked(slide, tmp_path):
    folder, _, model = slide
    arguments = dict(block=100, tile=100, precision="float32")
    result = segment_slide(model, folder / "image.ome.zarr", tmp_path / "a.zarr", **arguments)
    assert sorted(zarr.open_group(str(result.store), mode="r").keys()) == ["labels"]
    kept = segment_slide(
        model, folder / "image.ome.zarr", tmp_path / "b.zarr", keep_probabilities=True, **arguments
    )
    probabilities = zarr.open_group(str(kept.store), mode="r")["probabilities"]
    assert probabilities.shape == (3, 300, 420) and probabilities.dtype == np.float32


def test_rules_that_do_not_join_cells_inside_cells_skip_those_passes(
    slide, tmp_path, make_outline_unet
):
    folder, image, _ = slide
    model = save_model(
        tmp_path / "apart.safetensors", make_outline_unet(), training={"join_enclosed": False}
    )
    arguments = dict(block=200, tile=100, precision="float32")
    result = segment_slide(model, folder / "image.ome.zarr", tmp_path / "out.zarr", **arguments)
    assert result.computed == (result.blocks,) * 3
    assert same_up_to_renumbering(labels_of(result), whole_image_labels(model, image, result.tile))


def test_targets_that_cannot_take_the_run_are_refused_before_any_work(slide, tmp_path, monkeypatch):
    folder, _, model = slide
    arguments = dict(block=100, tile=100)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    for overwrite in (False, True):  # never deleted, --overwrite or not
        with pytest.raises(ValueError, match="photos exists and is not a napari-paint-unet"):
            segment_slide(
                model,
                folder / "image.ome.zarr",
                tmp_path / "photos",
                overwrite=overwrite,
                **arguments,
            )
    assert (tmp_path / "photos" / "cat.jpg").exists()

    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 10**5, 10**5))
    with pytest.raises(ValueError, match=r"has 0.0 GB free; segmenting this image there may"):
        segment_slide(model, folder / "image.ome.zarr", tmp_path / "new.zarr", **arguments)
    assert not (tmp_path / "new.zarr").exists()


def test_two_workers_give_the_same_cells_and_a_killed_worker_is_replaced(slide, tmp_path):
    """On a LocalCluster of two worker processes; one is killed after the first block:
    the engine runs its blocks again elsewhere and the cells are the same."""
    distributed = pytest.importorskip("distributed")
    folder, image, model = slide
    killed = []
    from napari_unet.slides import local_cluster

    with local_cluster(2, dashboard=None) as cluster, distributed.Client(cluster) as client:
        # the workers allocate as a plain process does (no fixed malloc trim threshold)
        trims = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert set(trims.values()) == {None}
        # and import our tasks' module as they start (not in two threads at once)
        assert all(client.run(lambda: "napari_unet.slides" in sys.modules).values())

        def kill_one(progress):
            if not killed and progress.phase == "probabilities":
                pid = next(iter(client.run(os.getpid).values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        result = segment_slide(
            model,
            folder / "image.ome.zarr",
            tmp_path / "out.zarr",
            block=100,
            tile=100,
            precision="float32",
            client=client,
            progress=kill_one,
        )
        client.wait_for_workers(2, timeout=120)  # (the nanny's restart may still be on)
        pids = set(client.run(os.getpid).values())
    assert killed and killed[0] not in pids and len(pids) == 2  # replaced by the nanny
    expected = whole_image_labels(model, image, result.tile)
    assert same_up_to_renumbering(labels_of(result), expected)
