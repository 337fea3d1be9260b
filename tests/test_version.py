"""The code version hashes the code that decides stored values, and only that code.

Each test edits a private copy of the package (``mer_prep/`` and ``storage_schemas/``) and
compares ``code_digest`` before and after.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from module_imports import REPO, all_imports

from mer_prep.version import (
    CODE_PATHS,
    code_digest,
    code_version,
    hashed_files,
    package_root,
)

STAGE = "mer_prep/motion/flow.py"


@pytest.fixture
def copy(tmp_path) -> Path:
    """A private copy of the installed package; returns the directory holding it."""
    root = package_root()
    for name in ("mer_prep", "storage_schemas"):
        shutil.copytree(
            root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return tmp_path


def _edit(path: Path, change) -> None:
    before = path.read_text()
    after = change(before)
    assert after != before, f"the edit of {path} changed nothing"
    path.write_text(after)


def _reword_docstrings(source: str) -> str:
    """Reword every docstring (module, classes, functions) and add comments and blank lines."""
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    docstrings, defs = [], []
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
            and isinstance(node.body[0].value.value, str)
        ):
            docstrings.append(node.body[0].value)
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs.append(node)
    assert len(docstrings) >= 3, "the stage module has too few docstrings to test with"
    for doc in docstrings:  # same line count: insert text right after the opening quotes
        i, col = doc.lineno - 1, doc.col_offset
        opening = re.match(r"[rRuU]?(\"\"\"|'''|\"|')", lines[i][col:])
        assert opening, lines[i]
        at = col + opening.end()
        lines[i] = lines[i][:at] + "Reworded, with more words. " + lines[i][at:]
    for node in sorted(defs, key=lambda n: n.lineno, reverse=True):
        indent = " " * node.col_offset
        lines.insert(node.lineno - 1, f"{indent}# a comment about what follows\n\n")
    return "# a new first line comment\n" + "".join(lines) + "\n# a trailing comment\n"


def test_code_version_is_the_package_release_and_the_digest_of_the_installed_code():
    release = metadata.version("mer-prep")
    assert code_version() is code_version()  # computed once per process
    # uncached: files may have been edited since this process first asked
    assert code_version.__wrapped__() == f"{release}+{code_digest(package_root())}"
    assert re.fullmatch(r"[0-9a-f]{12}", code_digest(package_root()))


def test_a_copy_has_the_same_digest(copy):
    assert code_digest(copy) == code_digest(package_root())
    assert [p.relative_to(copy) for p in hashed_files(copy)] == [
        p.relative_to(package_root()) for p in hashed_files(package_root())
    ]


def test_docstrings_and_comments_of_a_stage_do_not_count(copy):
    before = code_digest(copy)
    _edit(copy / STAGE, _reword_docstrings)
    assert code_digest(copy) == before


def test_the_arithmetic_of_a_stage_counts(copy):
    before = code_digest(copy)

    def change_a_constant(source: str) -> str:
        """Add 1 to the first number that is an operand of an arithmetic expression."""
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.BinOp):
                for operand in (node.right, node.left):
                    if (
                        isinstance(operand, ast.Constant)
                        and type(operand.value) in (int, float)
                        and operand.lineno == operand.end_lineno
                    ):
                        lines = source.splitlines(keepends=True)
                        line = lines[operand.lineno - 1]
                        lines[operand.lineno - 1] = (
                            line[: operand.col_offset]
                            + repr(operand.value + 1)
                            + line[operand.end_col_offset :]
                        )
                        return "".join(lines)
        raise AssertionError("no arithmetic constant found in the stage module")

    _edit(copy / STAGE, change_a_constant)
    assert code_digest(copy) != before


def test_code_outside_the_list_does_not_count(copy):
    """The CLI's help texts and code, the run report, a new module: none decide stored values."""
    before = code_digest(copy)
    cli = sorted({*copy.glob("mer_prep/cli.py"), *copy.glob("mer_prep/cli/**/*.py")})
    assert any('help="' in path.read_text() for path in cli)
    for path in cli:  # the CLI module, or every module of the CLI package
        _edit(
            path,
            lambda s: (
                s.replace('help="', 'help="Reworded: ', 1)
                + "\n\ndef _added_command_helper(x):\n    return x * 2 + 1\n"
            ),
        )
    _edit(copy / "mer_prep/pipeline/report.py", lambda s: s + "\n\nREPORT_WIDTH = 3 * 40\n")
    (copy / "mer_prep/brand_new_helper.py").write_text("VALUE = 1 + 2\n")
    assert code_digest(copy) == before


def test_yaml_counts_as_data_not_text(copy):
    recipe = copy / "mer_prep/recipes/builtin/mbcc64.yaml"
    before = code_digest(copy)
    data = yaml.safe_load(recipe.read_text())
    recipe.write_text(
        "# reformatted, keys reordered\n"
        + yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
    )
    assert code_digest(copy) == before
    data["align"]["inter_ocular"] += 0.01
    recipe.write_text(yaml.safe_dump(data))
    assert code_digest(copy) != before


def test_storage_schemas_count_as_data_not_text(copy):
    schema = copy / "storage_schemas/feature_store.v1.json"
    before = code_digest(copy)
    data = json.loads(schema.read_text())
    schema.write_text(json.dumps(data, indent=7, sort_keys=True))
    assert code_digest(copy) == before
    schema.write_text(json.dumps({**data, "x-extra": 1}))
    assert code_digest(copy) != before


@pytest.mark.parametrize(
    "path",
    [
        "mer_prep/labels/schemes.yaml",
        "mer_prep/datasets/casme2.py",
        "mer_prep/store/writer.py",
        "mer_prep/pipeline/frame_selection.py",
    ],
)
def test_other_listed_code_counts(copy, path):
    before = code_digest(copy)
    target = copy / path
    if target.suffix == ".py":
        target.write_text(target.read_text() + "\nEXTRA_CONSTANT = 1\n")
    else:
        target.write_text(target.read_text() + "\nextra_key: 1\n")
    assert code_digest(copy) != before


def test_a_listed_path_that_is_gone_is_an_error(copy):
    (copy / "mer_prep/store/table.py").unlink()
    with pytest.raises(FileNotFoundError, match="store/table.py"):
        code_digest(copy)


#: Modules the processing code imports that still cannot change a stored value.
NOT_DECIDING = {
    "mer_prep": "the package's empty __init__",
    "mer_prep.errors": "exception classes and message texts (diagnostics, not stored arrays)",
    "mer_prep.store.repo": "opens Icechunk repositories; what is written is writer.py's",
    "mer_prep.store.gc": "scratch branches of dead runs and expiry of old versions, never "
    "what a version holds",
    "mer_prep.version": "this hash itself",
    "mer_prep.store.run_watch": "whether a run is still on (a gone run's batch stops), never "
    "what a version holds",
    "mer_prep.store.split_digest": "checksums of a split committed on a version, never what "
    "the version's features hold",
}


def test_everything_the_processing_code_imports_is_hashed():
    """A module that process / batch / planning / the writer / the adapters reach (directly or
    not) is in CODE_PATHS, or explicitly listed in NOT_DECIDING with a reason."""
    imports = all_imports()
    roots = [
        "mer_prep.pipeline.process",
        "mer_prep.pipeline.batch",
        "mer_prep.pipeline.planning",
        "mer_prep.store.writer",
        "mer_prep.datasets",
        "mer_prep.labels",
    ]
    reached, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module in reached or module not in imports:
            continue
        reached.add(module)
        todo.extend(i.module for i in imports[module] if i.module.split(".")[0] == "mer_prep")
    assert set(roots) <= reached
    hashed = {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in hashed_files(REPO)
        if p.suffix == ".py"
    }
    assert sorted(reached - hashed - set(NOT_DECIDING)) == []
    assert CODE_PATHS  # documented constant
