"""``from torch_or_skip import torch``: PyTorch for a test module that needs it at import time, or
the whole module skipped where PyTorch (the ``train`` and ``test`` extras) is not installed.

An import rather than a ``pytest.importorskip`` line in the module itself: ruff's import order
puts this import with the third-party ones, ahead of every ``mer_prep`` / ``flows`` import that
reaches ``import torch``, and the module's imports stay at its top. A test module imports
PyTorch's submodules through ``torch`` (``torch.nn.functional``): an ``import torch.nn...``
statement of its own would be sorted ahead of this one.
"""

import pytest

torch = pytest.importorskip("torch")
