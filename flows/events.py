"""The event a preprocessing run emits when it commits a new version, and the deployment trigger
that retrains on it.

    event     mer-prep.store.committed
    resource  mer-prep.store.<store location>   (the StoreLocation URL: an absolute path or s3://)
    payload   version_id, snapshot, store, dataset, recipe, n_ok, n_failed

A run that finds its store up to date commits nothing and emits nothing. Each
``train/<dataset>-<model>`` and ``spot/<dataset>`` deployment configured for a store
(``on_commit``, the default) has a
``DeploymentEventTrigger`` on exactly that resource, passing the committed version as the run's
``version`` parameter (``{{ event.payload.version_id }}``, rendered by the Prefect server), so the
training opens that tag even when a later refresh has moved ``main`` meanwhile.
"""

from __future__ import annotations

from typing import Any

from mer_prep.store.repo import StoreLocation

COMMITTED = "mer-prep.store.committed"


def store_resource_id(store: str) -> str:
    """``mer-prep.store.<location URL>``: one resource per store, however its path is spelt."""
    return f"mer-prep.store.{StoreLocation.parse(store).url}"


def emit_committed(summary) -> None:
    """Emit ``mer-prep.store.committed`` for the version a run committed (``RunSummary``); never
    fatal (a run without an events client still runs)."""
    from prefect import get_run_logger
    from prefect.events import emit_event

    try:
        emit_event(
            event=COMMITTED,
            resource={
                "prefect.resource.id": store_resource_id(summary.store),
                "prefect.resource.name": summary.store,
            },
            payload={
                "version_id": summary.version_id,
                "snapshot": summary.snapshot,
                "store": summary.store,
                "dataset": summary.dataset,
                "recipe": summary.recipe,
                "n_ok": summary.n_ok,
                "n_failed": summary.n_failed,
            },
        )
    except Exception as error:  # noqa: BLE001
        get_run_logger().warning("could not emit %s for %s: %s", COMMITTED, summary.store, error)


def retrain_trigger(store: str, deployment: str, flow: str = "train") -> Any:
    """The trigger that runs a ``flow`` deployment (``train`` or ``spot``) on every version
    committed to ``store``, on that version (its ``version`` parameter)."""
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name=f"{flow}/{deployment} on each new version of {StoreLocation.parse(store).url}",
        description=f"{COMMITTED} of this store starts {flow}/{deployment} on that version",
        expect={COMMITTED},
        match={"prefect.resource.id": store_resource_id(store)},
        parameters={"version": "{{ event.payload.version_id }}"},
    )
