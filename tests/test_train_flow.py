"""The ``train`` flow (``flows/train.py``): folds as Dask tasks on a local or hand-started
cluster, the same pooled metrics as the in-process engine, GPU folds only on GPU workers, a
fold whose worker is killed rerun elsewhere, concurrent runs both recorded; and the
``[trainings.*]`` configuration and what a served training run may do.

One small ``mbcc64`` store (4 subjects x 3 clips, 3 classes: 4 LOSO folds) is written per module
through the library; MBCC in a tiny config trains a fold in a fraction of a second on one
thread (tests/test_train.py's sizes).
"""

from __future__ import annotations

import inspect
import os
import signal
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from server_harness import get_json
from torch_or_skip import torch
from train_helpers import learnable_casme2, mbcc_train_args, one_torch_thread

from flows.train import (
    FoldJob,
    artifact_key,
    fold_groups,
    run_train,
    train,
    training_report,
)
from mer_prep.cli import main
from mer_prep.config import RUN_RULES, load_config
from mer_prep.errors import ConfigError
from mer_prep.store import open_store
from mer_prep.train import list_runs
from mer_prep.train import train as train_in_process
from mer_prep.train.request import TrainRequest
from mer_prep.train.sequence import RunTicket

DATASET = learnable_casme2(n_subjects=4)
MBCC = {"filters": [8, 16], "dense": 32}
RUN = {"variant": "difference", "config": MBCC, "epochs": 3, "batch_size": 4, "lr": 3e-3, "seed": 5}


@pytest.fixture(scope="module")
def store(tmp_path_factory, synth_dataset):
    """A committed mbcc64 store of 4 subjects (4 LOSO folds)."""
    from mer_prep.pipeline.batch import BatchJob, combine_batches, process_batch, sample_jobs
    from mer_prep.pipeline.planning import plan_version
    from mer_prep.recipes import load_recipe
    from mer_prep.store.writer import VersionWriter

    root, _ = synth_dataset("casme2", **DATASET)
    path = tmp_path_factory.mktemp("train-flow") / "mbcc64"
    recipe = load_recipe("mbcc64")
    plan = plan_version("casme2", root, recipe, path)
    writer = VersionWriter.begin(plan)
    result = process_batch(
        BatchJob(
            writer.fork(), sample_jobs(plan, writer.reused), recipe, plan.arrays, plan.class_names
        )
    )
    run = combine_batches([result], plan.n_rows, writer.reused)
    writer.finish(run.forks, run.rows, run.failures)
    return path


one_thread = one_torch_thread(torch)


# ------------------------------------------------------------------------------ fast checks


def test_the_flows_parameters_are_the_requests_fields_the_policy_checks():
    """A deployment names the flow's parameters one by one: they are the request's fields,
    with its defaults (``store`` required), and the policy knows each."""
    signature = inspect.signature(train.fn)
    fields = TrainRequest.model_fields
    assert set(signature.parameters) == set(fields) == set(RUN_RULES["train"][0])
    for name, parameter in signature.parameters.items():
        expected = inspect.Parameter.empty if fields[name].is_required() else fields[name].default
        assert parameter.default == expected, name


def _ticket(store="s", snapshot="snap", lease=None, **settings) -> RunTicket:
    return RunTicket(
        TrainRequest.of(store=store, **settings),
        store,
        snapshot,
        lease,
        "20260101T000000Z-mbcc-abcdef",
        "2026-01-01T00:00:00+00:00",
    )


def test_folds_are_grouped_in_order():
    assert fold_groups(5, 1) == [range(i, i + 1) for i in range(5)]
    assert fold_groups(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert fold_groups(3, 8) == [range(0, 3)]
    job = FoldJob(_ticket(), (2, 3))
    assert job.label == "2+3" and job.plan_key() == FoldJob(_ticket(), (0,)).plan_key()


@pytest.mark.slow  # the module's store written through the pipeline: about 10 s
def test_a_workers_plan_serves_a_later_run_of_the_same_settings_under_that_runs_id(store):
    """The store is read once per worker for runs of the same settings (the bench's warm
    cluster), and each run's folds still carry the header of their own run."""
    import dataclasses

    from flows import train as train_flow

    opened = open_store(store)
    first = FoldJob(_ticket(str(store), opened.session.snapshot_id, **RUN), (0,))
    later = FoldJob(
        dataclasses.replace(
            first.ticket,
            run_id="20260202T000000Z-mbcc-123456",
            created="2026-02-02T00:00:00+00:00",
            lease="x",
        ),
        (1,),
    )
    mine, theirs = train_flow._plan(first), train_flow._plan(later)
    assert theirs.data is mine.data  # read once
    assert (mine.header.run_id, mine.header.created) == (first.ticket.run_id, first.ticket.created)
    assert (theirs.header.run_id, theirs.header.created) == (
        "20260202T000000Z-mbcc-123456",
        "2026-02-02T00:00:00+00:00",
    )
    assert (
        dataclasses.replace(theirs.header, run_id=mine.header.run_id, created=mine.header.created)
        == mine.header
    )
    other = FoldJob(_ticket(str(store), opened.session.snapshot_id, **{**RUN, "seed": 6}), (0,))
    assert train_flow._plan(other).data is not mine.data and other.plan_key() != first.plan_key()


@pytest.mark.slow  # a fold's data built and trained in-process: 3-6 s on a shared CPU
def test_a_cancelled_trainings_folds_stop_between_epochs(store, monkeypatch):
    """Issue: a cancelled training kept its in-flight folds running on the standing cluster.
    A fold task watches the run's lease: gone before the task starts, nothing is planned;
    gone mid-fold (the cancelled run deleted it), the fold stops after its current epoch."""
    import dataclasses

    from flows import train as train_flow
    from mer_prep.errors import RunAbandoned
    from mer_prep.store.lease import reading_lease
    from mer_prep.train import plan as train_plan

    built = []  # the plans the fold tasks built, as they are built (the real plan_request)
    plan_request = train_plan.plan_request

    def building(*args, **kwargs):
        plan = plan_request(*args, **kwargs)
        built.append(plan)
        return plan

    monkeypatch.setattr(train_plan, "plan_request", building)
    opened = open_store(store)
    job = FoldJob(
        _ticket(
            str(store),
            opened.session.snapshot_id,
            "reading-gone",
            model="mbcc",
            variant="difference",
            device="cpu",
            seed=0,
            epochs=100_000,
            batch_size=4,
            lr=3e-3,
            selection="last_epoch",
            config=MBCC,
        ),
        (0,),
    )
    with pytest.raises(
        RunAbandoned,
        match=r"lease reading-gone no longer exists\): fold\(s\) "
        r"0 stopped$",
    ):
        train_flow.train_folds.fn(job)
    assert built == []  # stopped before reading the store

    with reading_lease(store, opened.session.snapshot_id, opened.version_id) as lease:
        job = dataclasses.replace(job, ticket=dataclasses.replace(job.ticket, lease=lease))
        deleted = []

        def cancel():  # what the cancelled run does: its lease goes, mid-fold
            while not built:
                time.sleep(0.05)
            time.sleep(0.3)
            opened.repo.delete_branch(lease)
            deleted.append(time.monotonic())

        canceller = threading.Thread(target=cancel)
        canceller.start()
        with pytest.raises(RunAbandoned, match=r"stopped (after|in) epoch \d+$") as stopped:
            train_flow.train_folds.fn(job)  # 100,000 epochs: minutes, unless it stops
        canceller.join()
    # 100,000 epochs take minutes; stopped at the first check after the lease went (building
    # the fold's data, which takes a few seconds on a loaded machine, is not interrupted)
    assert time.monotonic() - deleted[0] < 30.0, stopped.value


def _config(tmp_path, trainings: str, extra: str = ""):
    (tmp_path / "CASME2").mkdir(exist_ok=True)
    path = tmp_path / "mer-prep.toml"
    path.write_text(f"""
[defaults]
recipe = "mbcc64"
n_workers = 2
{extra}
[datasets.casme2]
root = "{tmp_path / "CASME2"}"
recipes = ["mbcc64", "ha3d"]
{trainings}
""")
    return load_config(path)


GOOD = """
[trainings.quick]
dataset = "casme2"
model = "mbcc"
variant = "difference"
epochs = 2
config = { filters = [8, 16], dense = 32 }
cron = "0 6 * * *"

[trainings.gpu]
dataset = "casme2"
recipe = "ha3d"
model = "ha3dnet"
device = "cuda"
on_commit = false
"""


def test_trainings_become_deployments_whose_runs_may_only_use_what_they_configure(tmp_path):
    config = _config(tmp_path, GOOD, 'dask_addresses = ["tls://gpus:8786"]')
    quick, gpu = config.training_deployments()
    assert (quick.name, gpu.name) == ("casme2-mbcc", "casme2-ha3dnet")
    assert quick.store == str(tmp_path / "stores" / "casme2" / "mbcc64") and quick.on_commit
    assert gpu.store.endswith("/casme2/ha3d") and not gpu.on_commit
    assert quick.cron == "0 6 * * *" and quick.parameters["epochs"] == 2
    params = quick.parameters
    config.check_run(params, flow="train")
    config.check_run(
        {
            **params,
            "version": "v-0123456789abcdef",
            "n_workers": 1,
            "dask_address": "tls://gpus:8786",
        },
        flow="train",
    )
    config.check_run({k: v for k, v in params.items() if k != "resources"}, flow="train")
    config.check_run(gpu.parameters, flow="train")
    config.check_run({**gpu.parameters, "resources": {"GPU": 1}}, flow="train")  # the default
    for name, value in [
        ("epochs", 3),
        ("epochs", None),
        ("model", "msres3d"),
        ("variant", "apex"),
        ("device", "cuda"),
        ("seed", True),
        ("seed", 1),
        ("config", {"filters": [8, 16], "dense": 64}),
        ("version", "../x"),
        ("version", 7),
        ("n_workers", 3),
        ("dask_address", "tcp://evil:1"),
        ("store", "/tmp/elsewhere"),
        ("store", None),
        ("resources", {"GPU": 2}),
        ("folds_per_task", 2),
        ("dataset", "samm"),
        ("keep_checkpoints", True),
        ("evil", 1),
    ]:
        with pytest.raises(ConfigError, match=rf"\b{name}\b") as refused:
            config.check_run({**params, name: value}, flow="train")
        assert str(config.path) in str(refused.value)


def test_serve_check_lists_the_training_deployments(tmp_path):
    config = _config(tmp_path, GOOD)
    listed = CliRunner().invoke(main, ["serve", "--check", "--config", str(config.path)])
    assert listed.exit_code == 0, listed.output
    assert (
        f"train/casme2-mbcc: mbcc/difference loso on {tmp_path}/stores/casme2/mbcc64 (cpu), "
        f"schedule 0 6 * * *, on each new version" in listed.output
    )
    assert "train/casme2-ha3dnet: ha3dnet/default loso" in listed.output


@pytest.mark.parametrize(
    "trainings, message",
    [
        ('[trainings.x]\ndataset = "samm"\nmodel = "mbcc"\n', r"trainings\.x\.dataset"),
        (
            '[trainings.x]\ndataset = "casme2"\nmodel = "mbcc"\nrecipe = "dacwb3d"\n',
            r"trainings\.x\.recipe",
        ),
        ('[trainings.x]\ndataset = "casme2"\nmodel = "nosuch"\n', "nosuch"),
        ('[trainings.x]\ndataset = "casme2"\nmodel = "mbcc"\nvariant = "nosuch"\n', "variant"),
        ('[trainings.x]\ndataset = "casme2"\nmodel = "mbcc"\ndevice = "tpu"\n', "device"),
        ('[trainings.x]\ndataset = "casme2"\nmodel = "mbcc"\ncron = "nope"\n', "cron"),
        ('[trainings.x]\ndataset = "casme2"\nmodel = "mbcc"\nepoch = 3\n', "epoch"),
        (
            '[trainings.x]\ndataset = "casme2"\nmodel = "mbcc"\n'
            '[trainings.y]\ndataset = "casme2"\nmodel = "mbcc"\nvariant = "apex"\n',
            r"train/casme2-mbcc is also trainings\.x",
        ),
    ],
)
def test_a_wrong_training_is_reported_on_load(tmp_path, trainings, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, trainings)


def test_the_dask_dashboard_is_announced_only_when_it_can_be_served(monkeypatch):
    import logging

    import flows.cluster as cluster

    record = logging.LogRecord(
        "prefect.task_runner.dask",
        logging.INFO,
        __file__,
        1,
        "The Dask dashboard is available at http://127.0.0.1:1/status",
        None,
        None,
    )
    other = logging.LogRecord(
        "prefect.task_runner.dask",
        logging.INFO,
        __file__,
        1,
        "Connecting to an existing Dask cluster",
        None,
        None,
    )
    dask_logger = logging.getLogger("prefect.task_runner.dask")
    monkeypatch.setattr(cluster, "dashboard_servable", lambda: False)
    assert not dask_logger.filter(record) and dask_logger.filter(other)
    monkeypatch.setattr(cluster, "dashboard_servable", lambda: True)
    assert dask_logger.filter(record)


# -------------------------------------------------------------- the flow on real clusters


@pytest.mark.slow  # a local cluster of two worker processes
def test_the_flow_trains_every_fold_on_both_workers_like_the_engine(store, prefect_server):
    record = run_train(str(store), "mbcc", n_workers=2, dataset="casme2", **RUN)
    reference = train_in_process(str(store), "mbcc", save=False, **RUN)
    assert [f.name for f in record.folds] == [f.name for f in reference.folds]
    assert record.n_folds == 4 == len(record.folds)
    workers = record.timings["fold_workers"]
    assert set(workers) == {f.name for f in record.folds} and len(set(workers.values())) == 2
    assert record.metrics == reference.metrics  # same seed, same predictions
    for mine, theirs in zip(record.folds, reference.folds, strict=True):
        np.testing.assert_array_equal(mine.y_pred, theirs.y_pred)
        np.testing.assert_allclose(mine.proba, theirs.proba, rtol=1e-6)
    opened = open_store(store)
    assert (record.version_id, record.snapshot_id) == (
        opened.version_id,
        opened.session.snapshot_id,
    )
    (recorded,) = [r for r in list_runs(store) if r.run_id == record.run_id]
    assert recorded.metrics["uf1"] == pytest.approx(record.uf1)
    report = get_json(
        f"{prefect_server}/artifacts/{artifact_key('casme2', 'mbcc', 'loso')}/latest"
    )["data"]
    assert report == training_report(record)
    assert "## per class" in report and "](data:image/png;base64," in report
    assert record.snapshot_id in report and "subject-independent" in report


@pytest.mark.slow  # a local cluster of one worker process: fails before training
def test_a_bad_variant_fails_the_run_at_once_and_records_nothing(store, prefect_server):
    before = len(list_runs(store))
    with pytest.raises(Exception, match="no variant 'nosuch'"):
        run_train(str(store), "mbcc", n_workers=1, variant="nosuch", epochs=1)
    assert len(list_runs(store)) == before


# ------------------------------------------------------------------ a hand-started cluster


@pytest.fixture
def cluster(tmp_path_factory, request):
    """A scheduler and two `dask worker` processes: worker 0 with a (fake) GPU resource."""
    from test_cluster import HandCluster

    hand = HandCluster(tmp_path_factory.mktemp("dask-train"))
    request.addfinalizer(hand.stop)
    return hand.start(worker_args=[["--name", "w0", "--resources", "GPU=1"], ["--name", "w1"]])


def _by_name(hand) -> dict[str, str]:
    return {
        info["name"]: address
        for address, info in hand.client.scheduler_info(n_workers=-1)["workers"].items()
    }


@pytest.mark.slow  # a hand-started scheduler and two workers
@pytest.mark.usefixtures("prefect_server")
def test_gpu_folds_run_only_on_workers_with_the_resource(store, cluster):
    gpu = _by_name(cluster)["w0"]
    record = run_train(
        str(store), "mbcc", dask_address=cluster.address, resources={"GPU": 1}, **RUN
    )
    assert len(record.folds) == 4
    assert set(record.timings["fold_workers"].values()) == {gpu}
    free = run_train(str(store), "mbcc", dask_address=cluster.address, **RUN)  # CPU: anywhere
    assert free.metrics == record.metrics
    assert len(set(free.timings["fold_workers"].values())) == 2


@pytest.mark.slow  # a hand-started cluster; a worker is killed mid-fold
@pytest.mark.usefixtures("prefect_server")
def test_a_fold_whose_worker_is_killed_is_rerun_and_the_run_completes(store, cluster):
    from test_cluster import run_in_thread

    client = cluster.client
    slow = {**RUN, "epochs": 400}  # seconds per fold
    thread, outcome = run_in_thread(
        run_train, str(store), "mbcc", dask_address=cluster.address, **slow
    )
    deadline = time.monotonic() + 120
    while sum(map(len, client.processing().values())) < 2:
        assert thread.is_alive(), outcome
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.05)
    time.sleep(1.0)
    busy = [address for address, keys in client.processing().items() if keys]
    assert busy and thread.is_alive(), "the run ended before a worker could be killed"
    victim = busy[0]
    os.kill(cluster.worker_pids()[victim], signal.SIGKILL)
    thread.join(timeout=400)
    assert not thread.is_alive(), "the run hung after a worker was killed"
    assert "error" not in outcome, outcome.get("error")
    record = outcome["result"]
    assert sorted(f.name for f in record.folds) == [f"casme2/sub0{i}" for i in range(1, 5)]
    assert victim not in record.timings["fold_workers"].values()
    assert record.run_id in {r.run_id for r in list_runs(store)}


@pytest.mark.slow  # a hand-started cluster, two runs at once
@pytest.mark.usefixtures("prefect_server")
def test_two_runs_of_one_store_at_once_are_both_recorded(store, cluster):
    from test_cluster import run_in_thread

    start = threading.Barrier(2)

    def run(seed):
        start.wait()
        return run_train(str(store), "mbcc", dask_address=cluster.address, **{**RUN, "seed": seed})

    runs = [run_in_thread(run, seed) for seed in (1, 2)]
    for thread, _ in runs:
        thread.join(timeout=300)
        assert not thread.is_alive(), "a concurrent run hung"
    records = [outcome["result"] for _, outcome in runs]
    assert records[0].run_id != records[1].run_id
    recorded = {r.run_id: r for r in list_runs(store)}
    for record in records:
        assert len(recorded[record.run_id].folds) == 4
        assert recorded[record.run_id].seed == record.seed


@pytest.mark.slow  # the CLI on a hand-started cluster
@pytest.mark.usefixtures("prefect_server")
def test_cli_trains_through_the_flow_with_an_address_and_shows_a_run(store, cluster):
    runner = CliRunner()
    trained = runner.invoke(
        main, mbcc_train_args(store, "--epochs", "2", "--dask-address", cluster.address)
    )
    assert trained.exit_code == 0, trained.output
    lines = trained.output.splitlines()
    run_id = next(line for line in lines if line.startswith("run ")).split()[1].rstrip(":")
    assert sum(line.startswith("casme2/sub") for line in lines) == 4
    shown = runner.invoke(main, ["runs", str(store), "--run", run_id])
    assert shown.exit_code == 0, shown.output
    assert runner.invoke(main, ["runs", str(store), "--run", "latest"]).output == shown.output
    assert "confusion (rows: true, columns: predicted)" in shown.output
    for name in DATASET["classes"]:
        assert f"\n{name}" in shown.output
    assert open_store(store).version_id in shown.output
