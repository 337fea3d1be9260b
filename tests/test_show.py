"""`mer-prep show`: the HTML report of a store (failures, missing apex, leaky split, runs), the
report of every built-in recipe in headless Chromium, and the preprocess artifact's images in
the Prefect UI."""

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import find_browser, open_page
from click.testing import CliRunner
from plot_stores import TINY, build_store

from mer_prep.cli import main
from mer_prep.evaluation.splits import build_split
from mer_prep.plot.report import write_report
from mer_prep.recipes import builtin_recipes
from mer_prep.store import open_store
from mer_prep.store.splits import save_split

BROWSER = find_browser()
NO_BROWSER = (
    "no Chromium-family browser on PATH (CI installs Debian's `chromium` in .ci/run; "
    "elsewhere: apt-get install -y chromium)"
)


def _frame(clip, number: int) -> Path:
    return next(Path(p) for p in clip.frame_paths if int(Path(p).stem[3:]) == number)


@pytest.fixture(scope="module")
def troubled(tmp_path_factory, synth_dataset):
    """mbcc64 over a private copy of the tiny dataset where one clip has no face on its onset
    frame and another a corrupt apex frame; one kept clip has no annotated apex (spotted), and
    the store holds a leaky sample-level split beside a subject-independent one."""
    base = tmp_path_factory.mktemp("show")
    # one class, so that the (stratified) random split can put 4 clips in 2 folds
    root, written = synth_dataset(
        "casme2", copy_to=base / "data", **{**TINY, "n_subjects": 3, "classes": ["surprise"]}
    )
    spotted = next(w for w in written if w.apex is None)
    faceless, corrupt = [w for w in written if w.apex is not None and w is not spotted][:2]
    for number in range(faceless.onset, faceless.onset + 4):  # the detection cascade also
        # looks at the three frames after the onset
        if _frame(faceless, number).exists():
            cv2.imwrite(str(_frame(faceless, number)), np.full((240, 320), 128, np.uint8))
    _frame(corrupt, corrupt.apex).write_bytes(b"not a jpeg")
    store_path = build_store(root, base / "store", "mbcc64")
    store = open_store(store_path)
    save_split(store, build_split(store.table, "random", n_splits=2, seed=0, leaky=True))
    save_split(open_store(store_path), build_split(store.table, "loso", name="by_subject"))
    return root, store_path, faceless, corrupt


def test_show_renders_failures_missing_apex_and_a_leaky_split(troubled, tmp_path):
    root, store_path, faceless, corrupt = troubled
    store = open_store(store_path)
    assert len(store.failures) == 2 and "spotted" in set(store.table["apex_source"])
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["show", str(store_path), "--out", str(out), "--png", "--root", str(root)]
    )
    assert result.exit_code == 0, result.output
    assert str(out.resolve()) in result.output
    page = out.read_text()
    # failures: the corrupt frame named and not decodable; the faceless clip's onset frame shown
    failures = page[page.index('id="failures"') : page.index('id="splits"')]
    assert "Failures (2)" in page
    assert corrupt.sample_id in failures and faceless.sample_id in failures
    assert "cannot be decoded" in failures and "no face found" in failures
    assert f"onset frame {_frame(faceless, faceless.onset)}" in failures
    assert failures.count("data:image/png;base64,") == 1
    # the spotted apex, said so on its card and counted
    assert re.search(r"apex \d+ \(spotted\)", page)
    apex_table = page[page.index("<h3>apex</h3>") : page.index('id="failures"')]
    assert "<td>spotted</td><td>1</td>" in apex_table
    # the leaky split is marked, the subject-independent one is not
    splits = page[page.index('id="splits"') : page.index('id="sheets"')]
    random_head = splits[splits.index("<h3>random") : splits.index("<h3>random") + 300]
    assert "LEAKY" in random_head and "recorded as leaky" in splits
    by_subject = splits[splits.index("<h3>by_subject") : splits.index("<h3>by_subject") + 200]
    assert "LEAKY" not in by_subject.split("</h3>")[0]
    # the PNGs beside it, one per embedded image
    pngs = sorted((tmp_path / "report_png").glob("*.png"))
    assert len(pngs) == page.count("data:image/png;base64,") > 5


def test_show_without_a_root_and_for_chosen_samples(troubled, tmp_path):
    _, store_path, _, _ = troubled
    kept = open_store(store_path).table["sample_id"][1]
    out = tmp_path / "one.html"
    result = CliRunner().invoke(
        main, ["show", str(store_path), "--out", str(out), "--sample", kept]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count("<div class=card>") == 1 and kept in page
    assert "file not readable here" in page and "--root" in page
    bad = CliRunner().invoke(main, ["show", str(store_path), "--out", str(out), "--sample", "x/y"])
    assert bad.exit_code == 2 and "no processed sample 'x/y'" in bad.output


def test_report_lists_recorded_training_runs(troubled, tmp_path):
    from run_parts import fold_result, run_header

    from mer_prep.train import list_runs
    from mer_prep.train.records import EpochLog, combine_folds
    from mer_prep.train.runs_store import save_run

    _, store_path, _, _ = troubled
    store = open_store(store_path)
    names = store.class_names
    table = store.table
    folds = []
    for index, (name, _, test) in enumerate(store.split("loso").folds()):
        y_true = table["label"].to_numpy()[test]
        folds.append(
            fold_result(
                index,
                name,
                tuple(names),
                table["sample_id"].to_numpy(dtype=str)[test],
                y_true,
                y_true.copy(),
                np.eye(len(names), dtype=np.float32)[y_true],
                rows=test,
                curves=tuple(
                    EpochLog(e, 1.0 / (e + 1), 0.5 + 0.1 * e, 0.1, 0.05, 3) for e in range(4)
                ),
                best_epoch=3,
            )
        )
    header = run_header(
        "20260101T000000Z-mbcc-abcdef",
        {
            "version_id": store.version_id,
            "snapshot_id": store.session.snapshot_id,
            "class_names": names,
        },
        len(folds),
        code_version="test",
    )
    record = combine_folds(folds, header)
    save_run(store, record)
    assert record.plot.confusion().axes  # run.plot
    runs = list_runs(store)
    report = write_report(open_store(store_path), tmp_path / "runs.html", runs=runs)
    page = report.path.read_text()
    section = page[page.index('id="runs"') :]
    assert header.run_id in section and "leaderboard" in section and "1.000" in section
    assert section.count("data:image/png;base64,") == 3  # confusion, folds, learning curves
    assert (
        "Run records were not read"
        in write_report(open_store(store_path), tmp_path / "none.html").path.read_text()
    )


def test_report_text_from_the_store_is_escaped(troubled):
    """The report is rendered from Jinja2 templates with autoescaping on: text read from a store
    (here its ``created`` attribute and a split name) never becomes markup."""
    from mer_prep.plot.report import report_html

    _, store_path, _, _ = troubled
    store = open_store(store_path)
    store.__dict__["attrs"] = {**store.attrs, "created": '<script>alert("x")</script>'}
    page, n_images = report_html(store, samples=[store.table["sample_id"][0]])
    assert "<script>" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert page.count("<img ") == page.count("data:image/png;base64,") == n_images > 0
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")


# --- in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def every_recipe(tmp_path_factory, synth_dataset):
    root, _ = synth_dataset("casme2", **TINY)
    base = tmp_path_factory.mktemp("recipes")
    return {name: build_store(root, base / name, name) for name in sorted(builtin_recipes())}


def _allowed(error: str) -> bool:
    """Prefect UI console noise that is not about the artifact: a missing favicon, the V2 UI's
    analytics host (unreachable offline) and its flow/task-run filters, which the server
    answers 422 for an artifact made outside a flow run."""
    return (
        "favicon.ico" in error
        or "amplitude.com" in error
        or re.search(r"status of 422 .*/api/(flow|task)_runs/filter", error) is not None
    )


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_every_recipe_report_opens_in_chromium(every_recipe, tmp_path):
    shots = Path(os.environ.get("MER_PREP_SCREENSHOTS", tmp_path))
    for name, store_path in every_recipe.items():
        report = write_report(open_store(store_path), tmp_path / f"{name}.html")
        check = open_page(report.path.resolve().as_uri(), shots / f"report-{name}.png")
        assert len(check.images) == report.n_images > 5, name
        broken = [image for image in check.images if not image[1] or image[2] <= 0]
        assert not broken, (name, broken)
        assert check.errors == [], (name, check.errors)
        assert check.screenshot.stat().st_size > 10_000
        assert "Contact sheets per class" in check.text and name in check.text


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_preprocess_artifact_images_show_in_the_prefect_ui(every_recipe, tmp_path):
    """The run report's markdown, images included, posted as an artifact to a real `prefect
    server start` with its UI on: both UIs decode every image."""
    from server_harness import BIN, free_port, get_json, stop_group, wait_for

    from flows.runtime import isolated_environment
    from mer_prep.pipeline.report import run_images
    from mer_prep.pipeline.summary import RunSummary

    store = open_store(every_recipe["msres3d"])
    summary = RunSummary(
        store=str(store.path),
        version_id=store.version_id,
        dataset="casme2",
        recipe="msres3d",
        n_samples=4,
        n_scan_problems=0,
        artifact_key="preprocess-casme2-msres3d",
        phase_seconds={},
    )
    summary.snapshot = store.session.snapshot_id
    markdown = "# preprocess casme2 / msres3d\n\n" + run_images(summary)
    assert markdown.count("](data:image/png;base64,") == 2 and len(markdown) < 400_000

    port = free_port()
    env = {
        **isolated_environment(tmp_path / "prefect-home"),
        "PREFECT_SERVER_UI_ENABLED": "true",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
    }
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            api = f"http://127.0.0.1:{port}/api"
            wait_for("the Prefect server", lambda: get_json(f"{api}/health") is True, 240, [server])
            request = urllib.request.Request(
                f"{api}/artifacts/",
                method="POST",
                headers={"Content-Type": "application/json"},
                data=json.dumps(
                    {"key": summary.artifact_key, "type": "markdown", "data": markdown}
                ).encode(),
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                artifact = json.load(response)["id"]
            shots = Path(os.environ.get("MER_PREP_SCREENSHOTS", tmp_path))
            for ui, prefix in (("v1", ""), ("v2", "/v2")):
                check = open_page(
                    f"http://127.0.0.1:{port}{prefix}/artifacts/artifact/{artifact}",
                    shots / f"prefect-artifact-{ui}.png",
                    timeout=120,
                    ready="document.querySelectorAll('img[src^=\"data:image/png\"]').length >= 2",
                )
                pictures = [
                    i for i in check.images if i[0] in ("samples per class", "contact sheet")
                ]
                assert len(pictures) == 2 and all(i[1] and i[2] > 100 for i in pictures), (
                    ui,
                    check.images,
                )
                assert [e for e in check.errors if not _allowed(e)] == [], (ui, check.errors)
        finally:
            stop_group(server)
