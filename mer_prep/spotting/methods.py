"""The spotting methods by name, apart from the spotters: the CLI names them in its options
at start-up without loading SciPy (``spotters`` imports ``scipy.signal``) or torch."""

from __future__ import annotations

#: training-free: ``mdmd``: the main-directional mean flow spotter; ``threshold``: smoothed
#: region motion (``spotters``, tuned by ``tuning.spot_loso``)
METHODS: tuple[str, ...] = ("mdmd", "threshold")
#: learned, trained per fold (``learned.spot_learned_loso``): ``softnet``: a SOFTNet-like
#: shallow three-stream network at one k; ``mtsn``: its multi-temporal (several ks) variant
LEARNED_METHODS: tuple[str, ...] = ("softnet", "mtsn")
#: every method ``learned.spot_any`` runs
ALL_METHODS: tuple[str, ...] = METHODS + LEARNED_METHODS
