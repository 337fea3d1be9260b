"""The CLI commands that need no flow: `list` (plain and composite) and `info`."""

import csv
import io

import pytest
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.synth.generate import generate_dataset


@pytest.fixture(scope="module")
def small_casme2(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "CASME2"
    written = generate_dataset("casme2", root, n_subjects=2, clips_per_subject=2, seed=3,
                               n_frames=12, missing_apex=0.5)
    return root, written


def test_list_prints_the_sample_table_without_processing(small_casme2):
    root, written = small_casme2
    result = CliRunner().invoke(main, ["list", "casme2", "--root", str(root), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["subject"] + "/" + r["clip"] for r in rows] == sorted(w.sample_id for w in written)
    for row, clip in zip(rows, sorted(written, key=lambda w: w.sample_id)):
        assert int(row["onset"]) == clip.onset and int(row["offset"]) == clip.offset
        assert row["apex"] == ("" if clip.apex is None else str(clip.apex))
        assert int(row["n_frames"]) == len(clip.frame_paths)
    assert not list(root.parent.glob("stores"))  # nothing was processed or written


def test_list_composite_takes_one_root_per_part(tmp_path):
    roots = {}
    for part, folder in (("smic", "SMIC"), ("casme2", "CASME2"), ("samm", "SAMM")):
        roots[part] = tmp_path / folder
        generate_dataset(part, roots[part], n_subjects=1, clips_per_subject=2, seed=1, n_frames=16,
                         size=(240, 320), classes=["surprise"] if part == "smic" else None)
    args = ["list", "megc2019", "--labels", "megc3"]
    for part, path in roots.items():
        args += ["--root", f"{part}={path}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["dataset"] for r in rows} <= {"smic", "casme2", "samm"}
    assert any(r["dataset"] == "smic" and r["label"] == "surprise" for r in rows)
    assert all(r["label"] in {"negative", "positive", "surprise"} for r in rows)
    bad = CliRunner().invoke(main, ["list", "megc2019", "--root", str(tmp_path), "--root", "x"])
    assert bad.exit_code != 0 and "part=PATH" in bad.output


def test_info_on_a_missing_store_says_so(tmp_path):
    result = CliRunner().invoke(main, ["info", str(tmp_path / "nothing")])
    assert result.exit_code != 0
    assert "no mer-prep store" in str(result.exception)
