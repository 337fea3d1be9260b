"""Test-wide settings: Prefect keeps its state in a throwaway home and never phones home."""

import os
import tempfile

from flows.runtime import prefect_environment  # noqa: E402 - imports no Prefect

# Set before any test module imports prefect (directly or through flows/).
os.environ.pop("PREFECT_HOME", None)
os.environ.pop("PREFECT_API_URL", None)
prefect_environment(tempfile.mkdtemp(prefix="mer-prep-prefect-"), logging_level="WARNING")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server():
    """One ephemeral Prefect API for the flow tests (its URL is exported for Dask workers)."""
    from flows.runtime import prefect_api

    with prefect_api() as url:
        yield url
