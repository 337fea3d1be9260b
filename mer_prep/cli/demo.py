"""`mer-prep demo`: the whole product on a synthetic CASME II look-alike, ending in a training.

synthesise the dataset (a real face photograph animated with micro-motions of known class) →
the `preprocess` flow on a two-worker local Dask cluster (recipe ``ha3d`` by default) → the
store's summary → unless ``--no-train``: the ``mbcc64`` store of the same clips (written in
this process: two frames per clip) and a light MBCC-CNN trained on it subject-independently
(LOSO), printed beside a shuffled-label control and chance.

The dataset is sized to learn from: :data:`DEMO_SUBJECTS` subjects x :data:`DEMO_CLIPS` clips,
each subject showing every class, motions of :data:`DEMO_AMPLITUDE_PX` at a 240 x 320 canvas.
Smaller, it cannot: at 6 subjects x 3 clips with the generator's default motions (0.2-2 px
at 480 x 640, under 0.5 px once aligned to 64 x 64) every model stayed at chance.

A second run recomputes nothing: the dataset, both stores' versions and the training (its
result kept in ``demo-training.json`` beside the dataset, keyed by the store version, the
settings and the code version) are reused.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np

from mer_prep.cli import main
from mer_prep.cli.preprocess import _print_summary, _run
from mer_prep.cli.stores import print_info
from mer_prep.errors import InvalidArgumentError

# Three classes of distinct motions, one clip of each per subject (at 3 clips per subject): the
# README's split, SMOTE and training examples run as written on the default demo store.
DEMO_CLASSES = ("happiness", "surprise", "disgust")
DEMO_SUBJECTS = 8
DEMO_CLIPS = 3
DEMO_SIZE = (240, 320)
DEMO_AMPLITUDE_PX = (2.5, 3.5)
DEMO_NOISE = (0.5, 1.0)
DEMO_FRAMES = 24

# The demo's training: MBCC-CNN (paper 000) on the apex - onset difference, slimmed to 8 / 16
# filters and a 32-unit dense layer so that LOSO over 8 subjects takes about a minute on two
# cores; a fixed number of epochs (the last one is kept). CLI equivalent in DEMO_COMMAND.
DEMO_TRAINING = {
    "model": "mbcc",
    "variant": "difference",
    "config": {"filters": (8, 16), "dense": 32},
    "epochs": 12,
    "batch_size": 4,
    "lr": 3e-3,
    "seed": 0,
}
DEMO_CONTROL_SEED = 0
DEMO_COMMAND = (
    "mer-prep train {store} --model mbcc --variant difference --set filters=[8,16] "
    "--set dense=32 --epochs 12 --batch-size 4 --lr 3e-3"
)


@dataclass(frozen=True)
class DemoTraining:
    """What the demo's training printed: the run and its control, pooled over LOSO folds."""

    run_id: str
    store: str
    version_id: str
    folds: int
    uf1: float
    uar: float
    control_uf1: float
    control_uar: float
    chance_uar: float
    seconds: float


@main.command()
@click.option(
    "--dir",
    "directory",
    default="mer-prep-demo",
    show_default=True,
    help="Where the synthetic dataset, the store and Prefect's home go.",
)
@click.option("--subjects", default=DEMO_SUBJECTS, show_default=True)
@click.option("--clips", default=DEMO_CLIPS, show_default=True, help="Clips per subject.")
@click.option("--recipe", default="ha3d", show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option(
    "--train/--no-train",
    "do_train",
    default=True,
    show_default=True,
    help="End by training a light model (MBCC-CNN, LOSO) with a shuffled-label control.",
)
def demo(directory, subjects, clips, recipe, workers, do_train):
    """Synthesise a small CASME II look-alike from a real face, run the full pipeline on it and
    train a light model on it (a few minutes on two cores)."""
    base = Path(directory)
    root = base / "CASME2"
    _synthesise_demo(root, subjects, clips)
    store = base / "stores" / "casme2" / recipe
    from mer_prep.pipeline.request import PreprocessRequest

    summary = _run(
        PreprocessRequest(
            dataset="casme2",
            root=str(root),
            recipe=recipe,
            store=str(store),
            n_workers=workers,
            progress=True,
        ),
        base / ".mer-prep",
    )
    _print_summary(summary)
    click.echo("")
    print_info(str(store), None)
    if do_train:
        click.echo("")
        _print_training(_demo_training(base, root))


def _synthesise_demo(root: Path, subjects: int, clips: int) -> None:
    """Write the demo dataset unless the same one (same size, same code) is already there."""
    from mer_prep.synth.generate import generate_dataset
    from mer_prep.version import code_version

    wanted = {
        "dataset": "casme2",
        "subjects": subjects,
        "clips": clips,
        "seed": 0,
        "classes": list(DEMO_CLASSES),
        "size": list(DEMO_SIZE),
        "amplitude_px": list(DEMO_AMPLITUDE_PX),
        "noise_sigma": list(DEMO_NOISE),
        "n_frames": DEMO_FRAMES,
        "code_version": code_version(),
    }
    marker = root.parent / "demo-dataset.json"
    if marker.exists() and json.loads(marker.read_text()) == wanted and root.exists():
        click.echo(f"reusing the synthetic CASME II look-alike in {root}")
        return
    if root.exists() and not marker.exists():
        raise InvalidArgumentError(
            f"{root} exists and was not made by `mer-prep demo`: "
            f"refusing to touch it; give another --dir"
        )
    click.echo(
        f"synthesising a CASME II look-alike ({subjects} subjects x {clips} clips) in {root}"
    )
    marker.unlink(missing_ok=True)  # a half-written demo dataset is still ours to replace
    shutil.rmtree(root, ignore_errors=True)  # only ever a demo dataset this command made
    generate_dataset(
        "casme2",
        root,
        n_subjects=subjects,
        clips_per_subject=clips,
        seed=0,
        classes=DEMO_CLASSES,
        size=DEMO_SIZE,
        amplitude_px=DEMO_AMPLITUDE_PX,
        noise_sigma=DEMO_NOISE,
        n_frames=DEMO_FRAMES,
    )
    marker.write_text(json.dumps(wanted))


def _demo_training(base: Path, root: Path) -> DemoTraining:
    """The ``mbcc64`` store of the demo's clips, the light model trained on it (the run recorded
    on that store) and its shuffled-label control; reused when already done."""
    from mer_prep.train.errors import torch_or_raise

    torch_or_raise()
    from mer_prep.cli.train_progress import ProgressPrinter
    from mer_prep.pipeline.local import commit_version
    from mer_prep.store.reader import open_store
    from mer_prep.train.control import chance_uar, shuffled_control
    from mer_prep.train.cpu_share import TrainerSlot
    from mer_prep.train.plan import plan_run, run_folds
    from mer_prep.train.records import combine_folds
    from mer_prep.train.runs_store import save_run
    from mer_prep.version import code_version

    location = base / "stores" / "casme2" / "mbcc64"
    click.echo(f"training store: {location} (recipe mbcc64: aligned onset and apex, 64x64)")
    commit_version("casme2", root, "mbcc64", location)
    store = open_store(location)
    marker = base / "demo-training.json"
    key = {
        "version_id": store.version_id,
        "training": DEMO_TRAINING,
        "control_seed": DEMO_CONTROL_SEED,
        "code_version": code_version(),
    }
    if marker.exists():
        kept = json.loads(marker.read_text())
        if kept.get("key") == json.loads(json.dumps(key)):
            click.echo(f"reusing the demo training recorded as run {kept['result']['run_id']}")
            return DemoTraining(**kept["result"])
    start = time.perf_counter()
    settings = dict(DEMO_TRAINING)
    model = settings.pop("model")
    with TrainerSlot() as slot:
        plan = plan_run(store, model, **settings)
        click.echo(
            f"training {model}/{plan.variant} on {plan.header.n_folds} LOSO folds, "
            f"then the same on shuffled labels (equivalent: "
            f"{DEMO_COMMAND.format(store=location)})"
        )
        record = combine_folds(
            run_folds(plan, report=ProgressPrinter(quiet=True, slot=slot)),
            plan.header,
            duration_s=time.perf_counter() - start,
        )
        save_run(plan.store, record)
        control = shuffled_control(
            plan, DEMO_CONTROL_SEED, report=ProgressPrinter(quiet=True, slot=slot)
        )
    result = DemoTraining(
        run_id=record.run_id,
        store=str(location),
        version_id=record.version_id,
        folds=plan.header.n_folds,
        uf1=record.uf1,
        uar=record.uar,
        control_uf1=control.uf1,
        control_uar=control.uar,
        chance_uar=chance_uar(np.unique(plan.data.labels[plan.data.labels >= 0]).size),
        seconds=time.perf_counter() - start,
    )
    marker.write_text(json.dumps({"key": key, "result": asdict(result)}))
    return result


def _print_training(result: DemoTraining) -> None:
    """The demo's training result: the run, its control and chance, with what they came from."""
    click.echo(
        f"demo training: mbcc/difference (filters 8/16, dense 32), "
        f"{DEMO_TRAINING['epochs']} epochs, seed {DEMO_TRAINING['seed']}, last epoch; "
        f"LOSO over {result.folds} subjects on {result.store} {result.version_id}"
    )
    click.echo(
        f"  model:                      pooled UF1 {result.uf1:.3f}  UAR {result.uar:.3f}"
        f"   (run {result.run_id}: mer-prep runs {result.store})"
    )
    click.echo(
        f"  shuffled-label control:     pooled UF1 {result.control_uf1:.3f}  "
        f"UAR {result.control_uar:.3f}   (labels permuted, seed {DEMO_CONTROL_SEED}; "
        f"not recorded)"
    )
    click.echo(
        f"  chance:                                 UAR {result.chance_uar:.3f}   "
        f"(1 / {round(1 / result.chance_uar)} classes)"
    )
    click.echo(f"  time: {result.seconds:.0f} s for both trainings")
