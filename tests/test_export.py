"""`mer-prep export`: a store whose apexes are partly missing exports and round-trips; the file
appears whole or not at all, names the version, and is never overwritten silently."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from store_contents import SMALL_CASME2

from mer_prep.cli import main
from mer_prep.errors import MerPrepError
from mer_prep.store import open_store
from mer_prep.store.export import export_hdf5
from mer_prep.store.table import MISSING

pytestmark = pytest.mark.slow  # the module's store is processed once, in-process (~10 s)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, synth_dataset):
    """A committed ha3d store of the small CASME II look-alike (``SMALL_CASME2``, seed 3), half
    of its apexes missing."""
    from mer_prep.pipeline.local import commit_version

    root, written = synth_dataset("casme2", **{**SMALL_CASME2, "seed": 3, "missing_apex": 0.5})
    assert {w.apex is None for w in written} == {True, False}
    path = tmp_path_factory.mktemp("export") / "casme2-ha3d"
    commit_version("casme2", root, "ha3d", path)
    return path


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_a_store_with_missing_apexes_exports_and_round_trips(store_path, tmp_path):
    store = open_store(store_path)
    table = store.table
    assert table["apex"].isna().any() and table["apex"].notna().any()
    out = export_hdf5(store, tmp_path / "out.h5")
    assert out == tmp_path / "out.h5" and _leftovers(tmp_path, {"out.h5"}) == []
    with h5py.File(out, "r") as f:
        apex = f["table/apex"]
        assert apex.dtype == np.int64 and apex.attrs["missing_value"] == MISSING
        expected = table["apex"].fillna(MISSING).to_numpy(dtype=np.int64)
        np.testing.assert_array_equal(apex[:], expected)
        for column in table.columns:
            stored = f["table"][column][:]
            values = table[column].tolist()
            if column == "apex":
                continue
            if stored.dtype.kind == "O":
                stored = [s.decode() for s in stored]
                values = [
                    json.dumps(v) if isinstance(v, (list, dict)) or v is None else v for v in values
                ]
            assert list(stored) == list(values), column
        np.testing.assert_array_equal(f["frames"][:], store.array("frames"))
        assert json.loads(f.attrs["mer_prep"])["version_id"] == store.version_id


def test_the_cli_names_the_version_refuses_to_overwrite_and_states_the_licence(store_path):
    store = open_store(store_path)
    default = Path(f"{store_path}.{store.version_id}.h5")
    folder = store_path.parent
    runner = CliRunner()
    first = runner.invoke(main, ["export", str(store_path)])
    assert first.exit_code == 0, first.output
    assert default.is_file() and str(default) in first.output
    assert "licen" in first.output.lower() and "face" in first.output.lower()
    before = default.read_bytes()

    again = runner.invoke(main, ["export", str(store_path)])
    assert again.exit_code == 2 and "--overwrite" in again.stderr, again.output
    assert len(again.stderr.strip().splitlines()) == 1 and again.stderr.startswith("error:")
    assert default.read_bytes() == before

    forced = runner.invoke(main, ["export", str(store_path), "--overwrite"])
    assert forced.exit_code == 0, forced.output
    with h5py.File(default, "r") as f:
        assert f["frames"].shape[0] == len(store.table)
    assert _leftovers(folder, {store_path.name, default.name}) == []
    default.unlink()


def test_a_failed_export_leaves_nothing_behind_and_keeps_the_old_file(
    store_path, tmp_path, monkeypatch
):
    store = open_store(store_path)

    def broken(name):
        def read(rows):
            raise OSError("disk gone")

        return read

    monkeypatch.setattr(store, "row_reader", broken)
    with pytest.raises(OSError, match="disk gone"):
        export_hdf5(store, tmp_path / "new.h5")
    assert _leftovers(tmp_path, set()) == []

    old = tmp_path / "old.h5"
    old.write_bytes(b"an earlier export")
    with pytest.raises(MerPrepError, match="exists"):
        export_hdf5(store, old)
    with pytest.raises(OSError, match="disk gone"):
        export_hdf5(store, old, overwrite=True)
    assert old.read_bytes() == b"an earlier export" and _leftovers(tmp_path, {"old.h5"}) == []
