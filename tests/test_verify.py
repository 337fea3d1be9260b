"""Corruption never reads back silently: every chunk carries a CRC-32C, readers name the array
and sample of a bad chunk, and `mer-prep verify` reports every broken chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import test_store
from click.testing import CliRunner
from test_store import make_plan, write_version

from mer_prep.cli import main
from mer_prep.errors import CorruptDataError
from mer_prep.store import open_store
from mer_prep.store.verify import verify_store


@pytest.fixture(autouse=True)
def noisy_samples(monkeypatch):
    """Samples of random pixels: chunks too big for Icechunk to inline into its manifests."""

    def arrays(i):
        rng = np.random.default_rng(i)
        return {
            "frames": rng.random((2, 64, 64)).astype(np.float16),
            "landmarks": rng.random((68, 2)).astype(np.float32),
        }

    monkeypatch.setattr(test_store, "sample_arrays", arrays)
    return arrays


def _chunk_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "chunks").rglob("*") if p.is_file())


def _flip_one_bit(path: Path, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))


def test_every_flipped_bit_in_a_chunk_file_raises_or_is_reported(tmp_path):
    store = tmp_path / "s"
    write_version(make_plan(store, n=3))
    assert verify_store(store) == []
    files = _chunk_files(store)
    assert len(files) >= 3  # at least the frames of 3 samples
    rng = np.random.default_rng(0)
    for path in files:  # one bit at a time, restored after each check
        original = path.read_bytes()
        _flip_one_bit(path, int(rng.integers(0, 8 * len(original))))
        broken = verify_store(store)
        assert len(broken) == 1, (path, broken)
        path.write_bytes(original)
    assert verify_store(store) == []


def test_a_reader_names_the_array_and_sample_of_a_bad_chunk(tmp_path, noisy_samples):
    store = tmp_path / "s"
    write_version(make_plan(store, n=3))
    before = open_store(store).array("frames")
    assert np.array_equal(before[1], noisy_samples(1)["frames"])
    sizes = {p: p.stat().st_size for p in _chunk_files(store)}
    for path in sizes:
        original = path.read_bytes()
        _flip_one_bit(path, 8 * (len(original) // 2))
        opened = open_store(store)
        try:
            values = opened.array("frames")
        except CorruptDataError as error:
            assert "array 'frames', sample casme2/sub" in str(error)
            (finding,) = verify_store(store)
            assert finding.array == "frames" and finding.sample_id in str(error)
            result = CliRunner().invoke(main, ["verify", str(store)])
            assert result.exit_code == 3 and "broken: main: frames row" in result.output
        else:  # this file was not a frames chunk: frames read back exactly
            assert np.array_equal(values, before)
        path.write_bytes(original)
    assert CliRunner().invoke(main, ["verify", str(store), "--all-versions"]).exit_code == 0


def _everything(store_path):
    store = open_store(store_path)
    return (store.attrs, store.table_all.to_json(), store.array("frames"), store.array("landmarks"))


@pytest.mark.slow  # 6-10 s: reads the whole store back after each of 3 flips per file
def test_a_flipped_bit_in_the_metadata_raises_or_changes_nothing(tmp_path):
    """Icechunk's snapshot, manifest and ref files: after one flipped bit a reader either fails
    (open, attributes digest, chunk checksum) or reads back exactly the same version."""
    store = tmp_path / "s"
    write_version(make_plan(store, n=3))
    before = _everything(store)
    files = sorted(
        p
        for sub in ("snapshots", "manifests", "refs")
        for p in (store / sub).rglob("*")
        if p.is_file()
    )
    assert len(files) >= 4
    rng = np.random.default_rng(1)
    outcomes = {"raised": 0, "same": 0}
    for path in files:
        original = path.read_bytes()
        for _ in range(3):
            _flip_one_bit(path, int(rng.integers(0, 8 * len(original))))
            try:
                after = _everything(store)
            except Exception:  # noqa: BLE001 - any error is a loud failure, which is the point
                outcomes["raised"] += 1
            else:
                assert after[0] == before[0] and after[1] == before[1], path
                assert all(
                    np.array_equal(a, b) for a, b in zip(after[2:], before[2:], strict=True)
                ), path
                outcomes["same"] += 1
            path.write_bytes(original)
    assert outcomes["raised"] > 0, outcomes
    assert verify_store(store) == []


def test_the_decoded_array_cache_is_exact_keyed_by_snapshot_and_checked(tmp_path, monkeypatch):
    """A cached decode equals the store's arrays; a new version is a new key; a damaged cache
    file is decoded again, never read back as data."""
    from mer_prep.store import cache as array_cache

    monkeypatch.setenv("MER_PREP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(array_cache, "BLOCK", 4096)  # a file of many checksummed blocks
    store_path = tmp_path / "s"
    write_version(make_plan(store_path, n=3))
    store = open_store(store_path)
    plain = store.array("frames")
    first = store.array("frames", cache=True)
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert np.array_equal(first, plain) and len(files) == 1
    decodes = []
    import mer_prep.store.reader as reader

    real_read_rows = reader.read_rows
    monkeypatch.setattr(
        reader, "read_rows", lambda *a, **k: decodes.append(1) or real_read_rows(*a, **k)
    )
    again = open_store(store_path).array("frames", cache=True)
    assert np.array_equal(again, plain) and decodes == [] and again.flags.writeable
    size = files[0].stat().st_size
    assert size > 8 * 4096
    for n, where in enumerate((size - 100, size // 2), start=1):  # the last and a middle block
        _flip_one_bit(files[0], 8 * where)
        damaged = open_store(store_path).array("frames", cache=True)
        assert np.array_equal(damaged, plain) and len(decodes) == n
    write_version(make_plan(store_path, n=4, fingerprint="7" * 32))  # a new version
    newer = open_store(store_path).array("frames", cache=True)
    assert newer.shape[0] == 4 and len(list((tmp_path / "cache").glob("*.npy"))) == 2
    assert array_cache.cache_dir() == tmp_path / "cache"
    monkeypatch.setenv("MER_PREP_CACHE", "off")
    assert array_cache.cache_dir() is None


def test_a_row_whose_chunk_reference_is_lost_raises_instead_of_reading_zeros(tmp_path):
    """A manifest that lost a chunk's reference reads back as the fill value (zeros) in zarr;
    the content checksum the writer recorded for that row makes it an error (bulk, per-sample
    and verify), found first as a rare flipped bit in a manifest."""
    import zarr

    from mer_prep.store.repo import open_repository

    store_path = tmp_path / "s"
    write_version(make_plan(store_path, n=3))
    session = open_repository(store_path).writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    group["frames"][1] = 0  # an all-fill chunk is not stored: the reference is gone
    session.commit("drop the reference of row 1's frames chunk")
    store = open_store(store_path)
    with pytest.raises(CorruptDataError, match="array 'frames', sample casme2/sub"):
        store.array("frames")
    with pytest.raises(CorruptDataError, match="frames: row 1 reads back another content"):
        store.sample(1)
    assert np.array_equal(store.sample(0)["frames"], test_store.sample_arrays(0)["frames"])
    (finding,) = verify_store(store_path)
    assert (finding.array, finding.row) == ("frames", 1)


def test_a_store_older_than_chunk_checksums_is_called_so_not_broken(tmp_path, monkeypatch):
    """A version written before chunks carried a CRC-32C is intact but unverifiable: verify
    says so (exit 3, one line naming the version) instead of counting it as a broken chunk; a
    chunk of it that does not decode is still reported as broken."""
    from mer_prep.store import writer

    monkeypatch.setattr(writer, "COMPRESSORS", (writer.COMPRESSOR,))  # as before checksums,
    monkeypatch.setattr(writer, "validate_group", lambda _group: None)  # when none were required
    store = tmp_path / "s"
    write_version(make_plan(store, n=3))
    (finding,) = verify_store(store)
    assert finding.predates_checksums and finding.version == "main"
    assert "frames" in finding.array and "landmarks" in finding.array
    result = CliRunner().invoke(main, ["verify", str(store)])
    assert result.exit_code == 3, result.output
    assert "predates chunk checksums" in result.output and "broken" not in result.output
    assert "cannot be verified" in result.output
    chunk = max(_chunk_files(store), key=lambda p: p.stat().st_size)
    chunk.write_bytes(b"\0" * chunk.stat().st_size)  # undecodable bytes
    result = CliRunner().invoke(main, ["verify", str(store)])
    assert result.exit_code == 3 and "1 broken chunk(s); main predates" in result.output, (
        result.output
    )
