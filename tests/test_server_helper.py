"""The test and bench helper that starts a Prefect server and `mer-prep serve`
(``server_harness.PrefectServer``): what it spawns does not outlive it, even when it is killed
with SIGKILL (a pytest or bench killed by a timeout used to leave a ~200 MB server behind)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"
)


def test_what_the_helper_spawns_dies_with_it(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        from server_harness import PrefectServer
        server = PrefectServer(Path({str(tmp_path)!r}))
        child = server.spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    helper = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    pid = int(helper.stdout.readline())
    sleeper = psutil.Process(pid)
    assert sleeper.is_running() and sleeper.ppid() == helper.pid
    helper.send_signal(signal.SIGKILL)
    helper.wait(timeout=10)
    deadline = time.monotonic() + 10
    while sleeper.is_running() and sleeper.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the spawned process outlived its SIGKILLed parent"
        time.sleep(0.05)
