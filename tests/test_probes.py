"""Readiness probes against local servers and a real container, and HEALTHCHECK reading."""

from __future__ import annotations

import http.server
import socket
import threading
import uuid

import pytest

from build_suite.config import Probe
from build_suite.images import dockerfile_instructions
from build_suite.probes import (
    healthcheck_command,
    healthcheck_from_dockerfile,
    probe_http,
    probe_once,
    probe_tcp,
    require_loopback,
    validate_probe,
)

BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"
TEST_LABEL = "build-suite.test"


class _StatusHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/health" else 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_port():
    server = http.server.HTTPServer(("127.0.0.1", 0), _StatusHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_probe_expected_status(http_port):
    result = probe_http("127.0.0.1", http_port, "/health", 200, timeout=2)

    assert result.healthy
    assert "returned 200" in result.detail
    assert result.latency >= 0


def test_http_probe_wrong_status(http_port):
    result = probe_http("127.0.0.1", http_port, "/missing", 200, timeout=2)

    assert not result.healthy
    assert "returned 404, expected 200" in result.detail


def test_http_probe_expects_other_status(http_port):
    probe = Probe(kind="http", port=8080, path="/missing", expect_status=404)

    assert probe_once(probe, port=http_port).healthy


def test_http_probe_refused(closed_port):
    result = probe_http("127.0.0.1", closed_port, "/", 200, timeout=2)

    assert not result.healthy
    assert f"GET http://127.0.0.1:{closed_port}/ failed" in result.detail


def test_tcp_probe_open_and_closed(http_port, closed_port):
    assert probe_tcp("127.0.0.1", http_port, timeout=2).healthy
    closed_result = probe_tcp("127.0.0.1", closed_port, timeout=2)
    assert not closed_result.healthy
    assert f"TCP connect to 127.0.0.1:{closed_port} failed" in closed_result.detail


@pytest.mark.parametrize("host", ["0.0.0.0", "service.invalid"])
def test_probe_rejects_non_loopback_host(host):
    with pytest.raises(ValueError, match="invalid probe host"):
        require_loopback(host)


def test_loopback_hosts_accepted():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        require_loopback(host)


@pytest.mark.parametrize(("probe", "message"), [
    (Probe(kind="grpc", port=1), "invalid probe kind 'grpc'"),
    (Probe(kind="http", port=None), "missing port for the http probe"),
    (Probe(kind="command", command=None), "missing command for the command probe"),
    (Probe(kind="tcp", port=1, healthy_in_a_row=0), "invalid healthy_in_a_row 0"),
])
def test_invalid_probe_settings(probe, message):
    with pytest.raises(ValueError, match=message):
        validate_probe(probe)


@pytest.mark.parametrize(("test", "command"), [
    (["CMD", "curl", "-f", "http://localhost/"], ("curl", "-f", "http://localhost/")),
    (["CMD-SHELL", "pg_isready || exit 1"], ("/bin/sh", "-c", "pg_isready || exit 1")),
    (["NONE"], None),
    ([], None),
])
def test_healthcheck_command_from_attrs(test, command):
    assert healthcheck_command({"Config": {"Healthcheck": {"Test": test}}}) == command


def test_healthcheck_from_dockerfile_final_stage():
    text = (
        "FROM base AS build\nHEALTHCHECK CMD build-check\n"
        "FROM base\nHEALTHCHECK --interval=5s --retries=2 \\\n  CMD [\"python3\", \"-c\", \"print(1)\"]\n"
    )

    assert healthcheck_from_dockerfile(dockerfile_instructions(text)) == ("python3", "-c", "print(1)")


def test_healthcheck_from_dockerfile_shell_and_none():
    assert healthcheck_from_dockerfile(["FROM a", "HEALTHCHECK CMD test -f /ready"]) == (
        "/bin/sh", "-c", "test -f /ready")
    assert healthcheck_from_dockerfile(["FROM a", "HEALTHCHECK CMD x", "HEALTHCHECK NONE"]) is None
    assert healthcheck_from_dockerfile(["FROM a", "HEALTHCHECK CMD x", "FROM b"]) is None




@pytest.fixture(scope="module")
def sleeper(client):
    container = client.containers.run(BASE_IMAGE, ["sleep", "60"], detach=True,
                                      name=f"build-suite-probe-{uuid.uuid4().hex[:8]}",
                                      labels={TEST_LABEL: "test_probes"})
    yield container
    container.remove(force=True)


@pytest.mark.slow
def test_command_probe_exit_codes(sleeper):
    passing = probe_once(Probe(kind="command", command=("true",)), container=sleeper)
    failing = probe_once(Probe(kind="command", command=("sh", "-c", "echo not ready; exit 2")),
                         container=sleeper)

    assert passing.healthy
    assert not failing.healthy
    assert "exited with 2: not ready" in failing.detail


@pytest.mark.slow
def test_built_image_healthcheck_runs_by_exec(client, tmp_path, sleeper):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nHEALTHCHECK --interval=2s CMD python3 -c \"import sys; sys.exit(0)\"\n")
    image, _ = client.images.build(path=str(tmp_path), labels={TEST_LABEL: "test_probes"}, rm=True)

    from_image = healthcheck_command(image.attrs)
    from_dockerfile = healthcheck_from_dockerfile(dockerfile_instructions((tmp_path / "Dockerfile").read_text()))
    result = probe_once(Probe(kind="command", command=from_dockerfile), container=sleeper)

    # Podman builds OCI images through the compat API, and the OCI format has no HEALTHCHECK.
    assert from_image is None
    assert from_dockerfile == ("/bin/sh", "-c", 'python3 -c "import sys; sys.exit(0)"')
    assert result.healthy
