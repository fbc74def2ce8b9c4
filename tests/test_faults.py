"""Fault tests of the build harness: interrupts, timeouts, concurrent builds, low disk and engine faults.

Every test runs `pytest build_suite` in a subprocess, as a user would, against a
tiny stack written into tmp_path: one service on the local base image and a
requirements file served by a package index on a loopback port. The helpers
here are shared with test_bad_input.py and test_secrets_leak.py.
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
import resource
import signal
import socket
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

pytest_plugins = ["pytester"]

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


# --- interrupts ----------------------------------------------------------------------------------

SLEEPING_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN sleep 60
CMD ["python3", "-m", "http.server", "8000"]
"""
NEVER_HEALTHY_PROBE = 'kind = "http"\nport = 8000\npath = "/never-there"\ntimeout = 300\ninterval = 0.5\n'

# (phase, what the stack makes slow, the output line that shows the build is inside that phase)
INTERRUPT_CASES = {
    # The sdist builds while pip still resolves; the status line names that build.
    "wheelhouse": (dict(requirements="bsslow==1.0\n"), "building bsslow"),
    "images": (dict(dockerfile=SLEEPING_DOCKERFILE), "RUN sleep 60"),
    "containers": (dict(probe=NEVER_HEALTHY_PROBE), "app: starting container"),
}


@needs_engine
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", list(INTERRUPT_CASES))
def test_interrupt_cleans_up(tmp_path: Path, package_index: str, engine_client, cleanup_projects: list[str],
                             phase: str, signum: signal.Signals) -> None:
    stack, needle = INTERRUPT_CASES[phase]
    config = write_stack(tmp_path, package_index, **stack)
    cleanup_projects.append(project_name(config))
    report_dir = tmp_path / "reports"
    output = tmp_path / "output.txt"

    with running_build(build_command(config, report_dir, "-m", "full"), output) as process:
        text = wait_for_line(process, output, needle, timeout=90)
        build_id = text.split("build id: ")[1].split()[0]
        time.sleep(1.0)
        children = descendants(process.pid)
        assert process.poll() is None, f"the build ended before the signal:\n{output.read_text()[-3000:]}"
        process.send_signal(signum)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the build did not stop within 60 s of {signum.name}:\n"
                                 f"{output.read_text()[-3000:]}") from None
        time.sleep(0.5)

    text = output.read_text(errors="replace")
    assert process.returncode == 2, text[-3000:]
    if phase == "wheelhouse":
        assert children, "no pip process was running when the signal was sent"
    survivors = [child for child in children if still_running(child)]
    assert not survivors, f"processes left after {signum.name}: {survivors}"
    assert not leftover_processes(process.pid, str(tmp_path)), leftover_processes(process.pid, str(tmp_path))
    assert not labelled(engine_client, build_id), "containers or networks left behind"
    assert not broken_wheels(config.parent / "wheelhouse")
    build = check_reports_valid(report_dir)
    assert build["outcome"] == "interrupted"
    assert build["running_phase"] == phase
    assert "Traceback" not in text

    # The lock was released: the next build of the same project starts at once and fails fast on --lock fail.
    rerun = subprocess.run(build_command(config, tmp_path / "reports-2", "-m", "validate", "--lock", "fail"),
                           capture_output=True, text=True, env=build_env(), cwd=ROOT, timeout=120)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]


# --- timeouts --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_wheelhouse_timeout_names_running_step(tmp_path: Path, package_index: str) -> None:
    config = write_stack(tmp_path, package_index, requirements="bsslow==1.0\n")
    text = config.read_text().replace("timeout = 120", "timeout = 5")
    config.write_text(text)
    report_dir = tmp_path / "reports"
    started = time.monotonic()
    result = subprocess.run(build_command(config, report_dir, "-m", "wheelhouse"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=180)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "timed out after 5" in output, output[-3000:]
    assert "bsslow" in output.split("timed out after 5")[1][:400], output[-3000:]
    # The sdist build sleeps 30 s, so a build that ends well before that stopped the pip tree itself.
    assert elapsed < 28
    assert not leftover_processes(os.getpid(), str(tmp_path))
    assert not broken_wheels(config.parent / "wheelhouse")
    assert read_build(report_dir)["phases"]["wheelhouse"]["outcome"] == "failed"
    assert "Traceback" not in output


@needs_engine
@pytest.mark.slow
def test_probe_timeout_names_service(tmp_path: Path, package_index: str, engine_client,
                                     cleanup_projects: list[str]) -> None:
    probe = 'kind = "http"\nport = 8000\npath = "/never-there"\ntimeout = 3\ninterval = 0.2\n'
    config = write_stack(tmp_path, package_index, probe=probe)
    cleanup_projects.append(project_name(config))
    report_dir = tmp_path / "reports"
    result = subprocess.run(build_command(config, report_dir, "-m", "containers"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "service 'app': not healthy after 3s" in output
    assert "404" in output
    build = read_build(report_dir)
    assert build["phases"]["containers"]["outcome"] == "failed"
    assert not labelled(engine_client, build["build_id"])


# --- concurrent builds -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["wait", "fail"])
def test_second_build_waits_or_fails(tmp_path: Path, package_index: str, mode: str) -> None:
    config = write_stack(tmp_path, package_index, requirements="bsslow==1.0\n")
    first_reports = tmp_path / "reports"
    output = tmp_path / "first.txt"
    with running_build(build_command(config, first_reports, "-m", "wheelhouse"), output) as first:
        wait_for_line(first, output, "bsslow", timeout=60)
        second = subprocess.run(build_command(config, first_reports, "-m", "wheelhouse", "--lock", mode),
                                capture_output=True, text=True, env=build_env(), cwd=ROOT, timeout=240)
        first.wait(timeout=120)
    second_output = second.stdout + second.stderr

    assert first.returncode == 0, output.read_text()[-3000:]
    if mode == "wait":
        assert "waiting for the build lock" in second_output
        assert second.returncode == 0, second_output[-3000:]
    else:
        assert second.returncode == 4, second_output[-3000:]
        assert "another build of this project is running" in second_output
        assert "Traceback" not in second_output
    build = check_reports_valid(first_reports)
    assert build["outcome"] == "passed"
    assert not broken_wheels(config.parent / "wheelhouse")


# --- low disk --------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str = "2m") -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of `folder` until `leave` bytes are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with (folder / "filler").open("wb") as handle:
        with contextlib.suppress(OSError):
            handle.write(b"\0" * max(0, free - leave))


@pytest.mark.slow
def test_full_wheelhouse_disk_is_clear(tmp_path: Path, package_index: str) -> None:
    config = write_stack(tmp_path, package_index)
    wheelhouse = config.parent / "wheelhouse"
    report_dir = tmp_path / "reports"
    with small_tmpfs(wheelhouse):
        fill(wheelhouse, leave=0)
        result = subprocess.run(build_command(config, report_dir, "-m", "wheelhouse"), capture_output=True,
                                text=True, env=build_env(), cwd=ROOT, timeout=180)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output[-3000:]
        assert "No space left on device" in output, output[-3000:]
        assert "Traceback" not in output
        assert not broken_wheels(wheelhouse)
        (wheelhouse / "filler").unlink()

        rerun = subprocess.run(build_command(config, report_dir, "-m", "wheelhouse"), capture_output=True,
                               text=True, env=build_env(), cwd=ROOT, timeout=180)
        assert rerun.returncode == 0, rerun.stdout[-3000:]
        assert (wheelhouse / "bstiny-1.0-py3-none-any.whl").is_file()
        assert not broken_wheels(wheelhouse)


@pytest.mark.slow
def test_full_wheelhouse_message_names_folder(tmp_path: Path, package_index: str) -> None:
    config = write_stack(tmp_path, package_index)
    wheelhouse = config.parent / "wheelhouse"
    with small_tmpfs(wheelhouse):
        fill(wheelhouse, leave=0)
        result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "wheelhouse"),
                                capture_output=True, text=True, env=build_env(), cwd=ROOT, timeout=180)
    lines = (result.stdout + result.stderr).splitlines()

    assert any(str(wheelhouse) in line and "space" in line for line in lines)
    assert any(str(wheelhouse) in line and "MB" in line for line in lines)


@pytest.mark.slow
def test_full_report_disk_is_clear(tmp_path: Path, package_index: str) -> None:
    config = write_stack(tmp_path, package_index)
    report_dir = tmp_path / "reports"
    with small_tmpfs(report_dir):
        (report_dir / "build-report.json").write_text('{"build": {"outcome": "passed"}}')
        fill(report_dir, leave=0)
        result = subprocess.run(build_command(config, report_dir, "-m", "wheelhouse"), capture_output=True,
                                text=True, env=build_env(), cwd=ROOT, timeout=180)
        output = result.stdout + result.stderr
        assert result.returncode == 4, output[-3000:]
        assert f"not enough free space for the reports in {report_dir}" in output, output[-3000:]
        assert "need at least 1 MB" in output
        assert "Traceback" not in output, output[-3000:]
        assert not (config.parent / "wheelhouse").exists(), "the build ran although its reports could not be written"
        assert json.loads((report_dir / "build-report.json").read_text()) == {"build": {"outcome": "passed"}}
        (report_dir / "filler").unlink()

        rerun = subprocess.run(build_command(config, report_dir, "-m", "wheelhouse"), capture_output=True,
                               text=True, env=build_env(), cwd=ROOT, timeout=180)
        assert rerun.returncode == 0, rerun.stdout[-3000:]
        build = check_reports_valid(report_dir)
        assert build["outcome"] == "passed"
        assert build["phases"]["wheelhouse"]["outcome"] == "passed"


# --- engine faults ---------------------------------------------------------------------------------


@pytest.fixture
def dead_socket(tmp_path: Path) -> Iterator[str]:
    """A unix socket that is bound but never accepts, and no default socket to fall back to."""
    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.close()  # the file stays, nothing listens: connecting is refused
    yield f"unix://{path}"


@pytest.mark.slow
def test_unreachable_engine_keeps_wheelhouse(tmp_path: Path, package_index: str, dead_socket: str) -> None:
    config = write_stack(tmp_path, package_index)
    report_dir = tmp_path / "reports"
    env = build_env(DOCKER_HOST=dead_socket, BUILD_SUITE_ENGINE_DEFAULTS="0")
    result = subprocess.run(build_command(config, report_dir, "-m", "wheelhouse or images"), capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "No container engine responded" in output
    assert dead_socket in output
    assert "Podman rootful socket" not in output, "the default sockets were tried despite the opt-out"
    assert "Traceback" not in output
    build = read_build(report_dir)
    assert build["phases"]["wheelhouse"]["outcome"] == "passed"
    assert build["phases"]["images"]["outcome"] == "failed"
    assert (config.parent / "wheelhouse" / "bstiny-1.0-py3-none-any.whl").is_file()


def write_containers_conf(path: Path) -> Path:
    """Fill the project's containers.conf template the way scripts/setup does: runc, the host's hard limits."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    # runc rejects an nproc limit above kernel.pid_max, and "unlimited" is not a number for Podman.
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    if nofile == resource.RLIM_INFINITY:
        nofile = int(Path("/proc/sys/fs/nr_open").read_text())
    template = (ROOT / "scripts" / "podman" / "containers.conf.template").read_text()
    text = template.replace("@NOFILE@", str(nofile)).replace("@NPROC@", str(nproc)).replace("@RUNTIME@", "runc")
    path.write_text(text)
    return path


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """A second Podman API service on a socket under tmp_path, started and stopped by this test only."""
    socket_path = tmp_path / "podman.sock"
    env = dict(os.environ, CONTAINERS_CONF=str(write_containers_conf(tmp_path / "containers.conf")))
    process = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket_path}"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not socket_path.exists():
            pytest.skip("a second podman service did not start")
        yield process, f"unix://{socket_path}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@needs_engine
@pytest.mark.slow
def test_engine_gone_during_images(tmp_path: Path, package_index: str, own_engine, cleanup_projects: list[str]
                                   ) -> None:
    service, url = own_engine
    config = write_stack(tmp_path, package_index, dockerfile=SLEEPING_DOCKERFILE)
    cleanup_projects.append(project_name(config))
    report_dir = tmp_path / "reports"
    output = tmp_path / "output.txt"
    env = build_env(DOCKER_HOST=url, BUILD_SUITE_ENGINE_DEFAULTS="0")
    with running_build(build_command(config, report_dir, "-m", "wheelhouse or images"), output, env) as process:
        wait_for_line(process, output, "RUN sleep 60", timeout=120)
        service.kill()
        service.wait()
        process.wait(timeout=180)
    text = output.read_text(errors="replace")

    assert process.returncode == 1, text[-3000:]
    assert "image app: failed" in text, text[-3000:]
    assert url.removeprefix("unix://") in text or "engine" in text.lower(), text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    build = read_build(report_dir)
    assert build["phases"]["wheelhouse"]["outcome"] == "passed"
    assert build["phases"]["images"]["outcome"] == "failed"
    assert not broken_wheels(config.parent / "wheelhouse")
    assert (config.parent / "wheelhouse" / "bstiny-1.0-py3-none-any.whl").is_file()


# --- flaky services --------------------------------------------------------------------------------

FLAPPING_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN printf '%s\\n' \\
  'import http.server, itertools' \\
  'count = itertools.count()' \\
  'class Handler(http.server.BaseHTTPRequestHandler):' \\
  '    def do_GET(self):' \\
  '        self.send_response(200 if next(count) % 2 == 0 else 503)' \\
  '        self.end_headers()' \\
  'http.server.HTTPServer(("", 8000), Handler).serve_forever()' > /flap.py
CMD ["python3", "/flap.py"]
"""
SLOW_START_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
CMD ["sh", "-c", "sleep 4 && exec python3 -m http.server 8000"]
"""


@needs_engine
@pytest.mark.slow
def test_flapping_service_not_healthy(tmp_path: Path, package_index: str, cleanup_projects: list[str]) -> None:
    probe = 'kind = "http"\nport = 8000\npath = "/"\ntimeout = 6\ninterval = 0.2\nhealthy_in_a_row = 3\n'
    config = write_stack(tmp_path, package_index, dockerfile=FLAPPING_DOCKERFILE, probe=probe)
    cleanup_projects.append(project_name(config))
    result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "containers"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "service 'app': not healthy after 6s" in output
    assert read_build(tmp_path / "reports")["containers"][0]["status"] == "failed"


@needs_engine
@pytest.mark.slow
def test_slow_start_within_timeout_passes(tmp_path: Path, package_index: str, cleanup_projects: list[str]) -> None:
    probe = 'kind = "http"\nport = 8000\npath = "/"\ntimeout = 30\ninterval = 0.2\n'
    config = write_stack(tmp_path, package_index, dockerfile=SLOW_START_DOCKERFILE, probe=probe)
    cleanup_projects.append(project_name(config))
    result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "containers"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode == 0, output[-3000:]
    container = read_build(tmp_path / "reports")["containers"][0]
    assert container["status"] == "healthy"
    assert container["seconds_to_healthy"] >= 3.5
