"""Overlap-tile prediction: the plan's invariants, and tiled output = whole-image output."""

import numpy as np
import pytest
import torch

from napari_unet.core.config import NormalizationConfig, UNetConfig, preset
from napari_unet.core.events import Status, TilesDone, drain
from napari_unet.core.network.model import UNet, halo, output_size
from napari_unet.core.network.predict import predict_image, predict_tiled
from napari_unet.core.network.tiling import (
    MAX_HALO_SHARE,
    choose_tile_size,
    halo_share,
    plan_tiles,
    read_window,
    smallest_tile,
    tile_memory,
    usable_tile_size,
)

LIGHT = preset("light")  # 3 poolings: outputs are 4 px off the 8 px grid
SMALL = UNetConfig(depth=4, base_channels=4, dropout=0.0)  # same arithmetic, cheaper


def run(generator):
    """The generator's result and the events it yielded."""
    events = []
    return drain(generator, events.append), events


@pytest.mark.parametrize("shape", [(300, 417), (1, 50), (7, 5), (188, 188), (189, 500)])
@pytest.mark.parametrize("tile", [132, 276, 572])
def test_every_pixel_is_written_once_from_a_tile_on_the_pooling_grid(shape, tile):
    tiles = plan_tiles(shape, LIGHT, tile)
    written = np.zeros(shape, int)
    for t in tiles:
        written[t.write] += 1
        for axis in range(2):
            out = output_size(LIGHT, t.size[axis])
            write, crop = t.write[axis], t.crop[axis]
            assert crop.stop - crop.start == write.stop - write.start
            assert 0 <= crop.start and crop.stop <= out
            # the output pixel at crop index i is image pixel start + halo + i
            assert t.start[axis] + halo(LIGHT) + crop.start == write.start
            assert (write.start - crop.start) % 8 == 0  # output origin on the pooling grid
            assert t.size[axis] <= tile
    assert (written == 1).all()


def test_the_tiles_within_a_block_are_those_of_the_whole_plan_that_start_there():
    shape, tile = (1000, 1300), 132
    whole = plan_tiles(shape, LIGHT, tile)
    blocks = [
        (slice(r, r + 250), slice(c, c + 400))
        for r in (0, 250, 500, 750)
        for c in (0, 400, 800, 1200)
    ]
    seen = []
    for rows, cols in blocks:
        part = plan_tiles(shape, LIGHT, tile, within=(rows, cols))
        assert part == [
            t
            for t in whole
            if rows.start <= t.write[0].start < rows.stop
            and cols.start <= t.write[1].start < cols.stop
        ]
        seen += part
    assert sorted(t.start for t in seen) == sorted(t.start for t in whole)  # each once


def test_small_images_get_one_tile_that_just_covers_them():
    (tile,) = plan_tiles((7, 5), LIGHT, 572)
    assert tile.size == (100, 100)  # the smallest input whose output (12 px) covers 7 and 5
    assert output_size(LIGHT, tile.size[0]) >= 7 and output_size(LIGHT, tile.size[1]) >= 5


def test_invalid_and_too_small_tiles_are_refused():
    with pytest.raises(ValueError, match="use 268 or 276"):
        plan_tiles((500, 500), LIGHT, 270)
    with pytest.raises(ValueError, match="too small to tile with.*use 100"):
        plan_tiles((500, 500), LIGHT, 92)


def test_read_window_mirrors_like_numpy_pad():
    image = np.arange(6 * 9, dtype=float).reshape(6, 9)
    pad = 60
    padded = np.pad(image, pad, mode="symmetric")
    for (r, c), (h, w) in [((-3, -4), (10, 12)), ((2, 5), (30, 40)), ((-20, -20), (46, 49))]:
        expected = padded[pad + r : pad + r + h, pad + c : pad + c + w]
        np.testing.assert_array_equal(read_window(image, (r, c), (h, w)), expected)
    assert read_window(image[None], (0, 0), (2, 2)).shape == (1, 2, 2)


@pytest.mark.parametrize("depth", [1, 3])
def test_an_identity_network_reproduces_the_image(make_threshold_unet, depth):
    """cell probability = sigmoid(normalised pixel): tiling must not move or mix pixels."""
    image = np.random.default_rng(0).random((150, 173), dtype=np.float32)
    net = make_threshold_unet(depth, level=0.0, steepness=1.0)
    probabilities, _ = run(predict_tiled(net, image, NormalizationConfig(0, 100), tile_size=60))
    x = (image - image.min()) / (image.max() - image.min())
    np.testing.assert_allclose(probabilities[1], 1 / (1 + np.exp(-x)), atol=1e-6)


@pytest.fixture(scope="module")
def random_net():
    net = UNet(SMALL)
    net.reset_parameters(torch.Generator().manual_seed(0))
    return net.eval()


@pytest.mark.parametrize("tile", [180, 196, 276])
def test_tiled_equals_whole_image_prediction(random_net, tile):
    image = np.random.default_rng(1).random((203, 157), dtype=np.float32)
    whole = predict_image(random_net, image)
    tiled, events = run(predict_tiled(random_net, image, tile_size=tile, batch_size=3))
    assert len(plan_tiles(image.shape, SMALL, tile)) > 1  # really tiled
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert [e.done for e in events] == sorted({e.done for e in events})
    assert events[-1] == TilesDone(done=events[-1].total, total=events[-1].total)


@pytest.mark.parametrize("tile", [180, 196, 276])
@pytest.mark.parametrize("shape", [(203, 157), (13, 2)])
def test_tiled_flips_equal_whole_image_flips(random_net, tile, shape):
    """Each tile flips its own window, yet the result is the whole padded image's."""
    image = np.random.default_rng(4).random(shape, dtype=np.float32)
    whole = predict_image(random_net, image, flips=True)
    tiled, _ = run(predict_tiled(random_net, image, tile_size=tile, batch_size=2, flips=True))
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert np.abs(whole - predict_image(random_net, image)).max() > 1e-3  # flips do change it


def test_tiles_off_the_pooling_grid_would_differ(random_net):
    """Why the plan keeps origins on the grid: a 4 px shift changes the output."""
    image = np.random.default_rng(2).random((1, 1, 196, 196), dtype=np.float32)
    with torch.no_grad():
        a = random_net(torch.from_numpy(image[..., :188, :188]))[0, :, 4:, 4:]
        b = random_net(torch.from_numpy(image[..., 4:192, 4:192]))[0, :, :-4, :-4]
        c = random_net(torch.from_numpy(image[..., 8:196, 8:196]))[0, :, :-8, :-8]
        a8 = random_net(torch.from_numpy(image[..., :188, :188]))[0, :, 8:, 8:]
    assert (a - b).abs().max() > 1e-3  # shifted by 4: not the same
    torch.testing.assert_close(a8, c, atol=1e-5, rtol=0)  # shifted by 8: the same


@pytest.mark.parametrize("shape", [(2, 1), (1, 40), (13, 2)])
def test_tiny_images_work_and_match_the_whole_image(random_net, shape):
    image = np.random.default_rng(3).random(shape, dtype=np.float32)
    whole = predict_image(random_net, image)
    tiled, _ = run(predict_tiled(random_net, image, tile_size=196))
    assert tiled.shape == (2, *shape)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_padded_networks_are_not_tiled_silently():
    net = UNet(UNetConfig(depth=2, base_channels=2, padding="same"))
    with pytest.raises(ValueError, match="seamless only for networks with valid convolutions"):
        drain(predict_tiled(net, np.random.default_rng(0).random((40, 40))))


def test_bfloat16_makes_the_same_class_decisions_as_float32(random_net):
    image = np.random.default_rng(4).random((120, 130), dtype=np.float32)
    full, _ = run(predict_tiled(random_net, image, tile_size=196, precision="float32"))
    half, _ = run(predict_tiled(random_net, image, tile_size=196, precision="bfloat16"))
    assert half.dtype == np.float32
    assert np.abs(half - full).max() < 0.05
    assert ((half[1] > 0.5) == (full[1] > 0.5)).mean() > 0.99
    with pytest.raises(ValueError, match="precision 'double' is not known"):
        drain(predict_tiled(random_net, image, precision="double"))


class RunsOutOfMemory(torch.nn.Module):
    """Wraps a U-Net; raises OutOfMemoryError for batches above a pixel budget."""

    def __init__(self, net, budget):
        super().__init__()
        self.net, self.config, self.budget, self.seen = net, net.config, budget, []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        if x.numel() > self.budget:
            raise torch.OutOfMemoryError("simulated")
        return self.net(x)


def test_out_of_memory_halves_the_batch_then_the_tile_and_still_matches(random_net):
    image = np.random.default_rng(5).random((300, 280), dtype=np.float32)
    whole = predict_image(random_net, image)
    model = RunsOutOfMemory(random_net, budget=2 * 140 * 140)
    tiled, events = run(predict_tiled(model, image, tile_size=276, batch_size=4))
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert model.seen[:3] == [(4, 1, 276, 276), (2, 1, 276, 276), (1, 1, 276, 276)]
    assert model.seen[3] == (1, 1, 140, 140)  # then the tile is halved, batches of one
    assert events[-1].done == events[-1].total
    with pytest.raises(MemoryError, match="even with one tile"):
        drain(predict_tiled(RunsOutOfMemory(random_net, budget=10), image))


@pytest.mark.parametrize("length", [50, 256, 700, 1024, 3000])
def test_the_chosen_tile_wastes_least_and_fits_the_memory(length):
    budget = tile_memory(LIGHT, 700, batch_size=4)
    chosen = choose_tile_size(length, LIGHT, memory=budget, batch_size=4)
    assert (
        tile_memory(LIGHT, chosen, 4) <= budget
        or chosen == plan_tiles((length, 1), LIGHT, 700)[0].size[0]
    )

    def cost(size):
        tiles = plan_tiles((length, 1), LIGHT, size)
        return tiles[0].size[0] * len(tiles)

    candidates = range(smallest_tile(LIGHT), 701, 8)
    assert cost(chosen) == min(cost(s) for s in candidates)
    assert cost(chosen) <= cost(572)


def test_no_tile_fits_in_too_little_memory():
    with pytest.raises(MemoryError, match="only 0 MiB are available"):
        choose_tile_size(1000, LIGHT, memory=1000)


def test_automatic_tiles_give_the_whole_image_result(random_net):
    image = np.random.default_rng(6).random((333, 250), dtype=np.float32)
    budget = tile_memory(SMALL, 160, batch_size=2)
    tiled, events = run(predict_tiled(random_net, image, batch_size=2, memory=budget))
    np.testing.assert_allclose(tiled, predict_image(random_net, image), atol=1e-5)
    assert events[-1].total > 1


class LazyImage:
    """An image that can only be read by slicing; records the size of every read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        block = self.data[key]
        self.reads.append(block.size)
        return block

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole image was loaded")


def test_lazy_images_are_read_window_by_window_into_a_zarr_output(random_net, tmp_path):
    import zarr

    data = (np.random.default_rng(7).random((400, 380)) * 1000).astype(np.uint16)
    lazy = LazyImage(data)
    out = zarr.open(
        str(tmp_path / "p.zarr"), mode="w", shape=(2, 400, 380), chunks=(2, 128, 128), dtype="f4"
    )
    tiled, _ = run(predict_tiled(random_net, lazy, tile_size=196, out=out))
    assert tiled is out
    percentile_sample, *windows = lazy.reads  # small image: the sample is all of it
    assert percentile_sample == data.size
    assert len(windows) > 4 and max(windows) <= 196 * 196
    np.testing.assert_allclose(out[:], predict_image(random_net, data), atol=1e-5)


def test_large_images_take_their_percentiles_from_a_subsample():
    from napari_unet.core.images import intensity_range

    image = np.random.default_rng(8).normal(100, 10, (2000, 3000)).astype(np.float32)
    exact = np.percentile(image, [1, 99.8])
    sampled = intensity_range(image, max_samples=100_000)
    np.testing.assert_allclose(sampled, exact, rtol=0.01)
    with pytest.raises(ValueError, match="expected"):
        run(predict_tiled(UNet(SMALL), image[:50, :50], out=np.zeros((2, 10, 10))))


def test_tile_sizes_that_would_spend_the_work_on_halo_or_memory_are_changed_and_said():
    light = UNetConfig(depth=4, base_channels=16)  # halo 44 px
    assert usable_tile_size(light, 276, memory=2**31) == (276, None)
    size, note = usable_tile_size(light, 90, memory=2**31)  # 92 would compute 4 px of 92
    assert size == 180 and halo_share(light, 180) <= MAX_HALO_SHARE < halo_share(light, 172)
    assert note.startswith("tile size 90 spends 99.8% of the work on halo") and "using 180" in note
    size, note = usable_tile_size(light, 100_000, memory=2**30)
    assert tile_memory(light, size) <= 2**30 < tile_memory(light, 2 * size)
    assert note.startswith("tile size 100000 needs about") and f"using {size}" in note
    assert usable_tile_size(light, 277, memory=2**31) == (
        284,
        "tile size 277 is not a valid input size of this network; using 284",
    )
    for wrong in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="must be a whole number of pixels above 0"):
            usable_tile_size(light, wrong, memory=2**31)


def test_prediction_says_which_tile_size_it_used(random_net):
    image = np.random.default_rng(6).random((120, 130), dtype=np.float32)
    tiled, events = run(predict_tiled(random_net, image, tile_size=100))
    notes = [e.message for e in events if isinstance(e, Status)]
    assert len(notes) == 1 and "using 180" in notes[0]
    np.testing.assert_allclose(tiled, predict_image(random_net, image), atol=1e-5)


class CpuAllocatorFails(RunsOutOfMemory):
    """The CPU allocator's failure is a plain RuntimeError, not an OutOfMemoryError."""

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        if x.numel() > self.budget:
            raise RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                "allocate memory: you tried to allocate 118 GiB"
            )
        return self.net(x)


def test_the_cpu_allocators_failure_is_handled_like_running_out_of_memory(random_net):
    image = np.random.default_rng(5).random((300, 280), dtype=np.float32)
    model = CpuAllocatorFails(random_net, budget=2 * 140 * 140)
    tiled, _ = run(predict_tiled(model, image, tile_size=276, batch_size=4))
    np.testing.assert_allclose(tiled, predict_image(random_net, image), atol=1e-5)

    class Broken(RunsOutOfMemory):
        def forward(self, x):
            raise RuntimeError("a bug, not memory")

    with pytest.raises(RuntimeError, match="a bug"):  # other errors are not retried
        run(predict_tiled(Broken(random_net, budget=0), image, tile_size=276))
