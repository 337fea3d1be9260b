"""The spotting methods by name, apart from the spotters: the CLI names them in its options
at start-up without loading SciPy (``spotters`` imports ``scipy.signal``)."""

from __future__ import annotations

#: ``mdmd``: the main-directional mean flow spotter; ``threshold``: smoothed region motion
METHODS: tuple[str, ...] = ("mdmd", "threshold")
