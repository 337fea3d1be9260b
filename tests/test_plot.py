"""mer_prep.plot: flow colour against known motion, landmarks where they are stored, contact
sheets with one tile per sample, the figures of ``store.plot`` and ``run.plot``."""

import colorsys

import cv2
import numpy as np
import pytest
from plot_stores import TINY, build_store, small
from skimage import color, data

from mer_prep.datasets import scan_dataset
from mer_prep.errors import InvalidArgumentError, MerPrepError, UnknownNameError
from mer_prep.motion.flow import flows_from_reference
from mer_prep.plot.colour import (
    LANDMARK_RGB,
    colour_wheel,
    draw_landmarks,
    flow_hue_deg,
    flow_to_rgb,
    gray_to_rgb,
    robust_max,
    to_display,
    upscale,
)
from mer_prep.plot.panels import panels, source_difference
from mer_prep.plot.report import png_bytes
from mer_prep.plot.runs import RunPlots, leaderboard, run_markdown
from mer_prep.store import open_store
from mer_prep.synth.animate import make_scene, render_frames

SIZE = 134


def _hue(rgb) -> float:
    return 360.0 * colorsys.rgb_to_hsv(*(np.asarray(rgb, float) / 255))[0]


def _angle_between(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _bump(centre, sigma):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))


@pytest.fixture(scope="module")
def face():
    gray = color.rgb2gray(data.astronaut())[20:240, 120:340]
    image = cv2.resize(gray.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_AREA) * 255
    return make_scene(np.repeat(image[..., None], 3, axis=2), gray=True)


# --- flow colour --------------------------------------------------------------------------------


@pytest.mark.parametrize("degrees", [0, 45, 90, 135, 180, 225, 270, 315])
def test_constructed_flow_has_the_hue_of_its_direction_and_white_where_still(degrees):
    theta = np.radians(degrees)  # counter-clockwise as displayed: dy = -sin
    flow = np.zeros((64, 64, 2), np.float32)
    flow[20:44, 20:44] = (1.5 * np.cos(theta), -1.5 * np.sin(theta))
    rgb = flow_to_rgb(flow)
    assert _angle_between(_hue(rgb[32, 32]), degrees) < 1.0
    assert (rgb[2, 2] == 255).all()  # no motion: white
    assert flow_hue_deg(np.cos(theta), -np.sin(theta)) == pytest.approx(degrees % 360, abs=1e-6)


@pytest.mark.parametrize("degrees", [0, 90, 200, 300])
def test_tvl1_flow_of_a_rendered_motion_shows_its_direction(face, degrees):
    """A face rendered with a known local motion (1.5 px at the mouth, none elsewhere): the
    flow colour there has the motion's hue within 30 degrees; the still forehead stays near
    white."""
    theta = np.radians(degrees)
    bump = _bump((70, 100), 10)
    field = np.stack([1.5 * np.cos(theta) * bump, -1.5 * np.sin(theta) * bump], axis=-1)
    frames = render_frames(
        face,
        field.astype(np.float32),
        np.array([0.0, 1.0]),
        np.zeros((2, 2)),
        0.5,
        np.random.default_rng(degrees),
    )
    flow = flows_from_reference(frames.astype(np.float32) / 255, 0)[1]
    rgb = flow_to_rgb(flow)
    moving = bump > 0.7
    hues = np.array([_hue(p) for p in rgb[moving]])
    mean_hue = np.degrees(np.angle(np.exp(1j * np.radians(hues)).mean())) % 360
    assert _angle_between(mean_hue, degrees) < 30, (mean_hue, degrees)
    still = rgb[10:30, 40:95]  # the forehead, far from the bump
    assert still.min(axis=-1).mean() > 200, still.min(axis=-1).mean()


def test_colour_wheel_agrees_with_flow_colours():
    wheel = colour_wheel(97)
    centre = 48
    for degrees in (0, 60, 150, 250):
        theta = np.radians(degrees)
        x, y = centre + 40 * np.cos(theta), centre - 40 * np.sin(theta)
        assert _angle_between(_hue(wheel[int(round(y)), int(round(x))]), degrees) < 3
    assert (wheel[centre, centre] >= 250).all() and (wheel[0, 0] == 255).all()


def test_bad_flow_shapes_raise_our_error():
    with pytest.raises(InvalidArgumentError):
        flow_to_rgb(np.zeros((4, 4, 3)))
    with pytest.raises(MerPrepError):
        flow_to_rgb(np.zeros((4, 4, 2)), scale=0)


# --- landmarks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1, 2, 100 / 134])
def test_landmarks_are_drawn_centred_on_their_coordinates(factor):
    points = np.array([[5.0, 7.0], [20.0, 30.0], [40.5, 12.25], [60.0, 60.0]])
    image = upscale(gray_to_rgb(np.full((64, 64), 0.5)), factor)
    drawn = draw_landmarks(image, points, factor)
    green = np.all(drawn == LANDMARK_RGB, axis=-1)
    for x, y in to_display(points, factor):
        assert green[int(round(y)), int(round(x))], (x, y)
    count, _, _, centroids = cv2.connectedComponentsWithStats(green.astype(np.uint8))
    assert count - 1 == len(points)  # one dot per point, nothing else green
    found = sorted(map(tuple, np.round(centroids[1:], 1)))
    expected = sorted(map(tuple, np.round(to_display(points, factor), 1)))
    assert np.allclose(found, expected, atol=0.6)


# --- stores --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_root(synth_dataset):
    return synth_dataset("casme2", **TINY)[0]


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, tiny_root):
    """msres3d at 64 px (keyframes, magnification, flow, strain, landmarks) on 2x2 clips."""
    return open_store(
        build_store(
            tiny_root,
            tmp_path_factory.mktemp("plot") / "msres3d64",
            small("msres3d", 64, name="msres3d64"),
        )
    )


def _pixels(figure):
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3]


def test_sample_figure_draws_the_stored_landmarks_where_they_are(tiny_store):
    figure = tiny_store.plot.sample(0)
    landmarks = tiny_store.array("landmarks", rows=[0])[0]
    width = tiny_store.recipe.align.size[1]
    pixels = _pixels(figure)
    height_px = pixels.shape[0]
    for key in ("onset", "apex"):
        gid = f"{tiny_store.table['sample_id'][0]}|{key}"
        ax = next(a for a in figure.axes if a.get_gid() == gid)
        box = ax.get_window_extent()  # the image fills the axes (aspect equal)
        inside = landmarks[((landmarks > -0.5) & (landmarks < width - 0.5)).all(axis=1)]
        assert len(inside) > 55  # the chin may lie below a tight crop
        for x, y in inside:
            col = box.x0 + (x + 0.5) / width * box.width
            row = height_px - (box.y1 - (y + 0.5) / width * box.height)
            patch = pixels[int(row) - 1 : int(row) + 2, int(col) - 1 : int(col) + 2].reshape(-1, 3)
            assert any(g > 180 and r < 110 and b < 110 for r, g, b in patch), (key, x, y)


def test_contact_sheet_has_one_tile_per_sample(tiny_store):
    ids = list(tiny_store.table["sample_id"])
    sheet = tiny_store.plot.contact_sheet(samples=[ids[0], 2])
    tiles = {ax.get_gid().split("|")[0] for ax in sheet.axes}
    assert tiles == {ids[0], ids[2]}
    label = tiny_store.table["label_name"][1]
    expected = int((tiny_store.table["label_name"] == label).sum())
    sheet = tiny_store.plot.contact_sheet(label=label)
    assert len({ax.get_gid().split("|")[0] for ax in sheet.axes}) == expected
    assert (
        len(
            {
                ax.get_gid().split("|")[0]
                for ax in tiny_store.plot.contact_sheet(label=label, n=1).axes
            }
        )
        == 1
    )
    with pytest.raises(UnknownNameError):
        tiny_store.plot.contact_sheet(label="no such class")


def test_store_figures_and_notebook_summary(tiny_store):
    flow = tiny_store.plot.flow(1)
    assert sum(1 for ax in flow.axes if "|flow|" in (ax.get_gid() or "")) == 16
    assert tiny_store.plot.classes().axes
    assert tiny_store.plot.split("loso").axes
    with pytest.raises(UnknownNameError):
        tiny_store.plot.sample("casme2/nobody/nothing")
    summary = tiny_store._repr_html_()
    for text in (
        "casme2",
        "msres3d64",
        tiny_store.version_id,
        "flow",
        "16 × 64 × 64 × 2",
        "surprise 2",
    ):
        assert text in summary, text


def test_magnification_shown_against_the_unmagnified_source_difference(tiny_store, tiny_root):
    """Only magnified frames are stored; the source frames give the difference without it
    (same alignment: landmarks refitted in the stored face box), drawn beside it."""
    samples = {s.sample_id: s for s in scan_dataset("casme2", tiny_root).samples}
    view = tiny_store.plot.view(0)
    plain, why = source_difference(view, samples[view.sample_id])
    assert plain is not None, why
    stored = view.frame(view.apex_pos) - view.frame(view.onset_pos)
    assert robust_max(stored) > 2 * robust_max(plain) > 0  # alpha 10 amplified the motion
    keys = [p.key for p in panels(view, source=samples[view.sample_id])]
    assert keys.index("unmagnified") == keys.index("difference") + 1
    assert "unmagnified" not in [p.key for p in panels(view)]
    assert source_difference(view, None) == (None, "no source frames")


def test_pngs_are_lossless():
    rng = np.random.default_rng(0)
    gray = gray_to_rgb(rng.random((20, 30)))
    few = draw_landmarks(gray_to_rgb(np.full((20, 30), 0.3)), np.array([[4.0, 5.0]]))
    many = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for image in (gray, few, many):
        decoded = cv2.imdecode(np.frombuffer(png_bytes(image), np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(decoded[..., ::-1], image)


# --- runs ----------------------------------------------------------------------------------------


class _Epoch:
    def __init__(self, epoch, loss, validation):
        self.epoch, self.loss, self.validation = epoch, loss, validation


class _Fold:
    def __init__(self, name, uf1, uar, n):
        self.name = name
        self.metrics = {"uf1": uf1, "uar": uar, "n": n}
        self.curves = [_Epoch(e, 1.0 / (e + 1), None if e % 2 else 0.5) for e in range(5)]


class FakeRun:
    """What the report needs of a run record, and nothing else."""

    def __init__(self, run_id, uf1):
        self.run_id, self.model, self.variant, self.split = run_id, "mbcc", "difference", "loso"
        self.created, self.leaky = "2026-01-01T00:00:00+00:00", False
        self.store = {"class_names": ["a", "b", "c"], "version_id": "v-1"}
        self.metrics = {
            "uf1": uf1,
            "uar": 0.5,
            "accuracy": 0.6,
            "n": 12,
            "confusion": [[3, 1, 0], [0, 4, 0], [1, 0, 3]],
        }
        self.folds = [_Fold("casme2/sub01", 0.4, 0.5, 6), _Fold("casme2/sub02", None, None, 0)]


def test_run_plots_over_the_protocol():
    run = FakeRun("r1", 0.45)
    confusion = RunPlots(run).confusion()
    cells = [t.get_text() for t in confusion.axes[0].texts]
    assert cells == ["3", "1", "0", "0", "4", "0", "1", "0", "3"]
    assert [t.get_text() for t in confusion.axes[0].get_xticklabels()] == ["a", "b", "c"]
    assert RunPlots(run).folds().axes and RunPlots(run).learning_curves().axes
    board = leaderboard([run, FakeRun("r2", 0.7), FakeRun("r3", float("nan"))])
    assert list(board["run_id"]) == ["r2", "r1", "r3"]
    markdown = run_markdown(run)
    assert "](data:image/png;base64," in markdown
    assert "| casme2/sub01 | 6 | 0.400 | 0.500 |" in markdown


# --- pictures that tell the truth ----------------------------------------------------------------


class _KeptFold(_Fold):
    def __init__(self, name, validation, best_epoch):
        super().__init__(name, 0.5, 0.5, 6)
        self.curves = [_Epoch(e, 1.0 / e, validation[e - 1]) for e in range(1, 6)]
        self.best_epoch, self.validation_metric = best_epoch, "uf1" if validation[0] else None


def test_run_pictures_show_the_schemes_met_classes_chance_and_the_kept_epoch():
    """A 7-class scheme of which the run met 3 classes: a 3x3 confusion naming the 4 left out;
    the per-fold bars carry chance (1/3); the validation curves span 0-1 with each fold's kept
    epoch marked, and a run without validation says so."""
    run = FakeRun("r7", 0.5)
    names = ["happiness", "disgust", "repression", "surprise", "fear", "sadness", "others"]
    run.store = {"class_names": names, "version_id": "v-1"}
    confusion = np.zeros((7, 7), int)
    confusion[np.ix_([0, 1, 3], [0, 1, 3])] = [[3, 1, 0], [0, 4, 0], [1, 0, 3]]
    run.metrics = {**run.metrics, "confusion": confusion.tolist()}
    figure = RunPlots(run).confusion()
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == [
        "happiness",
        "disgust",
        "surprise",
    ]
    assert [t.get_text() for t in figure.axes[0].texts] == [
        "3",
        "1",
        "0",
        "0",
        "4",
        "0",
        "1",
        "0",
        "3",
    ]
    assert "never predicted: repression, fear, sadness, others" in " ".join(
        figure.axes[0].get_title().split()
    )

    (chance,) = [line for line in RunPlots(run).folds().axes[0].lines if line.get_gid() == "chance"]
    assert chance.get_ydata()[0] == pytest.approx(1 / 3)

    run.folds = [
        _KeptFold("casme2/sub01", [0.16, 0.17, 0.175, 0.17, 0.16], 3),
        _KeptFold("casme2/sub02", [0.5, 0.4, 0.4, 0.3, 0.3], 1),
    ]
    loss_ax, val_ax = RunPlots(run).learning_curves().axes
    assert val_ax.get_ylim() == pytest.approx((0, 1.02))  # not auto-scaled to 0.16-0.175
    kept = {
        line.get_gid(): (line.get_xdata()[0], line.get_ydata()[0])
        for line in val_ax.lines
        if (line.get_gid() or "").startswith("kept|")
    }
    assert kept == {"kept|sub01": (3, 0.175), "kept|sub02": (1, 0.5)}
    assert {line.get_gid() for line in loss_ax.lines if line.get_gid()} == set(kept)
    run.folds = [_KeptFold("casme2/sub01", [None] * 5, 5)]
    _, val_ax = RunPlots(run).learning_curves().axes
    assert [t.get_gid() for t in val_ax.texts] == ["no-validation"]


def test_colour_scales_leave_the_border_out_and_say_what_they_are():
    """A strain spike on the image border does not set the scale; the caption names the
    percentile and the maximum, so two numbers for one field cannot disagree unexplained."""
    from mer_prep.plot.colour import border_width, colour_range, flow_range

    rng = np.random.default_rng(0)
    strain = rng.uniform(0, 0.01, (64, 64)).astype(np.float32)
    strain[30:34, 30:34] = 0.05  # the expression
    strain[:, 0] = 0.9  # a finite-difference artefact at the edge
    scale = colour_range(strain)
    assert scale.border == border_width(64, 64) == 3
    assert scale.maximum == pytest.approx(0.05) and scale.maximum_all == pytest.approx(0.9)
    assert scale.top == pytest.approx(np.percentile(strain[3:61, 3:61], 99.5))
    assert robust_max(strain) > 0.5  # what set the scale before
    text = scale.describe(digits=3)
    assert text.startswith(f"{scale.top:.3f} = 99.5th percentile, max 0.050") and "0.900" in text
    flow = np.zeros((40, 40, 2), np.float32)
    flow[10:30, 10:30, 0] = 2.0
    flow[0, :, 1] = 9.0
    assert flow_range(flow).top == pytest.approx(2.0) and flow_range(flow).maximum == 2.0


def test_the_frame_strip_and_report_faces_are_large_enough_to_see(tiny_store, tmp_path):
    from mer_prep.plot.panels import STRIP_HEIGHT_PX, strip
    from mer_prep.plot.report import FACE_DISPLAY_PX, write_report
    from mer_prep.plot.sample_view import sample_view

    assert strip(sample_view(tiny_store, 0)).shape[0] == STRIP_HEIGHT_PX == 96
    sample = tiny_store.table["sample_id"].iloc[0]
    page = write_report(tiny_store, tmp_path / "r.html", samples=[sample]).path.read_text()
    import re

    faces = re.findall(
        r'<label class=zoom><input type=checkbox><img [^>]*width="(\d+)" '
        r'height="(\d+)" alt="' + re.escape(sample) + r": (?!keyframes)",
        page,
    )
    assert faces and all(int(w) >= FACE_DISPLAY_PX for w, _ in faces)
    assert ".zoom input:checked+img{position:fixed" in page  # click: enlarged, no script
