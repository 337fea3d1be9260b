"""``mer-prep spot``: training-free spotting of a long-video store (``mer-prep run <long-video
dataset> --recipe lv128``), tuned leave-one-subject-out on training subjects only and recorded
on the store's ``runs`` branch (``mer_prep.spotting``); ``--synthetic`` spots planted synthetic
motion instead."""

from __future__ import annotations

import json

import click

from mer_prep.cli import main
from mer_prep.cli.options import choice_option, count_option, flag_option
from mer_prep.errors import InvalidArgumentError
from mer_prep.spotting.methods import ALL_METHODS


def _synthetic(store: str, subjects: int, seed: int):
    """Planted synthetic motion (``synth.long_motion``) of ``subjects`` subjects, and a
    repository at ``store`` (made when missing) to record the run on."""
    from mer_prep.spotting.tuning import SpotVideo
    from mer_prep.store.repo import StoreLocation, open_repository, store_exists
    from mer_prep.synth.long_motion import planted_motion_set

    ks = (3, 6, 10)
    motions, truths = planted_motion_set(n_subjects=subjects, ks=ks, seed=seed)
    videos = []
    for i, first in enumerate(motions[ks[0]]):
        mine = tuple(t for t in truths if t.video_key == first.video_id)
        videos.append(SpotVideo({k: motions[k][i] for k in ks}, mine))
    location = StoreLocation.parse(store)
    open_repository(location, create=not store_exists(location))
    info = {
        "location": str(location),
        "dataset": "synth-long",
        "version_id": "",
        "snapshot_id": "",
        "motion": f"synthetic planted bumps (synth.long_motion, seed {seed}, k {list(ks)})",
    }
    return videos, info


@main.command()
@click.argument("store")
@choice_option(
    "--method",
    ALL_METHODS,
    required=True,
    help="The spotter: training-free (mdmd, threshold) or learned per fold (softnet, mtsn).",
)
@click.option(
    "--preset",
    default=None,
    help="A learned method's preset (softnet, mtsn, quick, quick-mtsn) [default: the method's].",
)
@count_option("--train-seed", default=0, minimum=0, help="A learned method's training seed.")
@choice_option("--split", ["loso"], default="loso", help="The folds.")
@flag_option(
    "--tune-on-test", "LEAKY: choose each fold's values on its test subject (recorded LEAKY)."
)
@flag_option(
    "--synthetic",
    "Spot planted synthetic motion; STORE is made (empty) when missing and holds the run.",
)
@click.option(
    "--recognize",
    "recognizer",
    default=None,
    metavar="MODEL",
    help="Spot-then-recognise: classify each spotted ME with MODEL (e.g. ststnet) trained per "
    "fold on the training subjects' annotated MEs; recorded as a run of its own with its STRS "
    "(needs --root).",
)
@click.option(
    "--root",
    default=None,
    metavar="PATH",
    help="With --recognize: the long-video dataset's root (the intervals are cut from its frames).",
)
@count_option(
    "--recognize-epochs", default=None, help="With --recognize: the recogniser's epochs [preset's]."
)
@click.option("--subjects", default=6, show_default=True, help="Synthetic subjects.")
@click.option("--seed", default=0, show_default=True, help="Synthetic seed.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def spot(
    store,
    method,
    preset,
    train_seed,
    split,
    tune_on_test,
    synthetic,
    subjects,
    seed,
    fmt,
    **recognition,
):
    """Spot MEs and MaEs in STORE's long videos with METHOD (training-free, or a network
    trained per fold); every tuned value and every network chosen per LOSO fold on its training
    subjects only; the run is recorded on STORE."""
    from mer_prep.spotting.run import spot_store

    if recognition["recognizer"] and (synthetic or not recognition["root"]):
        raise InvalidArgumentError(
            "--recognize cuts the spotted intervals from the videos' frames: give the "
            "dataset's --root (planted --synthetic motion has no frames)"
        )

    videos, _, result, record = spot_store(
        store,
        method,
        split=split,
        tune_on_test=tune_on_test,
        source=_synthetic(store, subjects, seed) if synthetic else None,
        seed=train_seed,
        preset=preset,
    )
    if fmt == "json":
        click.echo(json.dumps(record.attrs, indent=1))
        return
    leak = f"  {record.leak_label}" if record.leaky else ""
    tuned_on = "the test subject" if result.leaky else "training subjects"
    click.echo(
        f"spotting run {record.run_id}: {method}, {split} over {len(result.folds)} subjects, "
        f"{len(videos)} videos, tuned on {tuned_on}{leak}"
    )
    for fold in result.folds:
        p = fold.tuned.params
        click.echo(
            f"  fold {fold.index} {fold.test_subject}: k {p.k_me}/{p.k_mae} p {p.p} smooth "
            f"{p.smooth} rel {p.rel} windows ME {p.me_window} MaE {p.mae_window}; tune F1 "
            f"{fold.tuned.f1:.3f}, test F1 {fold.score.overall.f1:.3f}"
        )
    for kind in ("me", "mae", "overall"):
        c = result.score.overall if kind == "overall" else result.score.by_kind[kind]
        click.echo(
            f"  {kind:8s} TP {c.tp} FP {c.fp} FN {c.fn}  P {c.precision:.3f} R {c.recall:.3f} "
            f"F1 {c.f1:.3f}"
        )
    click.echo(f"recorded on {store} (runs branch); see it with `mer-prep show {store}`")
    if recognition["recognizer"]:
        _recognize(store, record, **recognition)


def _recognize(store, record, *, recognizer, root, recognize_epochs) -> None:
    """Spot-then-recognise ``record`` (``mer_prep.recognize_spots``) and record it."""
    from mer_prep.datasets.long_video import scan_long_videos
    from mer_prep.recognize_spots.recognizer import RecognizerSettings
    from mer_prep.recognize_spots.run import recognize_spots, recognized_record
    from mer_prep.spotting.records import save_spot_run

    dataset = record.attrs["store"].get("dataset", "")
    videos = list(scan_long_videos(dataset, root))
    settings = RecognizerSettings(model=recognizer, epochs=recognize_epochs)
    outcome = recognize_spots(record, videos, settings)
    recognised = recognized_record(record, outcome)
    save_spot_run(store, recognised)
    s = outcome.score
    for problem in outcome.problems:
        click.echo(f"  not recognised: {problem}")
    trained = [f["n_trained"] for f in outcome.folds]
    click.echo(
        f"spot-then-recognise run {recognised.run_id}: {recognizer} trained per fold on "
        f"{min(trained, default=0)}-{max(trained, default=0)} annotated MEs of the training "
        f"subjects, classes {', '.join(outcome.classes)}"
    )
    click.echo(
        f"  STRS {s.strs:.3f} = F1_spot {s.spotting.f1:.3f} x F1_analysis {s.f1_analysis:.3f} "
        f"(MEs; {s.n_pairs} spotted true positives classified)"
    )
