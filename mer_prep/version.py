"""The code version recorded in every store: package version plus a hash of the code that
decides stored values.

Any change to that code gives a new code version, hence a new store version id, so a store can
never claim arrays (or table values) that today's code would compute differently. Code that
cannot change what is stored — the CLI, the Prefect flows, the reader, the markdown run report,
splits and metrics, the synthetic data generator — is left out, so editing it keeps every
store's version (and an unchanged re-run stays "up to date").

What is hashed is the *code*, not its text: each ``.py`` file is parsed with ``ast``, its
docstrings (the first-statement string of the module, of every class and of every function)
are dropped, and ``ast.dump`` of the rest is hashed, so comments, docstrings, blank lines and
formatting never count. YAML and JSON files are hashed as the data they load to (canonical
JSON), so their comments and layout do not count either.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import cache
from importlib import metadata
from pathlib import Path

import yaml

#: The files whose code decides stored values, as glob patterns relative to the directory that
#: holds the ``mer_prep`` and ``storage_schemas`` packages. Each pattern must match at least one
#: file (a renamed module then fails loudly instead of silently leaving the hash).
#:
#: - ``sample.py``: the ``Sample`` record the table rows are built from (``sample_id``, ...).
#: - ``face/``, ``motion/``: the stages (decoding, detection, landmarks, alignment, masks,
#:   halves, keyframes, apex spotting, magnification, optical flow).
#: - ``pipeline/`` except ``report.py``: which frames a recipe reads, one clip through the
#:   stages, augmentation, input fingerprints, the version plan (class names, row order) and a
#:   worker's batch (which samples are stored as failed).
#: - ``recipes/``: the recipe model (defaults, validation, hash) and the built-in recipes.
#: - ``labels/``: the label schemes map emotions to the stored ``label`` / ``label_name``.
#: - ``datasets/``: the adapters decide each sample's frames, onset, apex, offset, fps, subject
#:   and emotion, all stored in the table (and the frames decide the arrays). The input
#:   fingerprint covers the bytes of the annotation files, not how they are read, so a fix to an
#:   adapter (e.g. CASME I's onset fixes) must give a new version.
#: - ``store/writer.py``, ``store/layout.py`` (group names, the root attributes' model),
#:   ``store/versions.py`` (the version plan: layout, row order, AU columns),
#:   ``store/table.py``, ``store/schema.py`` and ``storage_schemas/*.json``: the
#:   encoding of what is written (dtypes, codecs, chunks, table columns, attributes);
#:   ``store/nodes.py``: how the writer and the version plan open and read the nodes they
#:   write to and reuse from.
#: - ``recipes/long_video/*.yaml``, ``store/long_writer.py`` and ``store/long_layout.py``: the
#:   built-in long-video recipes and how a long-video version is laid out and written (its
#:   chunks, codecs, attributes; ``pipeline/long_*.py`` and ``motion/`` compute its values).
CODE_PATHS: tuple[str, ...] = (
    "mer_prep/sample.py",
    "mer_prep/face/*.py",
    "mer_prep/motion/*.py",
    "mer_prep/pipeline/*.py",
    "mer_prep/recipes/*.py",
    "mer_prep/recipes/builtin/*.yaml",
    "mer_prep/recipes/long_video/*.yaml",
    "mer_prep/labels/*.py",
    "mer_prep/labels/*.yaml",
    "mer_prep/datasets/*.py",
    "mer_prep/datasets/*.yaml",
    "mer_prep/store/writer.py",
    "mer_prep/store/layout.py",
    "mer_prep/store/versions.py",
    "mer_prep/store/table.py",
    "mer_prep/store/schema.py",
    "mer_prep/store/nodes.py",
    "mer_prep/store/long_writer.py",
    "mer_prep/store/long_layout.py",
    "storage_schemas/*.json",
)

#: Files matched by ``CODE_PATHS`` that still do not decide stored values.
NOT_HASHED: frozenset[str] = frozenset(
    {
        "mer_prep/pipeline/report.py",  # renders the run's markdown report only
    }
)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:]
    return tree


def _canonical(path: Path) -> bytes:
    """The part of one file that counts: its code (``.py``) or its data (``.yaml``, ``.json``)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        tree = _strip_docstrings(ast.parse(text, filename=str(path)))
        return ast.dump(tree, annotate_fields=True, include_attributes=False).encode()
    if path.suffix in (".yaml", ".yml"):
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    else:
        data = json.loads(text)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


def hashed_files(root: Path) -> list[Path]:
    """The files of ``CODE_PATHS`` under ``root``, sorted; raises when a pattern matches none."""
    root = Path(root)
    found: set[Path] = set()
    for pattern in CODE_PATHS:
        matches = [p for p in root.glob(pattern) if p.is_file()]
        if not matches:
            raise FileNotFoundError(f"code version: no file matches {pattern!r} under {root}")
        found.update(p for p in matches if p.relative_to(root).as_posix() not in NOT_HASHED)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def code_digest(root: Path) -> str:
    """12 hex digits of the sha256 over the code of ``CODE_PATHS`` under ``root`` (the directory
    holding ``mer_prep/`` and ``storage_schemas/``)."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in hashed_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(_canonical(path)).digest())
    return digest.hexdigest()[:12]


def package_root() -> Path:
    """The directory holding the installed ``mer_prep`` and ``storage_schemas`` packages."""
    import mer_prep
    import storage_schemas

    root = Path(mer_prep.__file__).resolve().parent.parent
    schemas = Path(storage_schemas.__file__).resolve().parent.parent
    if schemas != root:
        raise RuntimeError(
            f"mer_prep ({root}) and storage_schemas ({schemas}) are installed "
            "in different places; the code version cannot be computed"
        )
    return root


@cache
def code_version() -> str:
    """``"<package version>+<code_digest of the installed package>"``."""
    try:
        release = metadata.version("mer-prep")
    except metadata.PackageNotFoundError:
        release = "0+unknown"
    return f"{release}+{code_digest(package_root())}"
