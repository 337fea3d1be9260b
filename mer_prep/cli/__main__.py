"""``python -m mer_prep.cli``: the same as the ``mer-prep`` command."""

from mer_prep.cli import main

main()
