"""Preload of the workers of a local Dask cluster (``distributed.worker.preload``).

A local cluster's worker processes share the terminal's process group with ``mer-prep run``, so
Ctrl-C reaches them too: a worker would die with a traceback in the middle of its batch and its
nanny would start another, while the run itself is shutting down. They ignore SIGINT instead;
the run stops them itself (``flows.preprocess``), and they still exit at once when their
parent dies (distributed watches the parent's pipe).

It also drops a worker's heartbeat failure on a connection closed under it (what a cancelled
run looks like from its workers): ``flows.compat.HeartbeatOfClosingWorker``, which matches
Dask's message text and so lives with the other such pieces. Workers started with ``dask
worker`` elsewhere do not load this.
"""

from __future__ import annotations

import signal
import threading

from flows.compat import install_worker_log_filters


def dask_setup(worker) -> None:  # noqa: ARG001 - the preload protocol passes the worker
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    install_worker_log_filters()
