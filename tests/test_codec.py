"""The store's codec: new versions are written with Blosc lz4 + bitshuffle (bench/codec.py), and
versions written before with zstd keep reading, verifying and loading in bulk."""

from __future__ import annotations

import numpy as np
import pytest
import test_store
import zarr
from test_store import make_plan, write_version
from zarr.codecs import BloscCodec

from mer_prep.errors import SchemaError, StoreWriteError
from mer_prep.store import open_store, writer
from mer_prep.store.bulk import fast_path, read_rows
from mer_prep.store.schema import validate_group
from mer_prep.store.verify import verify_store

#: what the writer made before the measurement (versions written then hold it)
OLD = BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")


@pytest.fixture(autouse=True)
def face_like_samples(monkeypatch):
    """Samples with structure and noise: chunks that compress, too big for Icechunk to inline."""

    def arrays(i):
        rng = np.random.default_rng(i)
        y, x = np.mgrid[0:64, 0:64] / 64
        frames = np.stack([np.sin(6 * x + i + t) * np.cos(4 * y) for t in range(2)])
        frames = frames + 0.05 * rng.standard_normal(frames.shape)
        return {
            "frames": frames.astype(np.float16),
            "landmarks": (rng.random((68, 2)) * 64).astype(np.float32),
        }

    monkeypatch.setattr(test_store, "sample_arrays", arrays)
    return arrays


def _blosc(store, name: str) -> BloscCodec:
    raw = zarr.open_group(store.session.store, mode="r")[name]
    blosc = [c for c in raw.compressors if isinstance(c, BloscCodec)]
    assert len(blosc) == 1, raw.compressors
    return blosc[0]


def _write_with(monkeypatch, codec: BloscCodec | None, plan) -> None:
    """Write ``plan``'s version with ``codec`` as the writer's Blosc (None: its default)."""
    with monkeypatch.context() as patch:
        if codec is not None:
            patch.setattr(writer, "COMPRESSORS", (codec, writer.CHECKSUM))
        write_version(plan, failed={1})


def _check_reads(store, arrays, rows) -> None:
    """Every array of ``store`` reads back as written, by zarr and by the bulk decoder."""
    for name in ("frames", "landmarks"):
        expected = np.stack([arrays(i)[name] for i in rows])
        np.testing.assert_array_equal(store.array(name), expected)
        raw = zarr.open_group(store.session.store, mode="r")[name]
        assert fast_path(raw), f"{name}: the bulk decoder would not take the store's layout"
        np.testing.assert_array_equal(read_rows(raw, np.array(rows)[::-1]), expected[::-1])
        np.testing.assert_array_equal(raw.get_orthogonal_selection((np.array(rows),)), expected)
        for i in range(len(rows)):
            np.testing.assert_array_equal(store.sample(i, [name])[name], expected[i])


def test_new_versions_are_written_with_lz4_and_bitshuffle(tmp_path, face_like_samples):
    assert (writer.COMPRESSOR.cname.value, writer.COMPRESSOR.shuffle.value) == ("lz4", "bitshuffle")
    plan = make_plan(tmp_path / "s", n=4)
    write_version(plan, failed={1})
    store = open_store(tmp_path / "s")
    for name in ("frames", "landmarks", "aus"):
        blosc = _blosc(store, name)
        assert (blosc.cname.value, blosc.clevel, blosc.shuffle.value) == ("lz4", 9, "bitshuffle")
    _check_reads(store, face_like_samples, [0, 2, 3])
    assert verify_store(tmp_path / "s") == []


def test_a_zstd_version_written_before_still_reads_verifies_and_loads_in_bulk(
    tmp_path, monkeypatch, face_like_samples
):
    old = make_plan(tmp_path / "s", n=4, fingerprint="1" * 32)
    _write_with(monkeypatch, OLD, old)
    new = make_plan(tmp_path / "s", n=5, fingerprint="2" * 32)
    _write_with(monkeypatch, None, new)  # the upgrade: the next version gets the new default

    before = open_store(tmp_path / "s", version=old.version_id)
    assert (_blosc(before, "frames").cname.value, _blosc(before, "frames").clevel) == ("zstd", 1)
    validate_group(before.group)
    _check_reads(before, face_like_samples, [0, 2, 3])

    after = open_store(tmp_path / "s")
    assert after.version_id == new.version_id
    assert _blosc(after, "frames").cname.value == "lz4"
    _check_reads(after, face_like_samples, [0, 2, 3, 4])
    assert verify_store(tmp_path / "s", all_versions=True) == []


def test_a_flipped_bit_in_an_old_zstd_chunk_is_still_caught(tmp_path, monkeypatch):
    plan = make_plan(tmp_path / "s", n=3)
    _write_with(monkeypatch, OLD, plan)
    chunks = sorted(p for p in (tmp_path / "s" / "chunks").rglob("*") if p.is_file())
    biggest = max(chunks, key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0x10
    biggest.write_bytes(bytes(data))
    broken = verify_store(tmp_path / "s")
    assert len(broken) == 1 and broken[0].array == "frames"


def test_a_codec_the_schema_does_not_name_is_refused(tmp_path, monkeypatch):
    plan = make_plan(tmp_path / "s", n=2)
    other = BloscCodec(cname="blosclz", clevel=5, shuffle="bitshuffle")
    with pytest.raises((SchemaError, StoreWriteError), match="lz4 or zstd"):
        _write_with(monkeypatch, other, plan)
