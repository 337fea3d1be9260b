"""Every document the code, tests, recipes and README cite is in the repository: a citation of
a design note that lives elsewhere sends a maintainer to a file they do not have."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("mer_prep", "tests", "flows", "bench", "docs", "README.md")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt"}
# a path-like token ending in .md: "docs/models.md", "README.md", "docker/README.md"
CITATION = re.compile(r"(?<![\w./-])([\w.-]+(?:/[\w.-]+)*\.md)\b")
# a section of a named document without its suffix: "SPEC §3" stands for SPEC.md
SECTION = re.compile(r"\b([A-Z][A-Z_]{2,}) §")


def _cited(text: str) -> list[str]:
    return CITATION.findall(text) + [f"{name}.md" for name in SECTION.findall(text)]


def _files() -> list[Path]:
    found = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [
                p
                for p in path.rglob("*")
                if p.suffix in SUFFIXES and p.is_file() and "__pycache__" not in p.parts
            ]
    return [p for p in found if p != Path(__file__).resolve()]


@cache
def _names_in_repository() -> frozenset[str]:
    """File names anywhere in the checkout, outside the environment and VCS folders."""
    names = set()
    for _folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [
            d
            for d in subfolders
            if not d.startswith(".") and d not in ("node_modules", "__pycache__")
        ]
        names.update(files)
    return frozenset(names)


def _exists(cited: str, source: Path) -> bool:
    if "/" in cited:  # relative to the repository root or to the citing file
        return (ROOT / cited).is_file() or (source.parent / cited).is_file()
    return cited in _names_in_repository()


def test_cited_documents_exist():
    missing = sorted(
        {
            f"{path.relative_to(ROOT)}: {cited}"
            for path in _files()
            for cited in _cited(path.read_text(errors="replace"))
            if not cited.startswith(("http", "www.")) and not _exists(cited, path)
        }
    )
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def test_the_check_finds_a_missing_document(tmp_path):
    source = tmp_path / "module.py"
    source.write_text('"""See ' + "DESIGN" + "_NOTES.md, docs/models.md and " + "PLAN" + ' §2."""')
    cited = _cited(source.read_text())
    assert cited == ["DESIGN_NOTES.md", "docs/models.md", "PLAN.md"]
    assert [_exists(name, source) for name in cited] == [False, True, False]
