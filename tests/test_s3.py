"""Stores on S3-compatible object storage: the real store code against moto's S3 server
(every test that starts it is marked slow)."""

import boto3
import numpy as np
import pytest
import zarr
from moto.server import ThreadedMotoServer
from test_store import make_plan, write_version

from mer_prep.store import open_store
from mer_prep.store.repo import is_remote, open_repository, storage_for, store_exists

BUCKET = "mer-prep-test"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """The environment a user sets for an S3-compatible store; the test's own bucket prefix."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    return f"s3://{BUCKET}/stores"


def test_locations_local_or_s3(tmp_path):
    assert is_remote("s3://b/p") and not is_remote(tmp_path) and not is_remote("stores/x")
    with pytest.raises(ValueError, match="unsupported store location"):
        is_remote("gs://b/p")
    with pytest.raises(ValueError, match="no bucket"):
        storage_for("s3:///p")
    assert not store_exists(tmp_path / "none")


@pytest.mark.slow  # moto's S3 server
def test_repository_create_open_exists(s3, s3_endpoint):
    url = f"{s3}/repo"
    assert not store_exists(url)
    with pytest.raises(FileNotFoundError, match="no mer-prep store"):
        open_repository(url)
    repo = open_repository(url, create=True)
    session = repo.writable_session("main")
    zarr.create_group(session.store).attrs["hello"] = "s3"
    session.commit("hello")
    assert store_exists(url) and not store_exists(f"{s3}/other")
    again = open_repository(url)
    assert (
        zarr.open_group(again.readonly_session(branch="main").store, mode="r").attrs["hello"]
        == "s3"
    )
    listed = client(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix="stores/repo/")
    assert listed["KeyCount"] > 0  # the repository really lives under the URL's prefix


@pytest.mark.slow  # moto's S3 server
def test_versions_written_and_read_back_on_s3(s3):
    url = f"{s3}/casme2"
    first = make_plan(url, n=3, fingerprint="1" * 32)
    write_version(first, failed={1})
    store = open_store(url)
    assert store.version_id == first.version_id
    assert list(store.table["sample_id"]) == [first.samples[i].sample_id for i in (0, 2)]
    np.testing.assert_allclose(
        store.array("frames", dtype="float32")[:, 0, 0, 0], [0.0, 0.2], atol=1e-3
    )
    second = make_plan(url, n=5, fingerprint="2" * 32)
    write_version(second)
    latest = open_store(url)
    assert latest.version_id == second.version_id and latest.array("frames").shape[0] == 5
    old = open_store(url, version=first.version_id)
    assert len(old.table) == 2 and old.array("landmarks").shape == (2, 68, 2)
    assert list(latest.versions()["version_id"]) == [second.version_id, first.version_id]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_the_flow_writes_a_version_to_s3_and_a_rerun_is_up_to_date(s3, synth_dataset):
    """The whole flow with its store on S3: Dask workers write through forks to the bucket."""
    from flows.preprocess import run_preprocess

    # the small CASME II look-alike of test_deployments.py
    root, written = synth_dataset(
        "casme2", n_subjects=2, clips_per_subject=2, seed=11, n_frames=12, size=(240, 320)
    )
    location = f"{s3}/flow"
    first = run_preprocess("casme2", str(root), "mbcc64", location, n_workers=1)
    assert first.store == location and first.n_failed == 0
    store = open_store(location)
    assert store.version_id == first.version_id and len(store.table) == len(written)
    assert store.array("frames").shape == (len(written), 2, 64, 64)
    assert (store.array("frames", "float32").reshape(len(written), -1).max(axis=1) > 0).all()
    again = run_preprocess("casme2", str(root), "mbcc64", location, n_workers=1)
    assert again.up_to_date and again.version_id == first.version_id
