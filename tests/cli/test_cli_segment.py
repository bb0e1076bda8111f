"""napari-unet segment."""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.core.config import preset
from napari_unet.core.network.model import UNet
from napari_unet.model_io import save_model


def test_segment_writes_label_tiffs_for_tiff_and_zarr(
    tmp_path, threshold_model, capsys, two_objects
):
    import zarr

    tiff = tmp_path / "cells.tif"
    tifffile.imwrite(tiff, two_objects())
    stack = tmp_path / "stack.ome.tif"
    tifffile.imwrite(stack, np.stack([two_objects(), two_objects()[::-1]]))
    store = tmp_path / "big.zarr"
    array = zarr.open(str(store), mode="w", shape=(50, 60), chunks=(16, 16), dtype="uint16")
    array[:] = two_objects()
    out = tmp_path / "out"
    argv = ["segment", str(threshold_model), str(tiff), str(stack), str(store), "--out", str(out)]
    assert main([*argv, "--probabilities", "--tile-size", "100"]) == 0
    labels = tifffile.imread(out / "cells_labels.tif")
    assert labels.shape == (50, 60) and labels.max() == 2
    np.testing.assert_array_equal(tifffile.imread(out / "big_labels.tif"), labels)
    stacked = tifffile.imread(out / "stack_labels.tif")
    assert stacked.shape == (2, 50, 60) and stacked.max() == 4  # unique across planes
    probability = tifffile.imread(out / "cells_probability.tif")
    np.testing.assert_array_equal(probability > 0.5, labels > 0)
    printed = capsys.readouterr().out
    assert "cells.tif: 2 objects" in printed and "stack.ome.tif: 4 objects" in printed


def test_segment_fails_in_one_line_on_bad_input(tmp_path, threshold_model, capsys, two_objects):
    out = tmp_path / "out"
    assert (
        main(["segment", str(threshold_model), str(tmp_path / "nope.tif"), "--out", str(out)]) == 1
    )
    assert capsys.readouterr().err.strip() == (
        f"napari-unet segment: no such image: {tmp_path / 'nope.tif'}"
    )
    assert not out.exists()  # nothing written
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff at all")
    assert main(["segment", str(threshold_model), str(broken), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-unet segment: cannot read") and "\n" not in err
    rgb_model = save_model(tmp_path / "rgb.safetensors", UNet(preset("light", in_channels=3)))
    tiff = tmp_path / "grey.tif"
    tifffile.imwrite(tiff, two_objects())
    assert main(["segment", str(rgb_model), str(tiff), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "grey.tif: this model takes images of shape (3, H, W)" in err and "\n" not in err


def test_segment_can_split_merged_cells_with_a_watershed(tmp_path, threshold_model):
    yy, xx = np.mgrid[:40, :60]
    discs = ((yy - 20) ** 2 + (xx - 20) ** 2 < 121) | ((yy - 20) ** 2 + (xx - 38) ** 2 < 121)
    tifffile.imwrite(tmp_path / "pair.tif", (discs * 200 + 10).astype(np.uint16))
    for flags, objects in (([], 1), (["--watershed"], 2)):
        out = tmp_path / f"out{len(flags)}"
        assert (
            main(
                [
                    "segment",
                    str(threshold_model),
                    str(tmp_path / "pair.tif"),
                    "--out",
                    str(out),
                    *flags,
                ]
            )
            == 0
        )
        assert tifffile.imread(out / "pair_labels.tif").max() == objects


def test_segment_in_blocks_writes_an_ome_zarr_store_and_resumes(
    tmp_path, make_outline_unet, capsys
):
    """--blocks: the labels of the whole image in OUT/NAME.ome.zarr; run again, nothing
    is redone; another model into the same store is refused."""
    pytest.importorskip("ome_zarr")
    import zarr

    from napari_unet._sample_data import sample_cells

    model = save_model(tmp_path / "outline.safetensors", make_outline_unet())
    tifffile.imwrite(tmp_path / "cells.tif", sample_cells().image)
    out = tmp_path / "out"
    argv = ["segment", str(model), str(tmp_path / "cells.tif"), "--out", str(out)]
    argv += ["--tile-size", "100", "--precision", "float32"]
    assert main([*argv, "--blocks", "100"]) == 0
    printed = capsys.readouterr()
    assert "cells.tif: segmented" in printed.out and "cells.tif: cells 4/4 blocks" in printed.err
    labels = zarr.open_group(str(out / "cells.ome.zarr"), mode="r")["labels/cells/s0"][...]
    assert main(argv) == 0  # the same image, in memory
    whole = tifffile.imread(out / "cells_labels.tif")
    assert np.array_equal(labels > 0, whole > 0) and len(np.unique(labels)) == len(np.unique(whole))
    capsys.readouterr()
    assert main([*argv, "--blocks", "100"]) == 0
    assert "cells.tif: already segmented" in capsys.readouterr().out
    other = save_model(tmp_path / "other.safetensors", make_outline_unet(outline=0.3))
    assert main(["segment", str(other), *argv[2:], "--blocks", "100"]) == 1
    err = capsys.readouterr().err
    assert "holds the segmentation of another image, model or block size" in err
    assert err.count("\n") == 1


def test_segment_spreads_blocks_over_a_local_cluster(tmp_path, make_outline_unet, capsys):
    pytest.importorskip("distributed")
    import zarr

    from napari_unet._sample_data import sample_cells

    model = save_model(tmp_path / "outline.safetensors", make_outline_unet())
    tifffile.imwrite(tmp_path / "cells.tif", sample_cells().image)
    argv = ["segment", str(model), str(tmp_path / "cells.tif"), "--tile-size", "100"]
    argv += ["--precision", "float32", "--blocks", "100"]
    assert main([*argv, "--out", str(tmp_path / "here")]) == 0
    assert (
        main([*argv, "--out", str(tmp_path / "there"), "--cluster", "local", "--workers", "2"]) == 0
    )
    assert "dask: 2 local workers" in capsys.readouterr().err
    here, there = (
        zarr.open_group(str(tmp_path / f / "cells.ome.zarr"), mode="r")["labels/cells/s0"][...]
        for f in ("here", "there")
    )
    np.testing.assert_array_equal(here, there)  # the same ids, wherever computed
