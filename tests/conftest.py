"""Test-wide settings: Prefect keeps its state in a throwaway home and never phones home."""

import os
import tempfile

# Set before any test module imports prefect (directly or through flows/).
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="mer-prep-prefect-")
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "warning")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server():
    """One ephemeral Prefect API for the flow tests (its URL is exported for Dask workers)."""
    from flows.runtime import prefect_api

    with prefect_api() as url:
        yield url
