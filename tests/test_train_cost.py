"""A training run says what it will cost and how far it is, shares the cores, and stops on
Ctrl-C / SIGTERM with one line and exit code 130.

The engine's events are checked on a real fold built from arrays in memory (no store: fast);
the estimate and the ETAs against arithmetic done here; the printer with a fake clock; the
thread share with real processes; the command line end to end (subprocesses on a small
store written through the library) in the slow tier.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from torch_or_skip import torch
from train_helpers import CLASSES, learnable_casme2, mbcc_train_args

from mer_prep.cli.train_progress import ProgressPrinter, progress_line
from mer_prep.models import get_model
from mer_prep.train.cpu_share import THREADS_VARIABLE, TrainerSlot, fair_share, idle_cores
from mer_prep.train.data import StoreData, build_fold
from mer_prep.train.engine import train_fold
from mer_prep.train.progress import (
    CPU_WARNING_S,
    FORWARD_SHARE,
    EpochDone,
    FirstBatches,
    FoldDone,
    RunEstimate,
    RunProgress,
    RunTracker,
    estimate_run,
)


@pytest.fixture(scope="module", autouse=True)
def warm_torch():
    """The engine's first ``use_deterministic_algorithms`` imports torch's compiler stack
    (seconds, once per process): paid here, not inside a test's timing."""
    torch.use_deterministic_algorithms(
        torch.are_deterministic_algorithms_enabled(),
        warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
    )


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fold(n_subjects=4, clips=3, size=12, validation=False):
    """A LOSO fold (first subject tested) of random 2-frame clips, built as a store's would be."""
    rng = np.random.default_rng(0)
    n = n_subjects * clips
    data = StoreData(
        arrays={"frames": rng.random((n, 2, size, size)).astype(np.float16)},
        labels=np.arange(n, dtype=np.int64) % 3,
        subjects=np.repeat([f"sub{s:02d}" for s in range(n_subjects)], clips),
        sample_ids=np.array([f"c{i}" for i in range(n)]),
        parents=np.full(n, -1, np.int64),
        class_names=CLASSES,
        dims={"frames": ("frame", "y", "x")},
    )
    test = np.flatnonzero(data.subjects == "sub00")
    train = np.flatnonzero(data.subjects != "sub00")
    return build_fold(
        data,
        0,
        "sub00",
        train,
        test,
        unit="clip",
        augmented=False,
        weighted=False,
        validation=validation,
        seed=1,
    )


def _mbcc(epochs=3, batch_size=4, selection="last_epoch"):
    import dataclasses

    spec = get_model("mbcc")
    config = spec.config({"filters": (4, 8), "dense": 8}, variant="difference")
    preset = dataclasses.replace(
        spec.training,
        epochs=epochs,
        batch_size=batch_size,
        selection=selection,
        validation_metric="uf1" if selection == "validation" else None,
    )
    return spec, config, preset


def test_the_engine_reports_its_first_steps_every_epoch_and_the_fold(one_thread):
    fold = _fold()
    spec, config, preset = _mbcc(epochs=3, batch_size=4)
    events = []
    result = train_fold(fold, spec, config, preset, seed=0, report=events.append)

    first, *epochs, done = events
    assert isinstance(first, FirstBatches) and isinstance(done, FoldDone)
    model = spec.build(config, 3, {"frames": (2, 12, 12)})
    assert first.parameters == sum(p.numel() for p in model.parameters())
    assert first.fit_rows == 9 and first.steps_per_epoch == math.ceil(9 / 4) == 3
    assert first.steps == 3 and first.epochs == 3 and first.validation_rows == 0
    assert first.device == "cpu" and first.threads == 1
    assert 0 < first.seconds_per_step < result.curves[0].seconds
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert [e.loss for e in epochs] == [c.loss for c in result.curves]
    assert [e.seconds for e in epochs] == [c.seconds for c in result.curves]
    assert done.seconds >= sum(c.seconds for c in result.curves)
    # reporting changes nothing trained
    quiet = train_fold(fold, spec, config, preset, seed=0)
    np.testing.assert_allclose(quiet.proba, result.proba, atol=1e-6)


def test_the_engine_counts_the_validation_part_in_its_first_steps(one_thread):
    fold = _fold(n_subjects=6, validation=True)
    spec, config, preset = _mbcc(epochs=1, batch_size=2, selection="validation")
    events = []
    train_fold(fold, spec, config, preset, seed=0, report=events.append)
    first = events[0]
    assert first.validation_rows == fold.validation.n_rows > 0
    assert first.steps == 4  # TIMED_STEPS of an epoch of more steps
    assert first.epoch_estimate_s == pytest.approx(
        first.seconds_per_step
        * first.steps_per_epoch
        * (1 + FORWARD_SHARE * fold.validation.n_rows / fold.fit.n_rows)
    )


def _first(seconds_per_step, device="cpu", epochs=200, steps=10):
    return FirstBatches(
        fold_index=0,
        fold_name="sub01",
        parameters=268_000_000,
        device=device,
        threads=2,
        steps=4,
        seconds_per_step=seconds_per_step,
        steps_per_epoch=steps,
        fit_rows=300,
        validation_rows=30,
        epochs=epochs,
    )


def test_an_estimate_of_hours_on_a_cpu_warns_and_names_lighter_settings():
    flatten = {"head": "flatten", "filters": 64}
    heavy = estimate_run(_first(1.0), model="mer3dcnn", variant="plain", config=flatten, folds=26)
    epoch = 1.0 * 10 * (1 + FORWARD_SHARE * 30 / 300)
    assert heavy.epoch_s == pytest.approx(epoch)
    assert heavy.estimated_s == pytest.approx(epoch * 200 * 26)  # 53,733 s
    fewer = int(200 * (CPU_WARNING_S / 2) / heavy.estimated_s)
    assert heavy.warning is not None and "about 14.9 h on the CPU (2 threads)" in heavy.warning
    for lighter in ("--set head=gap", "--set filters=16", f"--epochs {fewer}"):
        assert lighter in heavy.warning
    # the same pace on a GPU, or a light run on the CPU: no warning
    assert (
        estimate_run(
            _first(1.0, "cuda"), model="mer3dcnn", variant="plain", config=flatten, folds=26
        ).warning
        is None
    )
    light = estimate_run(
        _first(0.01),
        model="mer3dcnn",
        variant="plain",
        config={"head": "gap", "filters": 16},
        folds=26,
    )
    assert light.warning is None and light.estimated_s == pytest.approx(epoch * 200 * 26 / 100)


def test_the_tracker_gives_fold_and_run_etas_from_the_epochs_so_far():
    seen = []
    tracker = RunTracker(seen.append, model="mbcc", variant="difference", config={}, folds=3)
    first = _first(0.1, epochs=4, steps=5)
    tracker(first)
    tracker(EpochDone(0, "sub01", 1, 4, 1.0, None, 2.0))
    tracker(EpochDone(0, "sub01", 2, 4, 0.9, None, 4.0))
    assert isinstance(seen[0], RunEstimate) and seen[0].folds == 3
    one, two = seen[1:]
    assert (one.fold, one.folds, one.epoch, one.fold_eta_s, one.run_eta_s) == (
        1,
        3,
        1,
        6.0,
        6.0 + 2 * 4 * 2.0,
    )
    assert (two.fold_eta_s, two.run_eta_s) == (2 * 3.0, 2 * 3.0 + 2 * 4 * 3.0)
    tracker(EpochDone(0, "sub01", 3, 4, 0.8, None, 3.0))
    tracker(EpochDone(0, "sub01", 4, 4, 0.7, None, 3.0))
    assert seen[-1].fold_done and seen[-1].fold_eta_s == 0
    tracker(FoldDone(0, "sub01", 12.0))
    tracker(first)  # the next fold's first steps: no second estimate
    tracker(EpochDone(1, "sub02", 1, 4, 0.9, None, 3.0))
    last = seen[-1]
    assert len([e for e in seen if isinstance(e, RunEstimate)]) == 1
    assert (last.fold, last.elapsed_s, last.fold_eta_s, last.run_eta_s) == (
        2,
        3.0,
        9.0,
        9.0 + 4 * 3.0,
    )


def _progress(fold, epoch, epochs=10, done=False):
    return RunProgress(
        fold=fold,
        folds=2,
        fold_name=f"sub0{fold}",
        epoch=epoch,
        epochs=epochs,
        loss=0.5,
        validation=None,
        elapsed_s=1.0,
        fold_eta_s=9.0,
        run_eta_s=19.0,
        fold_done=done,
    )


@pytest.mark.parametrize("quiet, expected", [(False, 11), (True, 1)])
def test_progress_is_printed_every_epoch_or_once_a_minute_under_quiet(quiet, expected):
    now = [0.0]
    lines = []
    printer = ProgressPrinter(quiet=quiet, echo=lines.append, clock=lambda: now[0])
    printer(
        estimate_run(
            _first(20.0), model="ha3dnet", variant="paper", config={"head": "flatten"}, folds=2
        )
    )
    assert lines[0].startswith(
        "cost: ha3dnet/paper, 268,000,000 parameters; 200 epochs x 2 "
        "folds x 1 seed on cpu (2 threads)"
    )
    # 20 s x 10 steps x (1 + 30 / 300 / 3) = 206.7 s per epoch, x 200 x 2 = 23.0 h
    assert lines[1] == (
        "estimate: 20 s/step x 10 steps/epoch = 3 min 27 s/epoch; about "
        "23.0 h for the run (from its first steps)"
    )
    assert lines[2].startswith("warning: this run needs about 23.0 h on the CPU")
    assert "--set head=gap" in lines[2]
    for epoch in range(1, 11):  # 5 s apart: every one printed, or none within the minute
        now[0] += 5.0
        printer(_progress(1, epoch, done=epoch == 10))
    now[0] += 15.0  # a minute after the cost was printed
    printer(_progress(2, 1))
    progress = lines[3:]
    assert len(progress) == expected, progress
    assert progress[-1] == progress_line(_progress(2, 1))
    assert progress[-1] == ("fold 2/2 (sub02) epoch 1/10: loss 0.500; fold ETA 9.0 s, run ETA 19 s")


def test_a_training_process_takes_its_share_of_the_cores(tmp_path, monkeypatch):
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    threads = torch.get_num_threads()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    load = [0.0]
    try:
        with TrainerSlot(tmp_path, cores=2, load=lambda: load[0]) as slot:
            assert slot.trainers() == 1 and torch.get_num_threads() == 2
            (tmp_path / str(other.pid)).touch()  # a second training registers
            assert slot.apply() == 1 and torch.get_num_threads() == 1
            (tmp_path / "99999999").touch()  # a dead one's leftover: not counted
            assert slot.trainers() == 2 and not (tmp_path / "99999999").exists()
            other.kill()
            other.wait()
            assert slot.apply() == 2 and torch.get_num_threads() == 2
            load[0] = 2.0 + 2  # other work keeps both cores busy (besides our 2 threads)
            assert slot.apply() == 1
            load[0] = 1.0 + 1  # one core busy elsewhere, besides our own thread
            assert slot.apply() == 1
            load[0] = 0.2 + 1  # idle but for us
            assert slot.apply() == 2
            monkeypatch.setenv(THREADS_VARIABLE, "3")
            assert slot.apply() == 3
        assert not (tmp_path / str(os.getpid())).exists()
    finally:
        other.kill()
        torch.set_num_threads(threads)
    assert [fair_share(2, n) for n in (1, 2, 3)] == [2, 1, 1]
    assert [fair_share(16, n) for n in (1, 2, 3)] == [16, 8, 5]
    assert [idle_cores(2, load, 0) for load in (0.0, 0.4, 0.6, 1.5, 1.6, 9.0)] == [2, 2, 1, 1, 0, 0]
    assert idle_cores(2, 2.1, 2) == 2 and idle_cores(4, 3.0, 1) == 2


# --- the command line, end to end ----------------------------------------------------------

DATASET = learnable_casme2(n_subjects=4, seed=5)


@pytest.fixture(scope="module")
def mbcc_store(tmp_path_factory, synth_dataset):
    from mer_prep.pipeline.local import commit_version

    root, _ = synth_dataset("casme2", **DATASET)
    path = tmp_path_factory.mktemp("cost") / "mbcc64"
    commit_version("casme2", root, "mbcc64", path)
    return path


class Training:
    """`mer-prep train` in a session of its own, its stderr collected as it comes."""

    def __init__(self, store, *args, env=None):
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mer_prep.cli",
                *mbcc_train_args(store, "--batch-size", "2", *args, filters="[4,8]", dense="8"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or dict(os.environ),
            start_new_session=True,
        )
        self.err = bytearray()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while chunk := self.process.stderr.read1(4096):
            self.err += chunk

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.err:
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)

    def text(self) -> str:
        return self.err.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_training_exits_130_with_one_line_and_records_nothing(mbcc_store, how):
    from mer_prep.train import list_runs

    before = len(list_runs(mbcc_store))
    run = Training(mbcc_store, "--epochs", "10000")
    run.wait_for("fold 1/4")  # training, past the estimate
    started = time.monotonic()
    if how == "ctrl-c":  # a terminal's Ctrl-C: SIGINT to the whole foreground group
        os.killpg(run.process.pid, signal.SIGINT)
    else:
        run.process.terminate()
    assert run.process.wait(timeout=10) == 130, run.text()
    assert time.monotonic() - started < 5
    time.sleep(0.2)  # the pump's last read
    lines = [
        line
        for line in run.text().splitlines()
        if not line.startswith(("cost:", "estimate:", "warning:", "fold "))
    ]
    assert lines == [f"cancelled; no run recorded on {mbcc_store}"], run.text()
    assert len(list_runs(mbcc_store)) == before


@pytest.mark.slow
def test_a_run_prints_its_cost_before_the_first_epoch_and_two_runs_share_the_cores(
    mbcc_store, monkeypatch
):
    from mer_prep.train.cpu_share import usable_cores

    env = {k: v for k, v in os.environ.items() if k != THREADS_VARIABLE}
    first = Training(mbcc_store, "--epochs", "10000", env=env)
    second = None
    try:
        first.wait_for("fold 1/4")
        second = Training(mbcc_store, "--epochs", "10000", "--quiet", env=env)
        second.wait_for("estimate:")
        cost = [line for line in second.text().splitlines() if line.startswith("cost:")]
        assert len(cost) == 1, second.text()
        assert cost[0].startswith(
            f"cost: mbcc/difference, {_mbcc_parameters(mbcc_store):,} "
            f"parameters; 10000 epochs x 4 folds x 1 seed on cpu ("
        ), cost
        threads = int(re.search(r"\((\d+) threads?\)$", cost[0]).group(1))
        assert 1 <= threads <= fair_share(usable_cores(), 2)  # less when the machine is busy
        estimate = next(line for line in second.text().splitlines() if line.startswith("estimate:"))
        assert "steps/epoch" in estimate and "for the run" in estimate
        assert "fold " not in second.text()  # --quiet: no progress within the first minute
        assert re.search(
            r"^fold 1/4 \(casme2/sub01\) epoch \d+/10000: loss [0-9.]+; fold ETA "
            r"[0-9.]+ (s|min|h).*, run ETA [0-9.]+ (s|min|h)",
            first.text(),
            re.M,
        )
    finally:
        for run in (first, second):
            if run is not None:
                os.killpg(run.process.pid, signal.SIGINT)
                run.process.wait(timeout=10)


def _mbcc_parameters(store) -> int:
    from mer_prep.store import open_store

    spec = get_model("mbcc")
    config = spec.config({"filters": (4, 8), "dense": 8}, variant="difference")
    classes = len(open_store(store).class_names)  # the label scheme's, present or not
    model = spec.build(config, classes, {"frames": (2, 64, 64)})
    return sum(p.numel() for p in model.parameters())


def test_the_cost_line_of_a_seed_group_counts_every_seed():
    """Before: ``--seeds 3`` printed "x 1 seed" and one seed's time (each seed is a run).
    206.7 s/epoch x 200 epochs x 2 folds x 3 seeds = 68.9 h."""
    lines = []
    printer = ProgressPrinter(seeds=3, echo=lines.append, clock=lambda: 0.0)
    one_seed = estimate_run(
        _first(20.0), model="ha3dnet", variant="paper", config={"head": "flatten"}, folds=2
    )
    for _ in range(3):
        printer(one_seed)
    assert "200 epochs x 2 folds x 3 seeds on cpu" in lines[0], lines[0]
    assert lines[1].endswith("about 68.9 h for the run (from its first steps)"), lines[1]
    assert lines[2].startswith("warning: this run needs about 68.9 h on the CPU"), lines[2]
    assert "--set head=gap" in lines[2] and "fewer seeds than 3" in lines[2]
    assert lines[3:] == ["seed 2 of 3", "seed 3 of 3"]
