"""Fault tests of the build harness: interrupts, timeouts, concurrent builds, low disk and engine faults.

Every test runs `pytest build_suite` in a subprocess, as a user would, against
the tiny stack of stack.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import (
    ROOT,
    broken_wheels,
    build_command,
    build_env,
    check_reports_valid,
    descendants,
    labelled,
    leftover_processes,
    needs_engine,
    project_name,
    read_build,
    running_build,
    still_running,
    wait_for_line,
    write_stack,
)

pytest_plugins = ["pytester"]


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
