"""What ``mer-prep train`` prints after its runs and ``mer-prep runs`` after its table: the seed
groups (each seed's pooled UF1 / UAR, mean +- sd over seeds, ranked by the mean, never a best
seed) and, for a test-oracle run, its clean twin beside it with the difference
(``mer_prep.train.seeds``, ``mer_prep.train.oracle``). Needs no PyTorch.
"""

from __future__ import annotations

import math
import shlex

import click


def group_of(store: str, record):
    """The seed group ``record`` belongs to, read back from ``store`` (a flow's run returns
    its last seed's record); a group of one for a run that names no group."""
    from mer_prep.train.runs_store import list_runs
    from mer_prep.train.seeds import SeedGroup, groups_of

    if record.group_id is None:
        return SeedGroup(None, (record,))
    (group,) = groups_of(r for r in list_runs(store) if r.group_id == record.group_id)
    return group


def clean_command(request) -> str:
    """The ``mer-prep train`` command of ``request`` with a clean selection (``last_epoch``:
    the oracle's own training trajectory)."""
    words = ["mer-prep", "train", request.store, "--model", request.model]
    for option, value in (
        ("--variant", request.variant),
        ("--split", request.split),
        ("--version", request.version),
        ("--epochs", request.epochs),
        ("--batch-size", request.batch_size),
        ("--lr", request.lr),
        ("--seed", request.seed),
        ("--seeds", request.seeds),
    ):
        if value is not None:
            words += [option, str(value)]
    for key, value in sorted((request.config or {}).items()):
        shown = list(value) if isinstance(value, tuple) else value
        words += ["--set", f"{key}={shown}"]
    words += ["--selection", "last_epoch"]
    return shlex.join(words)


def print_after_training(store: str, request, group) -> None:
    """The group's seeds and mean +- sd; for a test-oracle run, its clean twin beside it."""
    from mer_prep.train.oracle import clean_twin, twin_text
    from mer_prep.train.runs_store import list_runs

    click.echo("")
    click.echo(group.text())
    if group.records[0].leaky_selection:
        click.echo("")
        twin = clean_twin(group, list_runs(store))
        click.echo(twin_text(group, twin, clean_command(request)))


def groups_table(records) -> str:
    """``mer-prep runs``' group rows: every seed group (a run naming no group is one of its
    own, "1 seed"), ranked by its mean UF1 over seeds (ties: mean UAR), LEAKY groups marked."""
    from mer_prep.train.seeds import groups_of

    groups = groups_of(records)

    def key(group) -> tuple[float, float]:
        uf1, uar = group.stat("uf1")[0], group.stat("uar")[0]
        return (-(uf1 if math.isfinite(uf1) else -1.0), -(uar if math.isfinite(uar) else -1.0))

    groups.sort(key=key)
    width = max(len("group"), *(len(g.group_id or g.records[0].run_id) for g in groups))
    lines = [
        "",
        "run groups, ranked by the mean over seeds:",
        f"{'group':<{width}} {'seeds':<9} {'UF1 mean ± sd':<15} {'UAR mean ± sd':<15} marks",
    ]
    for group in groups:
        label = group.records[0].leak_label
        lines.append(
            f"{group.group_id or group.records[0].run_id:<{width}} {group.seeds_text:<9} "
            f"{group.mean_sd('uf1'):<15} {group.mean_sd('uar'):<15} "
            f"{'LEAKY' if label else ''}".rstrip()
        )
    return "\n".join(lines)
