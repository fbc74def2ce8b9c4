"""Readiness probes for service containers: HTTP status, TCP connect, or a command run by exec.

HTTP and TCP probes only go to loopback addresses, because the harness publishes each
probed port on 127.0.0.1 and probes it there.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Mapping

from build_suite.config import Probe

PROBE_KINDS = ("http", "tcp", "command")
DETAIL_LIMIT = 200
# HEALTHCHECK [--option=value ...] CMD|NONE [command]
_HEALTHCHECK_BODY = re.compile(r"^(?:--\S+\s+)*(\S+)\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one probe attempt. ``latency`` is in seconds."""

    healthy: bool
    detail: str
    latency: float


def validate_probe(probe: Probe) -> None:
    """Raise ValueError when the probe settings cannot be run."""
    if probe.kind not in PROBE_KINDS:
        raise ValueError(f"invalid probe kind {probe.kind!r}: expected one of {', '.join(PROBE_KINDS)}")
    if probe.kind in ("http", "tcp") and not probe.port:
        raise ValueError(f"missing port for the {probe.kind} probe: set probe.port")
    if probe.kind == "command" and not probe.command:
        raise ValueError("missing command for the command probe: set probe.command")
    if probe.healthy_in_a_row < 1:
        raise ValueError(f"invalid healthy_in_a_row {probe.healthy_in_a_row}: must be 1 or more")


def require_loopback(host: str) -> None:
    """Raise ValueError unless ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid probe host {host!r}: probes only go to 127.0.0.0/8, ::1 or localhost") from None
    if not address.is_loopback:
        raise ValueError(f"invalid probe host {host}: probes only go to 127.0.0.0/8, ::1 or localhost")


def probe_http(host: str, port: int, path: str, expect_status: int, timeout: float) -> ProbeResult:
    """Send one GET and report healthy when the status code is the expected one."""
    require_loopback(host)
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        response.read(65536)
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        detail = f"GET http://{host}:{port}{path} failed: {_describe(error)}"
        return ProbeResult(False, detail, time.monotonic() - started)
    finally:
        connection.close()
    latency = time.monotonic() - started
    detail = f"GET http://{host}:{port}{path} returned {status}, expected {expect_status}"
    return ProbeResult(status == expect_status, detail, latency)


def probe_tcp(host: str, port: int, timeout: float) -> ProbeResult:
    """Open one TCP connection and report healthy when it connects."""
    require_loopback(host)
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        detail = f"TCP connect to {host}:{port} failed: {_describe(error)}"
        return ProbeResult(False, detail, time.monotonic() - started)
    return ProbeResult(True, f"TCP connect to {host}:{port} succeeded", time.monotonic() - started)


def probe_command(container: Any, command: tuple[str, ...] | list[str]) -> ProbeResult:
    """Run the command in the container with exec and report healthy when it exits with 0."""
    # NOTE: exec_run has no timeout, so a command that hangs blocks the probe loop.
    started = time.monotonic()
    result = container.exec_run(list(command), stdout=True, stderr=True)
    latency = time.monotonic() - started
    output = (result.output or b"").decode("utf-8", errors="replace").strip()
    last_line = output.splitlines()[-1] if output else ""
    detail = f"command {' '.join(command)!r} exited with {result.exit_code}"
    if last_line:
        detail += f": {last_line[:DETAIL_LIMIT]}"
    return ProbeResult(result.exit_code == 0, detail, latency)


def probe_once(probe: Probe, *, host: str = "127.0.0.1", port: int | None = None,
               container: Any = None, timeout: float = 5.0) -> ProbeResult:
    """Run one probe attempt.

    ``port`` is the host port published for ``probe.port``. The command probe needs
    ``container``, a docker SDK container. ``timeout`` bounds the HTTP and TCP attempts
    in seconds.
    """
    validate_probe(probe)
    if probe.kind == "http":
        return probe_http(host, _required_port(port), probe.path, probe.expect_status, timeout)
    if probe.kind == "tcp":
        return probe_tcp(host, _required_port(port), timeout)
    if container is None:
        raise ValueError("command probe needs the container to exec in")
    return probe_command(container, probe.command)


def _required_port(port: int | None) -> int:
    if port is None:
        raise ValueError("HTTP and TCP probes need the published host port")
    return port


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:DETAIL_LIMIT]


def healthcheck_command(image_attrs: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Return the image's HEALTHCHECK as an exec command, or None when it has none.

    Podman builds OCI-format images by default (the compat build API included), and the
    OCI format has no HEALTHCHECK field, so such images return None even when their
    Dockerfile declares one. ``healthcheck_from_dockerfile`` reads it from the source.
    """
    config = image_attrs.get("Config") or {}
    healthcheck = config.get("Healthcheck") or config.get("HealthCheck") or {}
    return _test_to_command(healthcheck.get("Test") or [])


def _test_to_command(test: list[str]) -> tuple[str, ...] | None:
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return tuple(test[1:]) or None
    if test[0] == "CMD-SHELL":
        return ("/bin/sh", "-c", " ".join(test[1:]))
    # A bare list without the CMD prefix is a command already.
    return tuple(test)


def healthcheck_from_dockerfile(instructions: list[str]) -> tuple[str, ...] | None:
    """Return the last HEALTHCHECK command of the final stage as an exec command, or None.

    ``instructions`` are Dockerfile instructions with continuations joined, as
    ``build_suite.images.dockerfile_instructions`` returns them. Options such as
    ``--interval`` are skipped, and the harness's own probe settings apply instead.
    """
    command: tuple[str, ...] | None = None
    for instruction in instructions:
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            command = None
        elif keyword.upper() == "HEALTHCHECK":
            command = _parse_healthcheck(rest.strip())
    return command


def _parse_healthcheck(text: str) -> tuple[str, ...] | None:
    match = _HEALTHCHECK_BODY.match(text)
    if match is None or match.group(1).upper() != "CMD":
        return None
    command = match.group(2).strip()
    if command.startswith("["):
        try:
            parsed = json.loads(command)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return tuple(parsed) or None
    return ("/bin/sh", "-c", command) if command else None
