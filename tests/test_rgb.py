"""``channels: rgb`` recipes: colour frames on the store's ``channel`` dimension, everything
that needs one intensity on their BT.601 luma, and gray recipes exactly as before."""

from __future__ import annotations

import numpy as np
import pytest
from plot_stores import TINY, build_store, small

from mer_prep.datasets import scan_dataset
from mer_prep.face import region_mask
from mer_prep.pipeline.process import process_sample
from mer_prep.pipeline.render import luma, magnify_clip
from mer_prep.recipes import builtin_recipes
from mer_prep.recipes.model import MagnifyConfig
from mer_prep.store.schema import load_schema

# The hashes of the built-in recipes before ``channels`` and ``flow.working_size`` existed.
GRAY_HASHES = {
    "broadbent64": "78f4ab8e2f362999",
    "dacwb3d": "cc53ecaa960d7138",
    "dacwb3d_aug": "75864262993ac787",
    "ha3d": "927974cfa7122f3d",
    "ha3d_aug": "e05f036c5e260b78",
    "mbcc64": "e65862a59a783ff0",
    "msres3d": "719ac3349cce8528",
    "msres3d_aug": "0a94729bffdcd177",
}


def test_gray_recipes_keep_their_hashes_and_parameters():
    recipes = builtin_recipes()
    for name, expected in GRAY_HASHES.items():
        recipe = recipes[name]
        assert recipe.channels == "gray"
        assert recipe.hash == expected, name
        parameters = recipe.parameters()
        assert "channels" not in parameters
        assert parameters["flow"] is None or "working_size" not in parameters["flow"]
        assert "channel" not in recipe.array_specs()["frames"].dims


def test_rgb_recipe_stores_frames_and_halves_on_the_channel_dimension():
    gray, rgb = small("ha3d", 64), small("ha3d", 64, channels="rgb")
    specs = rgb.array_specs()
    assert specs["frames"].dims == ("frame", "y", "x", "channel")
    assert specs["frames"].shape == (16, 64, 64, 3)
    assert specs["upper"].dims == ("frame", "y_half", "x", "channel")
    assert specs["upper"].shape == (16, 32, 64, 3)
    assert specs["landmarks"] == gray.array_specs()["landmarks"]
    assert rgb.parameters()["channels"] == "rgb" and rgb.hash != gray.hash
    flow = small("msres3d", 64, channels="rgb").array_specs()
    assert flow["flow"].dims == ("frame", "y", "x", "uv")
    assert flow["strain"].dims == ("frame", "y", "x")
    dims = load_schema()["properties"]["arrays"]["additionalProperties"]["properties"]["dims"]
    assert "channel" in dims["items"]["enum"]


@pytest.fixture(scope="module")
def tiny(synth_dataset):
    root, _ = synth_dataset("casme2", **TINY)  # colour JPEGs, 240x320
    return root, scan_dataset("casme2", root).samples


def test_rgb_frames_are_colour_and_their_luma_is_the_gray_recipe(tiny):
    _, samples = tiny
    sample = samples[0]
    gray = process_sample(sample, small("ha3d", 64))
    rgb = process_sample(sample, small("ha3d", 64, channels="rgb"))
    frames = rgb.arrays["frames"]
    assert frames.shape == (16, 64, 64, 3) and frames.dtype == np.float16
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert np.abs(frames[..., 0] - frames[..., 2]).astype(np.float32).mean() > 0.01  # colour
    # same box and landmarks (both from the gray onset), same masks, luma within JPEG rounding
    assert rgb.face_box == gray.face_box and rgb.detector == gray.detector
    np.testing.assert_array_equal(rgb.arrays["landmarks"], gray.arrays["landmarks"])
    recipe = small("ha3d", 64)
    mask = region_mask(
        rgb.arrays["landmarks"], (64, 64), regions=recipe.mask.regions, margin=recipe.mask.margin
    )
    assert mask.any() and (frames[:, mask] == 0).all()
    assert (gray.arrays["frames"][:, mask] == 0).all()
    difference = np.abs(luma(frames.astype(np.float32)) - gray.arrays["frames"].astype(np.float32))
    assert difference.mean() < 0.002 and difference.max() < 0.02
    np.testing.assert_array_equal(rgb.arrays["upper"], frames[:, :32])
    np.testing.assert_array_equal(rgb.arrays["lower"], frames[:, 32:])


def test_rgb_flow_is_computed_on_the_luma(tiny):
    _, samples = tiny
    recipe = small("msres3d", 48, magnify=None)
    gray = process_sample(samples[1], recipe)
    rgb = process_sample(samples[1], small("msres3d", 48, magnify=None, channels="rgb"))
    assert rgb.arrays["frames"].shape == (16, 48, 48, 3)
    assert rgb.arrays["flow"].shape == gray.arrays["flow"].shape == (16, 48, 48, 2)
    flow_gray = gray.arrays["flow"].astype(np.float32)
    flow_rgb = rgb.arrays["flow"].astype(np.float32)
    # the luma of the colour frames differs from libjpeg's gray by rounding only
    assert np.abs(flow_rgb - flow_gray).mean() < 0.25 * np.abs(flow_gray).mean() + 0.01


def test_magnification_of_each_channel_is_the_magnified_luma():
    t, size = np.arange(24)[:, None, None], 32
    yy, xx = np.mgrid[0:size, 0:size]
    blob = np.exp(-((xx - 16 - 0.4 * np.sin(2 * np.pi * 5 * t / 100)) ** 2 + (yy - 16) ** 2) / 30)
    clip = np.stack([0.3 + 0.3 * blob, 0.5 - 0.2 * blob, 0.4 + 0.1 * blob], -1).astype(np.float32)
    config = MagnifyConfig(alpha=5, cutoff_wavelength=8, f_low=1.0, f_high=20.0)
    colour = magnify_clip(clip, config, fps=100.0)
    assert colour.shape == clip.shape
    assert not np.allclose(colour, clip)
    np.testing.assert_allclose(luma(colour), magnify_clip(luma(clip), config, fps=100.0), atol=2e-3)


def test_rgb_store_round_trip(tiny, tmp_path):
    from click.testing import CliRunner

    from mer_prep.cli import main
    from mer_prep.store import open_store

    root, samples = tiny
    recipe = small("mbcc64", 32, name="mbcc32rgb", channels="rgb")
    path = build_store(root, tmp_path / "store", recipe)
    store = open_store(path)
    frames = store.array("frames", dtype="float32")
    assert frames.shape == (len(samples), 2, 32, 32, 3)
    assert store.attrs["arrays"]["frames"]["dims"] == ["sample", "frame", "y", "x", "channel"]
    assert store.xarray()["frames"].dims == ("sample", "frame", "y", "x", "channel")
    assert set(store.table["detector"]) == {"hog"}
    info = CliRunner().invoke(main, ["info", str(path)])
    assert info.exit_code == 0 and f"detector: hog {len(samples)}" in info.output
    assert "frames     (sample, frame, y, x, channel)" in info.output
    # the pictures of an RGB store keep its colour
    figure = store.plot.sample(0)
    assert figure.axes
    from mer_prep.plot.colour import gray_to_rgb

    colour = gray_to_rgb(frames[0, 0])
    assert colour.shape == (32, 32, 3) and np.abs(np.diff(colour.astype(int), axis=2)).max() > 0
    report = tmp_path / "report.html"
    shown = CliRunner().invoke(main, ["show", str(path), "--out", str(report)])
    assert shown.exit_code == 0, shown.output
    assert report.stat().st_size > 1000
