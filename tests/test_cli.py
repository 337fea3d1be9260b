"""The CLI commands that need no flow: `list` (plain and composite) and `info`."""

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.synth.generate import generate_dataset


@pytest.fixture(scope="module")
def small_casme2(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "CASME2"
    written = generate_dataset(
        "casme2", root, n_subjects=2, clips_per_subject=2, seed=3, n_frames=12, missing_apex=0.5
    )
    return root, written


def test_list_prints_the_sample_table_without_processing(small_casme2):
    root, written = small_casme2
    result = CliRunner().invoke(main, ["list", "casme2", "--root", str(root), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["subject"] + "/" + r["clip"] for r in rows] == sorted(w.sample_id for w in written)
    for row, clip in zip(rows, sorted(written, key=lambda w: w.sample_id), strict=True):
        assert int(row["onset"]) == clip.onset and int(row["offset"]) == clip.offset
        assert row["apex"] == ("" if clip.apex is None else str(clip.apex))
        assert int(row["n_frames"]) == len(clip.frame_paths)
    assert not list(root.parent.glob("stores"))  # nothing was processed or written


def test_list_composite_takes_one_root_per_part(tmp_path):
    roots = {}
    for part, folder in (("smic", "SMIC"), ("casme2", "CASME2"), ("samm", "SAMM")):
        roots[part] = tmp_path / folder
        generate_dataset(
            part,
            roots[part],
            n_subjects=1,
            clips_per_subject=2,
            seed=1,
            n_frames=16,
            size=(240, 320),
            classes=["surprise"] if part == "smic" else None,
        )
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
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        f"error: no mer-prep store at {tmp_path / 'nothing'}"
    ]
    assert not (tmp_path / "nothing").exists()  # a read creates nothing


BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "casme2", "--root", "{root}", "--recipe", "nosuch"], "unknown recipe 'nosuch'"),
        (["run", "casme9", "--root", "{root}"], "unknown dataset 'casme9'"),
        (["run", "casme2", "--root", "{root}", "--labels", "nope"], "unknown label scheme 'nope'"),
        (["run", "casme2", "--root", "{root}/missing"], "does not exist"),
        (["run", "casme2", "--root", "{root}", "--option", "variantt=raw"], "no option 'variantt'"),
    ],
)
def test_run_refuses_bad_names_in_one_line_before_prefect_starts(tmp_path, args, message):
    """Within 3 s, at most 3 lines, exit 2, and no Prefect server (its home stays empty)."""
    home = tmp_path / "home"
    args = [a.format(root=tmp_path) for a in args] + ["--home", str(home)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    start = time.monotonic()
    done = subprocess.run(
        [str(BIN / "mer-prep"), *args], capture_output=True, text=True, env=env, timeout=60
    )
    elapsed = time.monotonic() - start
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) <= 3 and message in lines[0] and lines[0].startswith("error: "), lines
    assert "None" not in done.stderr
    assert elapsed < 3, f"{elapsed:.1f} s"
    assert not home.exists()  # Prefect's home is made only when a server starts


def test_debug_shows_the_traceback_and_help_lists_the_names():
    runner = CliRunner()
    plain = runner.invoke(main, ["split", "/nonexistent/store", "--kind", "random"])
    assert plain.exit_code == 2 and "--leaky" in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1
    debug = runner.invoke(main, ["--debug", "split", "/nonexistent/store", "--kind", "random"])
    assert debug.exception is not None and type(debug.exception).__name__ == "InvalidArgumentError"
    helped = runner.invoke(main, ["-h"])
    assert helped.exit_code == 0
    for name in ("casme2", "megc2019", "ha3d", "msres3d", "megc3", "Exit codes"):
        assert name in helped.output
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0 and "mer-prep, version" in version.output
    assert "--tag" in runner.invoke(main, ["info", "-h"]).output


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path):
    user_data = tmp_path / "CASME2"
    (user_data / "sub01").mkdir(parents=True)
    (user_data / "sub01" / "precious.jpg").write_bytes(b"licensed")
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "was not made by `mer-prep demo`" in result.stderr
    assert (user_data / "sub01" / "precious.jpg").read_bytes() == b"licensed"
