"""The versioned store: layout per schema, versions and tags, readers never see a partial write."""

import pickle

import numpy as np
import pytest
import zarr

from mer_prep.errors import SchemaError, VersionConflictError
from mer_prep.recipes import load_recipe
from mer_prep.sample import Failure, Problem, Sample
from mer_prep.store import open_store
from mer_prep.store.repo import StoreLocation
from mer_prep.store.schema import validate_attrs
from mer_prep.store.table import sample_row
from mer_prep.store.writer import SampleWriter, VersionPlan, VersionWriter

RECIPE = load_recipe("mbcc64")


def fake_sample(clip: str, subject: str, emotion: str, dataset: str = "casme2", **fields) -> Sample:
    """A clip of frames 1-10 (onset 1, apex 5, offset 10, 200 fps) labelled ``emotion``, with
    no frame files: for stores written without processing (``fields``: more ``Sample`` fields)."""
    return Sample(
        dataset=dataset,
        subject=subject,
        clip=clip,
        frame_paths=(),
        frame_numbers=tuple(range(1, 11)),
        onset=1,
        apex=5,
        offset=10,
        fps=200.0,
        emotion=emotion,
        label=emotion,
        **fields,
    )


def fake_samples(n, subjects=3):
    return [
        fake_sample(
            f"EP0{i}_01", f"casme2/sub{i % subjects + 1:02d}", ["happiness", "disgust"][i % 2]
        )
        for i in range(n)
    ]


def fake_plan(
    path,
    samples: list[Sample],
    class_names: list[str],
    *,
    dataset: str = "casme2",
    problems: tuple[Problem, ...] = (),
    fingerprint: str = "0" * 32,
    cls: type[VersionPlan] = VersionPlan,
) -> VersionPlan:
    """The plan of a version of ``samples`` (mbcc64), sample ``i``'s fingerprint ``i``."""
    return cls(
        location=StoreLocation.parse(path),
        dataset=dataset,
        labels="native",
        class_names=class_names,
        recipe=RECIPE,
        samples=samples,
        fingerprints=[f"{i:032x}" for i in range(len(samples))],
        problems=list(problems),
        input_fingerprint=fingerprint,
    )


def make_plan(path, n=4, fingerprint="0" * 32):
    return fake_plan(
        path,
        fake_samples(n),
        ["disgust", "happiness"],
        problems=(Problem("casme2/sub09/EP99", "/data/coding.xlsx:row 7", "folder missing"),),
        fingerprint=fingerprint,
    )


def sample_arrays(i):
    return {
        "frames": np.full((2, 64, 64), i / 10, dtype=np.float16),
        "landmarks": np.full((68, 2), i, dtype=np.float32),
    }


def write_version(plan, failed=()):
    writer = VersionWriter.begin(plan)
    specs = plan.arrays
    forks, rows = [], []
    for i, sample in enumerate(plan.samples):
        fork = pickle.loads(pickle.dumps(writer.fork()))  # as a Dask worker receives it
        if i in failed:
            rows.append(sample_row(sample, plan.class_names, status="failed", error="no face"))
        else:
            crc = SampleWriter(fork, specs).write(i, sample_arrays(i))
            rows.append(
                sample_row(
                    sample, plan.class_names, fingerprint=plan.fingerprints[i], content_crc=crc
                )
            )
        forks.append(pickle.loads(pickle.dumps(fork)))
    failures = [Failure.from_problem(p) for p in plan.problems]
    return writer.finish(forks, rows, failures)


def test_round_trip_layout_and_reader(tmp_path):
    plan = make_plan(tmp_path / "store", n=4)
    write_version(plan, failed={2})
    store = open_store(tmp_path / "store")
    assert store.version_id == plan.version_id
    assert list(store.table["sample_id"]) == [plan.samples[i].sample_id for i in (0, 1, 3)]
    frames = store.array("frames", dtype="float32")
    assert frames.shape == (3, 2, 64, 64)
    np.testing.assert_allclose(frames[:, 0, 0, 0], [0.0, 0.1, 0.3], atol=1e-3)
    assert store.labels.tolist() == [1, 0, 0]  # happiness, disgust, disgust
    assert store.subjects == ["casme2/sub01", "casme2/sub02"]
    ds = store.xarray()
    assert ds["frames"].dims == ("sample", "frame", "y", "x")
    assert ds["landmarks"].dims == ("sample", "point", "xy")
    assert ds["frames"].shape == (3, 2, 64, 64) and list(ds["subject"].values)[2] == "casme2/sub01"
    assert store.dask("frames").chunks[0] == (1, 1, 1)
    failures = store.failures
    assert set(failures["stage"]) == {"scan"} and "folder missing" in failures["message"][0]
    assert (
        store.table_all.loc[2, "status"] == "failed"
        and store.table_all.loc[2, "error"] == "no face"
    )
    raw = zarr.open_group(store.session.store, mode="r")["frames"]
    assert raw.chunks == (1, 2, 64, 64)
    blosc = raw.compressors[0]
    # lz4 since bench/codec.py (versions written before hold zstd: tests/test_codec.py)
    assert str(blosc.cname.value) == "lz4" and str(blosc.shuffle.value) == "bitshuffle"


def test_versions_are_tagged_and_old_ones_stay_readable(tmp_path):
    first = make_plan(tmp_path / "s", n=3, fingerprint="1" * 32)
    write_version(first)
    second = make_plan(tmp_path / "s", n=5, fingerprint="2" * 32)
    write_version(second)
    latest = open_store(tmp_path / "s")
    assert latest.version_id == second.version_id and len(latest.table) == 5
    old = open_store(tmp_path / "s", version=first.version_id)
    assert len(old.table) == 3 and old.array("frames").shape[0] == 3
    assert list(latest.versions()["version_id"]) == [second.version_id, first.version_id]


def test_a_crash_before_finish_exposes_nothing(tmp_path):
    first = make_plan(tmp_path / "s", n=2, fingerprint="1" * 32)
    write_version(first)
    crashed = make_plan(tmp_path / "s", n=4, fingerprint="3" * 32)
    writer = VersionWriter.begin(crashed)
    fork = writer.fork()
    SampleWriter(fork, crashed.arrays).write(0, sample_arrays(7))
    writer.session.merge(fork)  # written, merged, never committed: the process "dies" here
    store = open_store(tmp_path / "s")
    assert store.version_id == first.version_id and store.array("frames").shape[0] == 2


def test_concurrent_writers_one_wins_the_other_fails_loudly(tmp_path):
    write_version(make_plan(tmp_path / "s", n=2, fingerprint="1" * 32))
    a = make_plan(tmp_path / "s", n=3, fingerprint="a" * 32)
    b = make_plan(tmp_path / "s", n=4, fingerprint="b" * 32)
    writer_b = VersionWriter.begin(b)  # b starts from the same main as a
    write_version(a)
    rows = [sample_row(s, b.class_names, status="failed", error="x") for s in b.samples]
    with pytest.raises(VersionConflictError, match="main moved"):
        writer_b.finish([], rows, [])
    store = open_store(tmp_path / "s")
    assert store.version_id == a.version_id and len(store.table_all) == 3
    assert b.version_id not in set(store.versions()["version_id"])


def test_writes_are_validated_against_the_schema(tmp_path):
    plan = make_plan(tmp_path / "s", n=1)
    writer = VersionWriter.begin(plan)
    bad = {"frames": np.zeros((2, 32, 32), np.float16), "landmarks": np.zeros((68, 2), np.float32)}
    with pytest.raises(SchemaError, match="sample shape"):
        SampleWriter(writer.fork(), plan.arrays).write(0, bad)
    wrong_dtype = {**sample_arrays(0), "frames": np.zeros((2, 64, 64), np.float64)}
    with pytest.raises(SchemaError, match="dtype"):
        SampleWriter(writer.fork(), plan.arrays).write(0, wrong_dtype)
    write_version(plan)
    attrs = dict(open_store(tmp_path / "s").attrs)
    validate_attrs(attrs)
    with pytest.raises(SchemaError, match="version_id"):
        validate_attrs({**attrs, "version_id": "latest"})
    with pytest.raises(SchemaError, match="arrays/frames/dims"):
        validate_attrs(
            {
                **attrs,
                "arrays": {"frames": {"dims": ["frame", "y"], "shape": [1, 2], "dtype": "float16"}},
            }
        )


def test_a_run_that_never_commits_leaves_no_store_behind(tmp_path, monkeypatch):
    """No empty store that readers cannot open: what a failed first run created is removed,
    and only that (a folder the user made keeps its files)."""
    from mer_prep.errors import StoreLocationError, StoreNotFoundError

    fresh = make_plan(tmp_path / "new", n=2)
    writer = VersionWriter.begin(fresh)
    assert (tmp_path / "new").is_dir()
    writer.abort()
    assert not (tmp_path / "new").exists()
    with pytest.raises(StoreNotFoundError):
        open_store(tmp_path / "new")

    users = tmp_path / "mine"  # an empty folder the user made: stays, empty
    users.mkdir()

    def layout_too_big(*_args):
        raise MemoryError("layout too big")

    monkeypatch.setattr(VersionWriter, "_begin", classmethod(layout_too_big))
    with pytest.raises(MemoryError):
        VersionWriter.begin(make_plan(users, n=2))
    assert users.is_dir() and not any(users.iterdir())
    monkeypatch.undo()
    (users / "notes.txt").write_text("keep me")  # never a store in a folder of other files
    with pytest.raises(StoreLocationError, match="folder with files in it"):
        VersionWriter.begin(make_plan(users, n=2))
    assert sorted(p.name for p in users.iterdir()) == ["notes.txt"]

    write_version(make_plan(tmp_path / "old", n=2))  # a store with a version is never removed
    writer = VersionWriter.begin(make_plan(tmp_path / "old", n=3, fingerprint="9" * 32))
    writer.abort()
    assert open_store(tmp_path / "old").array("frames").shape[0] == 2
