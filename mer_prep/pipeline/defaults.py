"""The defaults of a preprocessing run (``PreprocessRequest``'s fields), importable without
pydantic: the CLI shows them in ``--help`` and imports this at every start (the request module
with pydantic cost every ``mer-prep`` command 0.3-0.4 s of imports, measured with ``python -X
importtime -c "import mer_prep.cli"``)."""

from __future__ import annotations

RECIPE = "ha3d"
LABELS = "native"
N_WORKERS = 2
