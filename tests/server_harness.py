"""The test and bench harness of the production path: a real ``prefect server`` on loopback in a
child process group, ``mer-prep serve`` against it, and ``prefect deployment run ... --watch``.

    with serving(workdir, config, "preprocess/casme2") as server:
        done = server.deployment_run("preprocess/casme2", f"store={store}")
        get_json(f"{server.api}/flow_runs/...")

    with PrefectServer(workdir) as server:
        env = server.client_env        # PREFECT_API_URL set, own PREFECT_HOME
        ...

Everything it starts runs in its own process group, so stopping it stops the server's children.
Used by the tests (``test_deployments``, ``test_security``, ``test_triggers``, ``test_show``, ...)
and ``bench/orchestration.py``; the product (``mer-prep serve``) never needs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from flows.runtime import die_with_parent, isolated_environment

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict | list | bool | None:
    """GET ``url`` and decode its JSON body; None when nothing answers (or an HTTP error)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read() or b"null")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def post_json(url: str, body: dict) -> dict | list:
    """POST ``body`` as JSON to ``url`` and decode the JSON answer (errors raise)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(
    what: str, check: Callable[[], object], timeout: float, procs: Sequence[subprocess.Popen] = ()
) -> None:
    """Poll ``check`` until it is truthy; raise ``TimeoutError`` (or ``RuntimeError`` when one of
    ``procs`` exits first) naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{proc.args[:2]} exited ({proc.returncode}) while waiting for {what}"
                )
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group ``proc`` leads, then SIGKILL whatever of it is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 with its own home under ``workdir``; logs go to
    ``workdir/server.log``. ``spawn`` starts further processes (``mer-prep serve``) against it,
    stopped with the server."""

    def __init__(self, workdir: str | os.PathLike, *, logging_level: str = "INFO") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = isolated_environment(self.workdir / "prefect-home", logging_level=logging_level)
        self.client_env = {**self.env, "PREFECT_API_URL": self.api}
        self.procs: list[subprocess.Popen] = []
        self._logs: list = []

    def spawn(self, name: str, args: Sequence[str], *, env: dict | None = None) -> subprocess.Popen:
        """Start ``args`` in its own process group, output to ``workdir/<name>.log``; on Linux
        it gets SIGTERM when this process dies, even by SIGKILL (no orphaned server)."""
        log = open(self.workdir / f"{name}.log", "w")
        self._logs.append(log)
        proc = subprocess.Popen(
            list(args),
            env=env or self.client_env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        self.procs.append(proc)
        return proc

    def start(self, timeout: float = 150) -> PrefectServer:
        self.spawn(
            "server",
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
        )
        wait_for(
            "the Prefect server",
            lambda: get_json(f"{self.api}/health") is True,
            timeout,
            self.procs,
        )
        return self

    def wait_for_deployment(self, name: str, timeout: float = 120) -> None:
        wait_for(
            f"deployment {name}",
            lambda: get_json(f"{self.api}/deployments/name/{name}") is not None,
            timeout,
            self.procs,
        )

    def serve(self, config: str | os.PathLike, *deployments: str) -> subprocess.Popen:
        """Start ``mer-prep serve --config <config>`` against this server (its log:
        ``workdir/serve.log``) and wait until it has registered each of ``deployments``."""
        proc = self.spawn("serve", [str(BIN / "mer-prep"), "serve", "--config", str(config)])
        for name in deployments:
            self.wait_for_deployment(name)
        return proc

    def deployment_run(
        self, name: str, *params: str, watch_timeout: int | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        """``prefect deployment run <name> --watch [--watch-timeout] -p <param>...`` in
        ``workdir``, its output captured; ``timeout`` bounds the whole command."""
        args = [str(BIN / "prefect"), "deployment", "run", name, "--watch"]
        if watch_timeout is not None:
            args += ["--watch-timeout", str(watch_timeout)]
        for param in params:
            args += ["-p", param]
        return subprocess.run(
            args,
            env=self.client_env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_group(proc)
        for log in self._logs:
            log.close()

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def serving(
    workdir: str | os.PathLike,
    config: str | os.PathLike,
    *deployments: str,
    logging_level: str = "INFO",
) -> Iterator[PrefectServer]:
    """A started ``PrefectServer`` in ``workdir`` with ``mer-prep serve --config <config>``
    serving ``deployments`` (waited for); both stopped on leaving, however the block ends."""
    server = PrefectServer(workdir, logging_level=logging_level)
    try:
        server.start()
        server.serve(config, *deployments)
        yield server
    finally:
        server.stop()
