"""Malformed input through the harness, as a user runs it: one clear message, no traceback, nothing lost.

Configuration errors stop the build before anything runs (exit code 4) and
leave the existing wheelhouse and reports byte for byte as they were. Some
errors only a phase can find: a requirement that does not parse, a version
that does not exist, a Dockerfile that does not parse, a port already in use.
Those fail the phase with a message naming the file and line, the package,
the service or the port.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stack import (
    ROOT,
    build_command,
    build_env,
    needs_engine,
    project_name,
    wheel_bytes,
    write_stack,
)

pytest_plugins = ["pytester"]

# The index is never contacted: every configuration case is rejected before pip runs.
UNUSED_INDEX = "http://127.0.0.1:9/simple/"
VALID_PROBE = 'kind = "http"\nport = 8000\npath = "/"\ntimeout = 30\ninterval = 0.2\n'


def replace(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, f"{old!r} is not in the stack's configuration"
        return text.replace(old, new, 1)
    return edit


def append(extra: str):
    return lambda text: text + "\n" + extra


SECOND_SERVICE = """
[[services]]
name = "{name}"
dockerfile = "app/Dockerfile"
context = "app"
depends_on = [{depends}]

[services.probe]
kind = "tcp"
port = 8000
"""

# (id, edit of the configuration text, fragments the message must contain)
CONFIG_CASES = [
    ("unclosed-table", replace("[target]", "[target"), ["invalid TOML", "line"]),
    ("duplicate-key", replace('version = "0.1.0"', 'version = "0.1.0"\nversion = "0.2.0"'),
     ["invalid TOML", "line"]),
    ("unterminated-string", replace('output = "wheelhouse"', 'output = "wheelhouse'), ["invalid TOML", "line"]),
    ("unknown-top-key", append("[wheelhose]\ntimeout = 3\n"), ["wheelhose: unknown key"]),
    ("unknown-wheelhouse-key", replace("timeout = 120", "timeout = 120\nretries = 3"),
     ["wheelhouse.retries: unknown key"]),
    ("unknown-service-key", replace('name = "app"', 'name = "app"\nimage = "x"'),
     ["services[0].image: unknown key"]),
    ("unknown-probe-key", replace('kind = "http"', 'kind = "http"\nretries = 2'),
     ["services[0].probe.retries: unknown key"]),
    ("name-not-string", replace('version = "0.1.0"', 'version = 1'), ["project.version: expected a string"]),
    ("timeout-not-number", replace("timeout = 120", 'timeout = "fast"'), ["wheelhouse.timeout: expected a number"]),
    ("jobs-zero", replace("timeout = 120", "timeout = 120\njobs = 0"), ["wheelhouse.jobs", "at least 1"]),
    ("negative-probe-timeout", replace("timeout = 30", "timeout = -1"),
     ["services[0].probe.timeout", "at least 1"]),
    ("requirements-not-list", replace('requirements = ["requirements/app.txt"]', 'requirements = "app.txt"'),
     ["wheelhouse.requirements: expected an array of paths"]),
    ("no-requirements", replace('requirements = ["requirements/app.txt"]', "requirements = []"),
     ["wheelhouse.requirements", "at least one requirements file"]),
    ("missing-requirements-file", replace("requirements/app.txt", "requirements/ap.txt"),
     ["wheelhouse.requirements[0]: file not found", "ap.txt"]),
    ("missing-dockerfile", replace('dockerfile = "app/Dockerfile"', 'dockerfile = "app/Dockerfil"'),
     ["services[0].dockerfile: file not found", "Dockerfil"]),
    ("missing-context", replace('context = "app"', 'context = "ap"'), ["services[0].context: folder not found"]),
    ("bad-service-name", replace('name = "app"', 'name = "App Server"'), ["services[0].name", "lowercase"]),
    ("port-key-not-number", replace("ports = { 8000 = 0 }", "ports = { http = 0 }"),
     ["services[0].ports.http", "container port"]),
    ("host-port-too-high", replace("ports = { 8000 = 0 }", "ports = { 8000 = 70000 }"),
     ["services[0].ports.8000", "65535"]),
    ("probe-kind-unknown", replace('kind = "http"', 'kind = "grpc"'), ["services[0].probe.kind", "'http'"]),
    ("http-probe-without-port", replace("port = 8000\n", ""), ["services[0].probe.port", "needs the container port"]),
    ("unknown-dependency", replace('name = "app"', 'name = "app"\ndepends_on = ["db"]'),
     ["services[0].depends_on", "unknown service 'db'"]),
    ("dependency-cycle", lambda text: text.replace('name = "app"', 'name = "app"\ndepends_on = ["web"]', 1)
     + SECOND_SERVICE.format(name="web", depends='"app"'), ["dependency cycle", "app -> web -> app"]),
    ("duplicate-service", append(SECOND_SERVICE.format(name="app", depends="")),
     ["services[1].name", "duplicate service name 'app'"]),
    ("python-version-word", replace('[target]\npython = "', '[target]\npython = "three'), ["target.python"]),
    ("arch-unknown", replace("[target]", '[target]\narch = "sparc"'), ["target.arch", "'x86_64'"]),
    ("missing-project", replace("[project]", "[projekt]"), ["project: missing required key"]),
    ("environment-not-string", replace("ports = { 8000 = 0 }", "ports = { 8000 = 0 }\nenvironment = { DEBUG = 1 }"),
     ["services[0].environment.DEBUG: expected a string"]),
]


def seed_previous_build(config: Path, report_dir: Path) -> dict[Path, bytes]:
    """Put a wheelhouse and reports from an earlier build in place; return their bytes to compare later."""
    wheelhouse = config.parent / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "bstiny-1.0-py3-none-any.whl").write_bytes(wheel_bytes("bstiny", "1.0"))
    (wheelhouse / "manifest.json").write_text('{"wheels": []}\n')
    report_dir.mkdir()
    (report_dir / "build-report.json").write_text('{"build": {"outcome": "passed"}}\n')
    (report_dir / "build.log").write_text("earlier build\n")
    return {path: path.read_bytes() for folder in (wheelhouse, report_dir) for path in folder.iterdir()}


def files_now(folders: list[Path]) -> dict[Path, bytes]:
    return {path: path.read_bytes() for folder in folders for path in folder.iterdir() if path.is_file()}


@pytest.mark.parametrize("case, edit, fragments", CONFIG_CASES, ids=[case[0] for case in CONFIG_CASES])
def test_bad_config_rejected_cleanly(tmp_path: Path, case: str, edit, fragments: list[str]) -> None:
    config = write_stack(tmp_path, UNUSED_INDEX, probe=VALID_PROBE)
    config.write_text(edit(config.read_text()))
    report_dir = tmp_path / "reports"
    before = seed_previous_build(config, report_dir)

    result = subprocess.run(build_command(config, report_dir, "-m", "full"), capture_output=True, text=True,
                            env=build_env(), cwd=ROOT, timeout=120)
    output = result.stdout + result.stderr

    assert result.returncode == 4, output[-3000:]
    assert str(config) in output, output[-3000:]
    for fragment in fragments:
        assert fragment in output, output[-3000:]
    assert "Traceback" not in output
    assert output.count("ERROR:") == 1, output
    assert files_now([config.parent / "wheelhouse", report_dir]) == before


@pytest.mark.parametrize("path", ["missing.toml", "folder"])
def test_config_path_not_a_file(tmp_path: Path, path: str) -> None:
    (tmp_path / "folder").mkdir()
    config = tmp_path / path
    result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "full"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=120)
    output = result.stdout + result.stderr

    assert result.returncode == 4, output[-3000:]
    assert f"{config}: configuration file not found" in output
    assert "Traceback" not in output
    assert not (tmp_path / "reports").exists()


def test_config_not_utf8(tmp_path: Path) -> None:
    config = write_stack(tmp_path, UNUSED_INDEX)
    config.write_bytes(config.read_bytes().replace(b'version = "0.1.0"', b'version = "0.1.0\xff"'))
    result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "full"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=120)
    output = result.stdout + result.stderr

    assert result.returncode == 4, output[-3000:]
    assert f"{config}: not valid UTF-8 text" in output
    assert "Traceback" not in output


# --- input that only a phase can check -----------------------------------------------------------------

# (id, requirements file text, the wheelhouse options, fragments the message must contain)
REQUIREMENT_CASES = [
    ("syntax-error", "bstiny=>1.0\n", "", ["app.txt:1", "invalid requirement", "bstiny=>1.0"]),
    ("version-not-found", "bstiny==9.9\n", "", ["bstiny==9.9"]),
    ("unpinned-in-hash-mode", "bstiny\n", "require_hashes = true", ["bstiny", "app.txt"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("case, requirements, options, fragments", REQUIREMENT_CASES,
                         ids=[case[0] for case in REQUIREMENT_CASES])
def test_bad_requirements_fail_wheelhouse(tmp_path: Path, package_index: str, case: str, requirements: str,
                                          options: str, fragments: list[str]) -> None:
    config = write_stack(tmp_path, package_index, requirements=requirements, wheelhouse=options)
    report_dir = tmp_path / "reports"
    result = subprocess.run(build_command(config, report_dir, "-m", "wheelhouse"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=180)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    for fragment in fragments:
        assert fragment in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "INTERNALERROR" not in output


@needs_engine
@pytest.mark.slow
def test_dockerfile_syntax_error_names_line(tmp_path: Path, package_index: str,
                                            cleanup_projects: list[str]) -> None:
    dockerfile = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUNN echo hello\n"
    config = write_stack(tmp_path, package_index, dockerfile=dockerfile)
    cleanup_projects.append(project_name(config))
    result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "images"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "RUNN" in output, output[-3000:]
    assert "Dockerfile" in output
    assert "Traceback" not in output, output[-3000:]


@needs_engine
@pytest.mark.slow
def test_host_port_in_use_names_port(tmp_path: Path, package_index: str, cleanup_projects: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_stack(tmp_path, package_index, probe=VALID_PROBE)
        config.write_text(config.read_text().replace("ports = { 8000 = 0 }", f"ports = {{ 8000 = {port} }}"))
        cleanup_projects.append(project_name(config))
        result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "containers"),
                                capture_output=True, text=True, env=build_env(), cwd=ROOT, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "service 'app'" in output, output[-3000:]
    assert str(port) in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


@needs_engine
@pytest.mark.slow
def test_probe_on_closed_port_names_service(tmp_path: Path, package_index: str,
                                            cleanup_projects: list[str]) -> None:
    probe = 'kind = "tcp"\nport = 8001\ntimeout = 3\ninterval = 0.2\n'
    config = write_stack(tmp_path, package_index, probe=probe)
    cleanup_projects.append(project_name(config))
    result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "containers"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "service 'app': not healthy after 3s" in output, output[-3000:]
    assert "8001" in output, output[-3000:]
    assert "Traceback" not in output


@needs_engine
@pytest.mark.slow
def test_target_python_mismatch_shown_once(tmp_path: Path, package_index: str, cleanup_projects: list[str]) -> None:
    # The bookworm base image has Python 3.11, so a 3.12 target cannot build there.
    config = write_stack(tmp_path, package_index)
    host = f'python = "{sys.version_info.major}.{sys.version_info.minor}"'
    config.write_text(config.read_text().replace(host, 'python = "3.12"', 1))
    cleanup_projects.append(project_name(config))
    result = subprocess.run(build_command(config, tmp_path / "reports", "-m", "wheelhouse"), capture_output=True,
                            text=True, env=build_env(), cwd=ROOT, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "but [target] python is 3.12" in output, output[-3000:]
    assert "During handling of the above exception" not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
