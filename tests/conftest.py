"""Test-wide settings: Prefect keeps its state in a throwaway home and never phones home."""

import os
import tempfile

# Set before any test module imports prefect (directly or through flows/).
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="mer-prep-prefect-")
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)
