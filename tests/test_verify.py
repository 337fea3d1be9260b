"""Corruption never reads back silently: every chunk carries a CRC-32C, readers name the array
and sample of a bad chunk, and `mer-prep verify` reports every broken chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
import test_store
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
        return {"frames": rng.random((2, 64, 64)).astype(np.float16),
                "landmarks": rng.random((68, 2)).astype(np.float32)}
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


def test_corrupt_metadata_is_reported_not_read_as_data(tmp_path):
    store = tmp_path / "s"
    write_version(make_plan(store, n=2))
    snapshot = max((store / "snapshots").iterdir(), key=lambda p: p.stat().st_mtime)
    _flip_one_bit(snapshot, 8 * (snapshot.stat().st_size // 2))
    with pytest.raises(Exception):
        open_store(store).array("frames")
