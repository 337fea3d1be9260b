"""What the training tests share: the small CASME II look-alike a small model learns from, torch
on one thread, and ``mer-prep train``'s arguments for a small MBCC."""

from __future__ import annotations

from typing import Any

import pytest

CLASSES = ("happiness", "surprise", "disgust")


def casme2_of_classes(
    n_subjects: int,
    clips_per_subject: int,
    *,
    seed: int,
    amplitude_px: tuple[float, float],
    **params: Any,
) -> dict[str, Any]:
    """``synth_dataset("casme2", ...)``'s arguments for a CASME II look-alike of ``CLASSES``
    at 240x320: ``n_subjects`` x ``clips_per_subject`` clips (the classes in turn), motions of
    ``amplitude_px``; ``params``, any more of ``generate_dataset``'s."""
    return {
        "n_subjects": n_subjects,
        "clips_per_subject": clips_per_subject,
        "seed": seed,
        "classes": CLASSES,
        "amplitude_px": amplitude_px,
        "size": (240, 320),
        **params,
    }


def learnable_casme2(n_subjects: int = 8, seed: int = 2) -> dict[str, Any]:
    """``synth_dataset("casme2", ...)``'s arguments: ``n_subjects`` x 3 clips (every subject
    shows each of ``CLASSES`` once) of 16 frames at 240x320, motions of 2.5-3 px."""
    return casme2_of_classes(
        n_subjects, 3, seed=seed, amplitude_px=(2.5, 3.0), noise_sigma=(0.5, 1.0), n_frames=16
    )


def one_torch_thread(torch):
    """A module-scoped autouse fixture, for a module to bind to a name of its own
    (``one_thread = one_torch_thread(torch)``): ``torch`` on one thread while the module's tests
    run, the previous count restored after. On a shared two-core machine two threads spin
    against each other (an epoch took 15x longer, measured)."""

    @pytest.fixture(scope="module", autouse=True)
    def one_thread():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)

    return one_thread


def mbcc_train_args(store, *args: str, filters: str = "[8, 16]", dense: str = "32") -> list[str]:
    """``mer-prep train``'s arguments for an MBCC (variant ``difference``, ``--set
    filters=<filters> --set dense=<dense>``) on ``store``, then ``args``."""
    return [
        "train",
        str(store),
        "--model",
        "mbcc",
        "--variant",
        "difference",
        "--set",
        f"filters={filters}",
        "--set",
        f"dense={dense}",
        *args,
    ]
