"""What the tests of a served ``mer-prep serve`` share: the ``mer-prep.toml`` it serves."""

from __future__ import annotations

from pathlib import Path


def write_serve_config(
    base: Path, root: Path, *, defaults: str = "", casme2: str = "", tables: str = ""
) -> Path:
    """``base/mer-prep.toml``, serving one casme2 deployment of the dataset at ``root``: recipe
    mbcc64 on one worker, stores at ``stores/{dataset}/{recipe}``. ``defaults`` and ``casme2``
    are more lines for ``[defaults]`` and ``[datasets.casme2]``; ``tables``, more tables after
    them."""
    config = base / "mer-prep.toml"
    config.write_text(f"""
[defaults]
recipe = "mbcc64"
n_workers = 1
store = "stores/{{dataset}}/{{recipe}}"
{defaults}

[datasets.casme2]
root = "{root}"
{casme2}

{tables}
""")
    return config
