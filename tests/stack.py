"""Helpers shared by the fault, bad-input and secret-leak tests: a tiny stack, a loopback index, engine cleanup.

Each test that uses them runs `pytest build_suite` in a subprocess, as a user
would, against a stack written into tmp_path: one service on the local base
image and a requirements file served by a package index on a loopback port.
The fixtures here reach every test module through tests/conftest.py.
"""


from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import psutil
import pytest

from build_suite.engine import connect_engine
from build_suite.errors import BuildSuiteError

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"
BUILD_ID_LABEL = "build-suite.build-id"
PROJECT_LABEL = "build-suite.project"


# --- packages and a loopback index -------------------------------------------------------------------


def wheel_bytes(name: str, version: str) -> bytes:
    """Return a valid pure-Python wheel with one module, RECORD included."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: build-suite-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n",
    }
    record_lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(data)}")
    record_lines.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return buffer.getvalue()


# An in-tree PEP 517 backend with no build requirements, so the sdist builds offline.
# It sleeps before it writes the wheel, which keeps pip busy long enough to interrupt it.
SLOW_BACKEND = '''
# sdist {unique}
import base64, hashlib, io, time, zipfile

NAME = {name!r}
VERSION = {version!r}

def get_requires_for_build_wheel(config_settings=None):
    return []

def get_requires_for_build_sdist(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    time.sleep({sleep!r})
    filename = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
    with open(f"{{wheel_directory}}/{{filename}}", "wb") as handle:
        handle.write(base64.b64decode({wheel!r}))
    return filename
'''


def slow_sdist_bytes(name: str, version: str, sleep: float) -> bytes:
    """Return an sdist whose wheel build sleeps `sleep` seconds first."""
    prefix = f"{name}-{version}"
    files = {
        "pyproject.toml": ('[build-system]\nrequires = []\nbuild-backend = "slowbackend"\n'
                           'backend-path = ["."]\n').encode(),
        "slowbackend.py": SLOW_BACKEND.format(
            name=name, version=version, sleep=sleep, unique=uuid.uuid4().hex,
            wheel=base64.b64encode(wheel_bytes(name, version)).decode()).encode(),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{path}")
            info.size = len(data)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_index(folder: Path, files: dict[str, bytes]) -> Path:
    """Lay out a PEP 503 simple index under `folder`/simple; keys are distribution file names."""
    simple = folder / "simple"
    for filename, data in files.items():
        project = filename.split("-")[0].replace("_", "-").lower()
        (simple / project).mkdir(parents=True, exist_ok=True)
        (simple / project / filename).write_bytes(data)
    for project in simple.iterdir():
        links = "".join(
            f'<a href="{path.name}#sha256={hashlib.sha256(path.read_bytes()).hexdigest()}">{path.name}</a>\n'
            for path in sorted(project.iterdir()) if path.name != "index.html")
        (project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    projects = "".join(f'<a href="{p.name}/">{p.name}</a>\n' for p in sorted(simple.iterdir()) if p.is_dir())
    (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{projects}</body></html>\n")
    return simple


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the index folder; pip's requests are not logged to the test's output."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on a free loopback port; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def package_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback PEP 503 index with `bstiny` (a wheel) and `bsslow` (an sdist that sleeps 30 s to build).

    Every test gets its own index and a new bsslow sdist, whose sha256 differs, because pip caches the
    wheels it builds from an sdist and a cached wheel would skip the slow build.
    """
    folder = tmp_path_factory.mktemp("index")
    write_index(folder, {
        "bstiny-1.0-py3-none-any.whl": wheel_bytes("bstiny", "1.0"),
        "bsslow-1.0.tar.gz": slow_sdist_bytes("bsslow", "1.0", 30.0),
    })
    with serve_folder(folder) as url:
        yield url + "/simple/"


# --- a tiny stack --------------------------------------------------------------------------------------

SERVICE_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
WORKDIR /srv
CMD ["python3", "-m", "http.server", "8000"]
"""


def write_stack(tmp_path: Path, index_url: str, *, requirements: str = "bstiny==1.0\n",
                dockerfile: str = SERVICE_DOCKERFILE, wheelhouse: str = "", service: str = "",
                probe: str = 'kind = "http"\nport = 8000\npath = "/"\ntimeout = 30\ninterval = 0.2\n',
                extra: str = "", name: str | None = None, folder: str = "stack") -> Path:
    """Write a one-service stack into tmp_path/`folder` and return its buildsuite.toml.

    The project name is unique, so its lock, labels and image tags never meet another build's.
    """
    root = tmp_path / folder
    (root / "requirements").mkdir(parents=True, exist_ok=True)
    (root / "requirements" / "app.txt").write_text(requirements)
    (root / "app").mkdir(exist_ok=True)
    (root / "app" / "Dockerfile").write_text(dockerfile)
    project = name or f"fault-{uuid.uuid4().hex[:8]}"
    config = root / "buildsuite.toml"
    config.write_text(f"""\
[project]
name = "{project}"
version = "0.1.0"

[target]
python = "{sys.version_info.major}.{sys.version_info.minor}"

[wheelhouse]
requirements = ["requirements/app.txt"]
output = "wheelhouse"
index_url = "{index_url}"
timeout = 120
{wheelhouse}

[environment]
min_disk_gb = 0
min_memory_gb = 0

[[services]]
name = "app"
dockerfile = "app/Dockerfile"
context = "app"
base_image = "{BASE_IMAGE}"
ports = {{ 8000 = 0 }}
{service}

[services.probe]
{probe}

[security]
secrets = false
hadolint = false

{extra}
""")
    return config


def build_command(config: Path, report_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", str(ROOT / "build_suite"), "-c", str(ROOT / "pytest.ini"),
            "--rootdir", str(ROOT), "--build-config", str(config), "--report-dir", str(report_dir),
            "--progress", "plain", "-p", "no:randomly", *args]


def build_env(**extra: str) -> dict[str, str]:
    """The environment of a build subprocess: the machine's PIP_* variables dropped, `extra` added."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


@functools.cache
def engine_problem() -> str:
    try:
        connect_engine().close()
    except BuildSuiteError as error:
        return error.message
    return ""


needs_engine = pytest.mark.skipif(bool(engine_problem()), reason="no container engine reachable")


@pytest.fixture
def engine_client() -> Iterator[object]:
    connection = connect_engine()
    yield connection.client
    connection.close()


def remove_project_artifacts(client, project: str) -> None:
    """Remove everything a test build of `project` left in the engine: containers, networks, images."""
    selector = {"label": f"{PROJECT_LABEL}={project}"}
    # Another test removing its own images at the same moment can make a list request fail once.
    for attempt in range(3):
        try:
            for container in client.containers.list(all=True, filters=selector):
                container.remove(force=True)
            for network in client.networks.list(filters=selector):
                network.remove()
            for image in client.images.list(filters=selector):
                with contextlib.suppress(docker.errors.NotFound):
                    client.images.remove(image.id, force=True)
            return
        except docker.errors.APIError:
            time.sleep(1)


def project_name(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("name = "):
            return line.split('"')[1]
    raise AssertionError(f"no project name in {config}")


@pytest.fixture
def cleanup_projects(engine_client) -> Iterator[list[str]]:
    """Append a project name; its images, containers and networks are removed after the test."""
    projects: list[str] = []
    yield projects
    for project in projects:
        remove_project_artifacts(engine_client, project)


def labelled(client, build_id: str) -> list[str]:
    selector = {"label": f"{BUILD_ID_LABEL}={build_id}"}
    names = [container.name for container in client.containers.list(all=True, filters=selector)]
    names += [network.name for network in client.networks.list(filters=selector)]
    return names


def read_build(report_dir: Path) -> dict:
    return json.loads((report_dir / "build-report.json").read_text())["build"]


def check_reports_valid(report_dir: Path) -> dict:
    """Parse all three reports and return the build object of the JSON one."""
    import xml.etree.ElementTree as ElementTree

    build = read_build(report_dir)
    assert (report_dir / "build-report.html").read_text().strip().endswith("</html>")
    ElementTree.parse(report_dir / "junit.xml")
    return build


def broken_wheels(folder: Path) -> list[str]:
    """Return the wheels that are not readable zip files and any temporary files left in `folder`."""
    problems = []
    if not folder.exists():
        return problems
    for path in folder.rglob("*"):
        if path.suffix == ".whl":
            try:
                with zipfile.ZipFile(path) as archive:
                    if archive.testzip() is not None:
                        problems.append(f"corrupt wheel {path}")
            except zipfile.BadZipFile:
                problems.append(f"not a zip file: {path}")
        elif path.is_file() and (path.name.startswith(".tmp") or path.suffix in (".tmp", ".part", ".partial")):
            problems.append(f"temporary file left: {path}")
    return problems


def wait_for_line(process: subprocess.Popen, log: Path, needle: str, timeout: float) -> str:
    """Wait until `needle` appears in the build's output file; fail with the output if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if needle in text:
            return text
        if process.poll() is not None:
            break
        time.sleep(0.2)
    text = log.read_text(errors="replace") if log.exists() else ""
    failures = "\n".join(line for line in text.splitlines() if "failed" in line or "what to do" in line)
    raise AssertionError(f"{needle!r} never appeared in the build output. Failure lines:\n{failures[:3000]}\n"
                         f"End of the output:\n{text[-2000:]}")


@contextlib.contextmanager
def running_build(command: list[str], output: Path, env: dict[str, str] | None = None
                  ) -> Iterator[subprocess.Popen]:
    """Start a build in the background, writing its output to `output`; killed if the test leaves it."""
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env or build_env(),
                                   cwd=ROOT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            process.kill()
            process.wait()


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def still_running(process: psutil.Process) -> bool:
    """Tell whether `process` (the same one, not a reused pid) still runs; a zombie does not count."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def leftover_processes(pid: int, marker: str) -> list[str]:
    """Return processes still running whose command line names `marker` (the build's folder)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.info["pid"] == pid:
            continue
        cmdline = " ".join(process.info["cmdline"] or ())
        if marker in cmdline and "podman" not in cmdline:
            found.append(f"{process.info['pid']}: {cmdline[:200]}")
    return found


