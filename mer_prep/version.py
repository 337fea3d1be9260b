"""The code version recorded in every store: package version plus a hash of the library source.

Any change to the code that computes arrays gives a new code version, hence a new store version
id, so a store can never claim arrays that today's code would compute differently.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path

import mer_prep


@cache
def code_version() -> str:
    """``"<package version>+<12 hex digits of the sha256 over mer_prep/**/*.py and *.yaml>"``."""
    try:
        release = metadata.version("mer-prep")
    except metadata.PackageNotFoundError:
        release = "0+unknown"
    root = Path(mer_prep.__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.yaml")]):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{release}+{digest.hexdigest()[:12]}"
