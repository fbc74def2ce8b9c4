"""Tests for container engine discovery (build_suite.engine)."""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest

from build_suite import engine
from build_suite.engine import (
    Candidate,
    EngineUnreachableError,
    connect_engine,
    engine_candidates,
    engine_kind,
    engine_version,
)

PODMAN_VERSION = {
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [
        {"Name": "Podman Engine", "Version": "4.3.1", "Details": {"APIVersion": "4.3.1"}},
        {"Name": "Conmon", "Version": "conmon version 2.1.6"},
    ],
    "Version": "4.3.1",
    "ApiVersion": "1.41",
}
DOCKER_VERSION = {
    "Platform": {"Name": "Docker Engine - Community"},
    "Components": [{"Name": "Engine", "Version": "26.1.4"}, {"Name": "containerd", "Version": "1.6.33"}],
    "Version": "26.1.4",
    "ApiVersion": "1.45",
}


class _VersionHandler(http.server.BaseHTTPRequestHandler):
    """Returns a fixed /version body, like an engine's API, for any GET."""

    version_body: dict = {}

    def do_GET(self) -> None:
        body = json.dumps(self.version_body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def fake_engine(tmp_path: Path):
    """Start HTTP servers on unix sockets that return a given /version body, and yield their starter."""
    servers = []

    def start(version_body: dict) -> str:
        handler = type("Handler", (_VersionHandler,), {"version_body": version_body})
        path = tmp_path / f"engine{len(servers)}.sock"
        server = _UnixHTTPServer(str(path), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"unix://{path}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stale_socket(tmp_path: Path) -> Path:
    """A socket file that nothing listens on, as left behind by a stopped service."""
    path = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()
    return path


@pytest.fixture
def silent_socket(tmp_path: Path):
    """A socket that accepts connections but never replies."""
    path = tmp_path / "silent.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(8)
    yield path
    listener.close()


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_candidates_follow_discovery_order():
    env = {
        "DOCKER_HOST": "tcp://127.0.0.1:2375",
        "CONTAINER_HOST": "unix:///tmp/podman-user.sock",
        "XDG_RUNTIME_DIR": "/run/user/1000",
    }
    candidates = engine_candidates(env, uid=1000)

    assert [c.source for c in candidates] == [
        "DOCKER_HOST",
        "CONTAINER_HOST",
        "Podman rootful socket",
        "Podman rootless socket",
        "Docker socket",
    ]
    assert [c.url for c in candidates] == [
        "tcp://127.0.0.1:2375",
        "unix:///tmp/podman-user.sock",
        "unix:///run/podman/podman.sock",
        "unix:///run/user/1000/podman/podman.sock",
        "unix:///var/run/docker.sock",
    ]


def test_candidates_without_environment():
    candidates = engine_candidates({}, uid=1234)

    assert [c.source for c in candidates] == ["Podman rootful socket", "Podman rootless socket", "Docker socket"]
    assert candidates[1].url == "unix:///run/user/1234/podman/podman.sock"


def test_candidates_drop_duplicate_urls():
    env = {"DOCKER_HOST": "unix:///run/podman/podman.sock", "CONTAINER_HOST": "unix:///run/podman//podman.sock"}
    candidates = engine_candidates(env, uid=0)

    urls = [c.url for c in candidates]
    assert urls.count("unix:///run/podman/podman.sock") == 1
    assert candidates[0].source == "DOCKER_HOST"
    assert "CONTAINER_HOST" not in [c.source for c in candidates]


def test_candidates_pass_ssh_url_unchanged():
    candidates = engine_candidates({"DOCKER_HOST": "ssh://builder@127.0.0.1:2222"}, uid=0)

    assert candidates[0] == Candidate("ssh://builder@127.0.0.1:2222", "DOCKER_HOST", None)


def test_unreachable_lists_every_candidate(tmp_path: Path, stale_socket: Path):
    not_a_socket = tmp_path / "plain-file"
    not_a_socket.write_text("")
    port = _free_tcp_port()
    candidates = [
        Candidate(f"unix://{tmp_path / 'missing.sock'}", "DOCKER_HOST"),
        Candidate(f"unix://{not_a_socket}", "CONTAINER_HOST"),
        Candidate(f"unix://{stale_socket}", "Podman rootful socket"),
        Candidate(f"tcp://127.0.0.1:{port}", "Docker socket"),
    ]

    with pytest.raises(EngineUnreachableError) as raised:
        connect_engine(candidates, connect_timeout=2)

    reasons = {failure.candidate.source: failure.reason for failure in raised.value.failures}
    assert reasons["DOCKER_HOST"] == "socket file not found"
    assert reasons["CONTAINER_HOST"] == "path exists but is not a socket"
    assert "connection refused" in reasons["Podman rootful socket"]
    assert "connection refused" in reasons["Docker socket"]
    message = str(raised.value)
    for candidate in candidates:
        assert candidate.url in message
    assert "scripts/setup" in message
    assert "DOCKER_HOST" in message


def test_silent_socket_times_out_quickly(silent_socket: Path):
    started = time.monotonic()
    with pytest.raises(EngineUnreachableError) as raised:
        connect_engine([Candidate(f"unix://{silent_socket}", "test")], connect_timeout=0.5)
    elapsed = time.monotonic() - started

    assert raised.value.failures[0].reason == "timed out after 0.5 s"
    assert elapsed < 10


def test_first_answering_candidate_wins(fake_engine, tmp_path: Path):
    podman_url = fake_engine(PODMAN_VERSION)
    docker_url = fake_engine(DOCKER_VERSION)
    candidates = [
        Candidate(f"unix://{tmp_path / 'missing.sock'}", "DOCKER_HOST"),
        Candidate(podman_url, "Podman rootful socket"),
        Candidate(docker_url, "Docker socket"),
    ]

    connection = connect_engine(candidates, connect_timeout=2)
    try:
        assert connection.url == podman_url
        assert connection.source == "Podman rootful socket"
        assert connection.kind == "podman"
        assert connection.version == "4.3.1"
        assert connection.api_version == "1.41"
        assert [failure.candidate.source for failure in connection.tried] == ["DOCKER_HOST"]
        assert connection.tried[0].reason == "socket file not found"
    finally:
        connection.close()


def test_docker_engine_is_recognized(fake_engine):
    url = fake_engine(DOCKER_VERSION)

    connection = connect_engine([Candidate(url, "Docker socket")], connect_timeout=2)
    try:
        assert connection.kind == "docker"
        assert connection.version == "26.1.4"
        assert connection.api_version == "1.45"
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("version_info", "kind", "version"),
    [
        (PODMAN_VERSION, "podman", "4.3.1"),
        (DOCKER_VERSION, "docker", "26.1.4"),
        ({"Version": "20.10.0", "ApiVersion": "1.41"}, "docker", "20.10.0"),
        ({"Platform": {"Name": "Podman"}, "Version": "5.0.0"}, "podman", "5.0.0"),
    ],
)
def test_engine_kind_and_version(version_info, kind, version):
    assert engine_kind(version_info) == kind
    assert engine_version(version_info) == version


def test_describe_unreachable_without_candidates():
    text = engine.describe_unreachable([])

    assert "(none)" in text


def test_cli_prints_candidates_and_exits_1(tmp_path: Path, capsys):
    missing = tmp_path / "missing.sock"

    exit_code = engine.main(["--host", f"unix://{missing}"])

    captured = capsys.readouterr()
    assert exit_code == 1
    assert f"unix://{missing}" in captured.err
    assert "socket file not found" in captured.err
    assert captured.out == ""


def test_cli_prints_facts(fake_engine, capsys):
    url = fake_engine(PODMAN_VERSION)

    exit_code = engine.main(["--host", url])

    captured = capsys.readouterr()
    assert exit_code == 0
    assert "engine: podman 4.3.1" in captured.out
    assert f"url: {url} (from --host)" in captured.out


def test_real_engine_is_found():
    try:
        connection = connect_engine()
    except EngineUnreachableError as error:
        pytest.skip(f"no container engine reachable on this machine: {error.message}")
    try:
        assert connection.kind in ("podman", "docker")
        assert connection.version
        assert connection.client.ping() is True
        assert connection.url in [c.url for c in engine_candidates()]
    finally:
        connection.close()


def test_real_engine_through_docker_host(monkeypatch, tmp_path: Path):
    try:
        first = connect_engine()
    except EngineUnreachableError as error:
        pytest.skip(f"no container engine reachable on this machine: {error.message}")
    first.close()
    missing = tmp_path / "missing.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{missing}")
    monkeypatch.setenv("CONTAINER_HOST", first.url)

    connection = connect_engine()
    try:
        assert connection.source == "CONTAINER_HOST"
        assert connection.tried[0].candidate.url == f"unix://{missing}"
    finally:
        connection.close()
