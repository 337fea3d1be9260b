"""Training-free spotters (issue 23 items 3 and 5): MDMD and the threshold spotter find planted
MEs and MaEs well above a random-interval baseline of the same count; shuffled truths score at
chance; LOSO tuning reads training subjects only; a run tuned on the test subject is LEAKY; the
record on the runs branch, the command and the timeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting import score_spotting
from mer_prep.evaluation.spotting_intervals import SpotPrediction, SpotTruth
from mer_prep.motion.video_motion import VideoMotion
from mer_prep.spotting.records import (
    list_spot_runs,
    load_spot_run,
    save_spot_run,
    spot_record,
    verify_spot_runs,
)
from mer_prep.spotting.spotters import SpotParams, frame_difference, spot_video
from mer_prep.spotting.tuning import SpotGrid, SpotVideo, spot_loso, tune
from mer_prep.store.repo import StoreLocation, open_repository
from mer_prep.synth.long_motion import planted_motion_set

KS = (3, 6, 10)
#: a small grid: the fast tier tunes 6 folds x 2 methods on it in about a second each
GRID = SpotGrid(ps=(0.3, 0.5), smooths=(1, 3), rels=(0.3, 0.5), splits_s=(0.4, 0.5))
PARAMS = SpotParams(k_me=3, k_mae=6, p=0.5, smooth=1, rel=0.3, me_window=(3, 15))


def _videos(n_subjects: int = 6, seed: int = 0) -> list[SpotVideo]:
    motions, truths = planted_motion_set(n_subjects=n_subjects, ks=KS, seed=seed)
    return [
        SpotVideo(
            {k: motions[k][i] for k in KS},
            tuple(t for t in truths if t.video_key == first.video_id),
        )
        for i, first in enumerate(motions[KS[0]])
    ]


@pytest.fixture(scope="module")
def videos() -> list[SpotVideo]:
    return _videos()


def _truths(videos):
    return [t for v in videos for t in v.truths]


def _keys(videos):
    return [v.key for v in videos]


def _moved_at_random(intervals, videos, rng) -> list:
    """Every interval (a prediction or a truth) moved to a random place of its video, of the
    same kind and length: with predictions, the random baseline a spotter must beat; with
    truths, shuffled ground truth."""
    n_frames = {v.key: v.first.n_frames for v in videos}
    out = []
    for i in intervals:
        onset = int(rng.integers(1, n_frames[i.video_key] - i.length + 2))
        out.append(dataclasses.replace(i, onset=onset, offset=onset + i.length - 1))
    return out


def _chance(predictions, truths, videos, shuffle: bool, n: int = 20) -> float:
    rng = np.random.default_rng(0)
    f1 = []
    for _ in range(n):
        preds = predictions if shuffle else _moved_at_random(predictions, videos, rng)
        truth = _moved_at_random(truths, videos, rng) if shuffle else truths
        f1.append(score_spotting(preds, truth, _keys(videos)).overall.f1)
    return float(np.mean(f1))


# --- the spotters --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["mdmd", "threshold"])
def test_spotters_find_the_planted_expressions_far_above_random_intervals(videos, method):
    predictions = [p for v in videos for p in spot_video(v.motions, method, PARAMS).intervals]
    score = score_spotting(predictions, _truths(videos), _keys(videos))
    assert score.by_kind["mae"].f1 >= 0.9 and score.by_kind["me"].recall >= 0.8
    chance = _chance(predictions, _truths(videos), videos, shuffle=False)
    assert score.overall.f1 >= 0.6 and score.overall.f1 > 4 * chance, (score.overall, chance)
    # the same predictions against truths moved at random score at chance
    shuffled = _chance(predictions, _truths(videos), videos, shuffle=True)
    assert shuffled < 0.15 and abs(shuffled - chance) < 0.1


def test_intervals_are_in_the_videos_numbering_and_blinks_are_not_spotted(videos):
    spotted = spot_video(videos[0].motions, "mdmd", PARAMS)
    numbers = videos[0].first.frame_numbers
    assert len(spotted.curve) == len(numbers) == len(spotted.frames)
    assert spotted.frames[0] == numbers[0] == 1  # the synthetic videos number frames from 1
    for p in spotted.intervals:
        assert numbers[0] <= p.onset <= p.offset <= numbers[-1] and p.video_key == videos[0].key
    # the empty video (blinks only, eyes moving 0.6 px) shows noise only: the eyes are not read
    empty = next(v for v in videos if not v.truths)
    quiet = spot_video(empty.motions, "threshold", PARAMS)
    assert quiet.curve.max() < 0.25 * spot_video(videos[0].motions, "threshold", PARAMS).curve.max()


def test_frame_difference_and_parameter_checks():
    rows = np.array([1.0, 2.0, 3.0])
    assert frame_difference(rows, 2).tolist() == [1.0, 2.0, 2.0, 2.0, 3.0]  # k=2: 5 frames
    with pytest.raises(InvalidArgumentError, match="p must be"):
        SpotParams(k_me=3, k_mae=3, p=1.5)
    with pytest.raises(InvalidArgumentError, match="me_window"):
        SpotParams(k_me=3, k_mae=3, p=0.5, me_window=(9, 3))
    motion = _videos(2)[0].motions
    with pytest.raises(InvalidArgumentError, match="k=7"):
        spot_video(motion, "mdmd", dataclasses.replace(PARAMS, k_me=7))
    with pytest.raises(InvalidArgumentError, match="unknown spotting method"):
        spot_video(motion, "oracle", PARAMS)
    assert SpotParams.from_dict(PARAMS.as_dict()) == PARAMS


# --- tuning ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results(videos):
    return {m: spot_loso(videos, m, GRID) for m in ("mdmd", "threshold")}


@pytest.mark.parametrize("method", ["mdmd", "threshold"])
def test_loso_tuned_on_training_subjects_spots_well_above_chance(videos, results, method):
    result = results[method]
    assert not result.leaky and len(result.folds) == 6
    for fold in result.folds:
        assert fold.test_subject not in fold.tuned_on and len(fold.tuned_on) == 5
        assert fold.tuned.params.k_me in KS and fold.tuned.params.k_mae in KS
    overall = result.score.overall
    chance = _chance(list(result.predictions), _truths(videos), videos, shuffle=False)
    assert overall.f1 >= 0.6 and overall.f1 > 4 * chance, (overall, chance)
    assert result.score.n_videos == len(videos) and result.score.n_videos_without_truth == 6
    shuffled = _chance(list(result.predictions), _truths(videos), videos, shuffle=True)
    assert shuffled < 0.15


def test_tuning_never_reads_the_test_subject(videos, results):
    """A test subject whose motion would change the tuned values does not change its fold's."""
    test_subject = videos[0].subject
    loud = []
    for v in videos:
        if v.subject != test_subject:
            loud.append(v)
            continue
        # its motion scaled and its ME shapes stretched: tuning on it picks other values
        motions = {
            k: dataclasses.replace(
                m,
                magnitude=np.roll(m.magnitude, 7, axis=0) ** 0.5,
                main_direction=np.roll(m.main_direction, 7, axis=0) ** 0.5,
            )
            for k, m in v.motions.items()
        }
        loud.append(SpotVideo(motions, v.truths))
    mine = [v for v in loud if v.subject == test_subject]
    assert tune(mine, "mdmd", GRID).params != results["mdmd"].folds[0].tuned.params
    changed = spot_loso(loud, "mdmd", GRID)
    assert changed.folds[0].test_subject == test_subject
    assert changed.folds[0].tuned == results["mdmd"].folds[0].tuned


def test_tune_is_handed_the_training_videos_only(videos, monkeypatch):
    """By construction: every call of ``tune`` in a clean run gets the videos of the fold's
    training subjects, never one of its test subject."""
    from mer_prep.spotting import tuning

    seen: list[set[str]] = []
    real = tuning.tune

    def spy(tuning_videos, *args, **kwargs):
        seen.append({v.subject for v in tuning_videos})
        return real(tuning_videos, *args, **kwargs)

    monkeypatch.setattr(tuning, "tune", spy)
    result = tuning.spot_loso(videos, "threshold", GRID)
    assert len(seen) == len(result.folds)
    for subjects, fold in zip(seen, result.folds, strict=True):
        assert fold.test_subject not in subjects and len(subjects) == 5


def test_a_run_tuned_on_the_test_subject_is_leaky(videos, results):
    leaky = spot_loso(videos, "threshold", GRID, tune_on="test")
    assert leaky.leaky
    for fold in leaky.folds:
        assert fold.tuned_on == (fold.test_subject,)
    # tuning on the test subject can only flatter the result
    assert leaky.score.overall.f1 >= results["threshold"].score.overall.f1
    with pytest.raises(InvalidArgumentError, match="tune_on"):
        spot_loso(videos, "threshold", GRID, tune_on="all")
    with pytest.raises(InvalidArgumentError, match="two subjects"):
        spot_loso([v for v in videos if v.subject == videos[0].subject], "mdmd", GRID)


# --- records, command, timeline -------------------------------------------------------------------


def _empty_store(tmp_path):
    path = tmp_path / "store"
    open_repository(StoreLocation.parse(str(path)), create=True)
    return str(path)


def test_spot_records_live_on_the_runs_branch_with_checksums(tmp_path, results):
    from mer_prep.train.runs_store import list_runs, verify_runs

    store = _empty_store(tmp_path)
    clean = spot_record(results["mdmd"], store={"location": store, "snapshot_id": ""})
    leaky_result = dataclasses.replace(results["threshold"], tune_on="test")
    leaky = spot_record(leaky_result, store={"location": store, "snapshot_id": ""})
    save_spot_run(store, clean)
    save_spot_run(store, leaky)
    back = {r.run_id: r for r in list_spot_runs(store)}
    assert set(back) == {clean.run_id, leaky.run_id}
    one = load_spot_run(store, clean.run_id)
    assert not one.leaky and back[leaky.run_id].leaky
    assert back[leaky.run_id].leak_label == "LEAKY (tuned on the test subject)"
    assert one.metrics["overall"]["f1"] == pytest.approx(results["mdmd"].score.overall.f1)
    assert [f["params"] for f in one.folds] == [
        f.tuned.params.as_dict() for f in results["mdmd"].folds
    ]
    assert sorted(map(repr, one.predictions())) == sorted(
        map(repr, [dataclasses.replace(p) for p in results["mdmd"].predictions])
    )
    frames, curve, threshold = one.curve(one.video_keys[0])
    assert len(frames) == len(curve) > 0 and curve.max() > threshold
    # the training records' readers skip spotting records; verify finds nothing broken
    assert list_runs(store) == [] and verify_runs(store) == [] and verify_spot_runs(store) == []


def test_a_tampered_spot_record_is_reported(tmp_path, results):
    import zarr

    from mer_prep.store.repo import RUNS_BRANCH

    store = _empty_store(tmp_path)
    record = spot_record(results["mdmd"], store={"location": store})
    save_spot_run(store, record)
    repo = open_repository(StoreLocation.parse(store))
    session = repo.writable_session(RUNS_BRANCH)
    group = zarr.open_group(session.store, mode="r+")[f"runs/{record.run_id}"]
    group.attrs["leaky"] = True  # a record that claims other than it was written
    session.commit("tamper")
    broken = verify_spot_runs(store)
    assert len(broken) == 1 and "digest" in broken[0].problem


def test_the_spot_command_records_prints_and_shows(tmp_path):
    store = str(tmp_path / "synthetic")
    runner = CliRunner()
    result = runner.invoke(
        main, ["spot", store, "--method", "mdmd", "--synthetic", "--subjects", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "fold 2" in result.output and "overall" in result.output
    assert "LEAKY" not in result.output
    leaky = runner.invoke(
        main,
        [
            "spot",
            store,
            "--method",
            "threshold",
            "--synthetic",
            "--subjects",
            "3",
            "--tune-on-test",
        ],
    )
    assert leaky.exit_code == 0 and "LEAKY (tuned on the test subject)" in leaky.output
    assert [r.leaky for r in list_spot_runs(store)] in ([False, True], [True, False])
    out = tmp_path / "spots.html"
    shown = runner.invoke(main, ["show", store, "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    page = out.read_text()
    assert page.count("<img") >= 4 and "LEAKY" in page and "Spotting runs" in page
    # a store without long-video motion: one line, a store problem
    missing = runner.invoke(main, ["spot", str(tmp_path / "none"), "--method", "mdmd"])
    assert missing.exit_code == 3 and missing.output.count("\n") == 1
    assert "error:" in missing.output
    bad = runner.invoke(main, ["spot", store, "--method", "oracle", "--synthetic"])
    assert bad.exit_code == 2


def test_timeline_colours_hits_and_misses(videos):
    from mer_prep.plot.figures import figure_png
    from mer_prep.plot.spot_timeline import hits, timeline_figure

    video = videos[0]
    spotted = spot_video(video.motions, "mdmd", PARAMS)
    truths = list(video.truths)
    predictions = [*spotted.intervals, dataclasses.replace(spotted.intervals[0], onset=2, offset=3)]
    matched_p, matched_t = hits(truths, predictions, video.key)
    assert len(predictions) - 1 not in matched_p and matched_t  # the added one is a miss
    figure = timeline_figure(
        spotted.frames, spotted.curve, spotted.threshold, truths, predictions, title=video.key
    )
    assert figure_png(figure).startswith(b"\x89PNG")


def test_video_motion_rows_feed_the_spotters_unchanged():
    """The spotters read VideoMotion as it is (no fields added): a hand-made one works."""
    n, k = 60, 4
    magnitude = np.zeros((n - k, 7), np.float32)
    magnitude[20:30, 0] = 1.0
    motion = VideoMotion(
        video_id="d/s1/v1",
        subject="d/s1",
        fps=30.0,
        k=k,
        frame_numbers=np.arange(100, 100 + n, dtype=np.int64),
        roi_names=("brow_left", "brow_right", "eye_left", "eye_right", "nose", "mouth_left", "x"),
        magnitude=magnitude,
        main_direction=magnitude.copy(),
        strain=magnitude * 0.1,
    )
    params = SpotParams(k_me=k, k_mae=k, p=0.5, rel=0.5, me_window=(3, 30), mae_window=(31, 60))
    spotted = spot_video(motion, "threshold", params)
    assert [(p.kind, p.subject, p.video) for p in spotted.intervals] == [("me", "d/s1", "v1")]
    assert 100 <= spotted.intervals[0].onset <= 130


# --- rendered synthetic long videos (frames -> TV-L1 region motion -> spotters) -------------------


def _rendered_videos(n_subjects: int, ks: tuple[int, ...]) -> list[SpotVideo]:
    """Synthetic long videos rendered to frames (drift and noise included), their region
    motion computed from the frames (``motion.region_motion``, TV-L1), and their truths."""
    import cv2

    from mer_prep.motion.region_motion import face_regions, region_motion
    from mer_prep.motion.video_motion import ROI_NAMES
    from mer_prep.synth.faces import make_subject, subject_landmarks
    from mer_prep.synth.long_motion import planted_truths
    from mer_prep.synth.long_videos import plan_long_video, render_long_video

    videos = []
    for s in range(n_subjects):
        plan = plan_long_video(s + 1, n_frames=240, n_me=2, n_mae=1, n_blinks=1)
        frames, _ = render_long_video(plan)
        # render_long_video draws the subject first from the plan's seed: the same face here
        landmarks = subject_landmarks(make_subject(np.random.default_rng(plan.seed), plan.size))
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
        regions = face_regions(landmarks, plan.size)
        video_id = f"synth-long/s{s + 1}/v1"
        motions = {}
        for k in ks:
            magnitude, main, strain = region_motion(gray, regions, k)
            motions[k] = VideoMotion(
                video_id=video_id,
                subject=f"synth-long/s{s + 1}",
                fps=plan.fps,
                k=k,
                frame_numbers=np.arange(1, plan.n_frames + 1, dtype=np.int64),
                roi_names=ROI_NAMES,
                magnitude=magnitude,
                main_direction=main,
                strain=strain,
            )
        videos.append(SpotVideo(motions, tuple(planted_truths(plan, video_id))))
    return videos


@pytest.mark.slow
def test_spotters_on_rendered_synthetic_long_videos():
    """Frames rendered with drift and sensor noise, motion from TV-L1 flow: both spotters,
    tuned per LOSO fold on training subjects, find the planted expressions far above random
    intervals of the same count (about a minute: the flow of 4 x 240 frames at two ks)."""
    videos = _rendered_videos(4, (3, 12))
    for method in ("mdmd", "threshold"):
        result = spot_loso(videos, method, GRID)
        chance = _chance(list(result.predictions), _truths(videos), videos, shuffle=False)
        overall = result.score.overall
        assert overall.f1 >= 0.4 and overall.f1 > 4 * chance, (method, overall, chance)


def test_apex_contact_strip_from_rendered_frames():
    from mer_prep.plot.figures import figure_png
    from mer_prep.plot.spot_timeline import apex_frames, apex_strip_figure
    from mer_prep.synth.long_videos import plan_long_video, render_long_video

    plan = plan_long_video(3, n_frames=90, n_me=1, n_mae=0, n_blinks=0)
    frames, _ = render_long_video(plan)
    event = plan.expressions[0]
    numbers = np.arange(1, plan.n_frames + 1)
    curve = np.zeros(plan.n_frames, np.float32)
    curve[event.apex] = 1.0  # the score's peak at the planted apex (frame number apex + 1)
    truth = SpotTruth("v1", event.onset + 1, event.offset + 1, "me", subject="s1")
    hit = SpotPrediction("v1", event.onset + 1, event.offset + 1, "me", subject="s1")
    miss = SpotPrediction("v1", 1, 5, "me", subject="s1")
    assert apex_frames(numbers, curve, [hit]) == [event.apex + 1]
    figure = apex_strip_figure(
        lambda number: frames[number - 1], numbers, curve, [truth], [hit, miss], title="s1/v1"
    )
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0].endswith(f"apex {event.apex + 1}") and len(titles) == 2
    assert figure_png(figure).startswith(b"\x89PNG")


def test_the_artifact_markdown_of_a_spot_run(results):
    from mer_prep.plot.spot_timeline import spot_run_markdown

    record = spot_record(results["threshold"], store={"location": "s"})
    text = spot_run_markdown(record, timelines=2)
    assert "| overall |" in text and text.count("](data:image/png;base64,") == 2
    assert "LEAKY" not in text and "synth-long/s06" in text


@pytest.mark.slow  # an ephemeral Prefect API
def test_the_spot_flow_records_the_run_and_publishes_its_timelines(
    tmp_path, monkeypatch, prefect_server
):
    from server_harness import get_json

    import flows.spot as spot_flow

    store = _empty_store(tmp_path)
    monkeypatch.setattr(
        spot_flow,
        "store_videos",
        lambda path, _version: (_videos(3), {"location": path, "dataset": "synth-long"}),
    )
    run_id = spot_flow.spot(store, method="mdmd", tune_on_test=True)
    (record,) = list_spot_runs(store)
    assert record.run_id == run_id and record.leaky
    key = spot_flow.artifact_key("synth-long", "mdmd")
    report = get_json(f"{prefect_server}/artifacts/{key}/latest")["data"]
    assert "LEAKY (tuned on the test subject)" in report and "](data:image/png;base64," in report


@pytest.mark.slow  # writes a feature store (about 5 s)
def test_show_of_a_feature_store_adds_its_spotting_runs(tmp_path, synth_dataset, results):
    from plot_stores import TINY, build_store

    root, _ = synth_dataset("casme2", **TINY)
    store_path = build_store(root, tmp_path / "store", "mbcc64")
    save_spot_run(str(store_path), spot_record(results["mdmd"], store={"location": "s"}))
    out = tmp_path / "report.html"
    shown = CliRunner().invoke(main, ["show", str(store_path), "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    page = out.read_text()
    assert 'id="spots"' in page and "Spotting runs" in page and "synth-long/s01" in page
