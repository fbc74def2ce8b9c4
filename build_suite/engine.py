"""Discover and connect to a container engine (Podman or Docker) through the docker SDK.

Candidates are tried in this order: DOCKER_HOST, CONTAINER_HOST, Podman's rootful socket,
Podman's rootless socket, then Docker's socket. The first one that returns a version wins.
With BUILD_SUITE_ENGINE_DEFAULTS=0 only DOCKER_HOST and CONTAINER_HOST are tried, so a build
pinned to one engine never falls back to another.
`python -m build_suite.engine` prints the engine facts, or the error with exit code 1.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import docker
import docker.errors
import requests.exceptions

from build_suite.errors import EngineError

PODMAN_ROOTFUL_SOCKET = Path("/run/podman/podman.sock")
DOCKER_SOCKET = Path("/var/run/docker.sock")
# Set to "0" to try only the engines named by DOCKER_HOST and CONTAINER_HOST.
DEFAULTS_VARIABLE = "BUILD_SUITE_ENGINE_DEFAULTS"

# Seconds to wait for a candidate's version request. A live local socket replies in milliseconds,
# so a short value makes a dead or hung socket fail in seconds.
CONNECT_TIMEOUT = 3.0
# Seconds for ordinary requests once connected. Image builds and imports pass their own timeouts.
REQUEST_TIMEOUT = 120.0


class EngineUnreachableError(EngineError):
    """No candidate container engine returned a version."""

    def __init__(self, failures: Sequence["CandidateFailure"]) -> None:
        super().__init__(describe_unreachable(failures), UNREACHABLE_HINT)
        self.failures = tuple(failures)


UNREACHABLE_HINT = (
    "run scripts/setup as root to install and start Podman, "
    "or set DOCKER_HOST to the URL of a running engine (for example unix:///run/podman/podman.sock)."
)


@dataclass(frozen=True)
class Candidate:
    """An engine URL to try and where it came from (an environment variable or a default socket)."""

    url: str
    source: str
    tls: object = None  # docker.tls.TLSConfig from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, else None


@dataclass(frozen=True)
class CandidateFailure:
    candidate: Candidate
    reason: str


@dataclass
class EngineConnection:
    """A connected docker SDK client and the facts about the engine behind it."""

    client: docker.DockerClient
    kind: str  # "podman" or "docker"
    version: str
    api_version: str
    url: str
    source: str
    tried: tuple[CandidateFailure, ...] = field(default_factory=tuple)

    def close(self) -> None:
        self.client.close()


def engine_candidates(environ: Mapping[str, str] | None = None, uid: int | None = None) -> list[Candidate]:
    """Return the candidate engine URLs in discovery order, without duplicates."""
    env = os.environ if environ is None else environ
    uid = os.getuid() if uid is None else uid
    candidates: list[Candidate] = []

    docker_host = env.get("DOCKER_HOST", "").strip()
    if docker_host:
        candidates.append(Candidate(docker_host, "DOCKER_HOST", _tls_from_env(env)))
    container_host = env.get("CONTAINER_HOST", "").strip()
    if container_host:
        candidates.append(Candidate(container_host, "CONTAINER_HOST"))

    if env.get(DEFAULTS_VARIABLE, "").strip() == "0":
        return _without_duplicates(candidates)
    candidates.append(Candidate(_unix_url(PODMAN_ROOTFUL_SOCKET), "Podman rootful socket"))
    runtime_dir = env.get("XDG_RUNTIME_DIR", "").strip() or f"/run/user/{uid}"
    candidates.append(Candidate(_unix_url(Path(runtime_dir) / "podman" / "podman.sock"), "Podman rootless socket"))
    candidates.append(Candidate(_unix_url(DOCKER_SOCKET), "Docker socket"))
    return _without_duplicates(candidates)


def _without_duplicates(candidates: list[Candidate]) -> list[Candidate]:
    unique: list[Candidate] = []
    seen: set[str] = set()
    for candidate in candidates:
        key = _normalize_url(candidate.url)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


def connect_engine(
    candidates: Sequence[Candidate] | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
) -> EngineConnection:
    """Connect to the first candidate that returns a version, or raise EngineUnreachableError."""
    if candidates is None:
        candidates = engine_candidates()
    failures: list[CandidateFailure] = []
    for candidate in candidates:
        reason = _precheck_unix_socket(candidate.url)
        if reason is not None:
            failures.append(CandidateFailure(candidate, reason))
            continue
        try:
            version_info = _fetch_version(candidate, connect_timeout)
        except _CONNECT_ERRORS as error:
            failures.append(CandidateFailure(candidate, _describe_error(error, connect_timeout)))
            continue
        api_version = str(version_info.get("ApiVersion", ""))
        # A second client keeps the short timeout to the probe only and skips another version request.
        client = docker.DockerClient(
            base_url=candidate.url, tls=candidate.tls, timeout=request_timeout, version=api_version or None
        )
        return EngineConnection(
            client=client,
            kind=engine_kind(version_info),
            version=engine_version(version_info),
            api_version=api_version,
            url=candidate.url,
            source=candidate.source,
            tried=tuple(failures),
        )
    raise EngineUnreachableError(failures)


def engine_kind(version_info: Mapping) -> str:
    """Return "podman" when the version response names a Podman component, else "docker"."""
    names = [str(component.get("Name", "")) for component in version_info.get("Components") or ()]
    names.append(str((version_info.get("Platform") or {}).get("Name", "")))
    if any("podman" in name.lower() for name in names):
        return "podman"
    return "docker"


def engine_version(version_info: Mapping) -> str:
    """Return the engine's own version (Podman's, not its Docker-compatible API's)."""
    for component in version_info.get("Components") or ():
        if str(component.get("Name", "")).lower() in ("podman engine", "engine"):
            return str(component.get("Version", ""))
    return str(version_info.get("Version", ""))


def describe_engine(connection: EngineConnection) -> str:
    """Build the text that `python -m build_suite.engine` prints for a connected engine."""
    lines = [
        f"engine: {connection.kind} {connection.version}",
        f"api version: {connection.api_version}",
        f"url: {connection.url} (from {connection.source})",
    ]
    for failure in connection.tried:
        lines.append(f"skipped: {failure.candidate.url} ({failure.candidate.source}): {failure.reason}")
    return "\n".join(lines)


def describe_unreachable(failures: Sequence[CandidateFailure]) -> str:
    """Build the error text that lists every candidate tried and why it failed."""
    lines = ["No container engine responded. Candidates tried:"]
    for failure in failures:
        lines.append(f"  {failure.candidate.url} ({failure.candidate.source}): {failure.reason}")
    if not failures:
        lines.append("  (none)")
    return "\n".join(lines)


_CONNECT_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError)


def _fetch_version(candidate: Candidate, timeout: float) -> dict:
    # version="auto" makes the constructor request /version itself, within the short timeout.
    client = docker.DockerClient(base_url=candidate.url, tls=candidate.tls, timeout=timeout, version="auto")
    try:
        return client.version()
    finally:
        client.close()


def _precheck_unix_socket(url: str) -> str | None:
    """Return why a unix:// URL cannot work (missing file, not a socket), or None to try it."""
    path = _unix_path(url)
    if path is None:
        return None
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "socket file not found"
    except PermissionError:
        return "permission denied reading the socket path"
    if not stat.S_ISSOCK(mode):
        return "path exists but is not a socket"
    if not os.access(path, os.R_OK | os.W_OK):
        return "permission denied on the socket (run as root or as a member of its group)"
    return None


def _describe_error(error: BaseException, timeout: float) -> str:
    text = str(error)
    if isinstance(error, (requests.exceptions.Timeout, TimeoutError)) or "timed out" in text.lower():
        return f"timed out after {timeout:g} s"
    if "Connection refused" in text:
        return "connection refused (nothing listens on it)"
    if "Permission denied" in text:
        return "permission denied"
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first_line[:300]


def _tls_from_env(env: Mapping[str, str]) -> object:
    # The SDK reads DOCKER_TLS_VERIFY and DOCKER_CERT_PATH. Only the TLS part is used here.
    try:
        return docker.utils.kwargs_from_env(environment=dict(env)).get("tls")
    except docker.errors.DockerException:
        return None


def _unix_url(path: Path) -> str:
    return f"unix://{path}"


def _unix_path(url: str) -> Path | None:
    if url.startswith("unix://"):
        return Path(url[len("unix://"):])
    if url.startswith("/"):
        return Path(url)
    return None


def _normalize_url(url: str) -> str:
    path = _unix_path(url)
    return f"unix://{os.path.normpath(path)}" if path is not None else url.rstrip("/")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m build_suite.engine",
        description="Find a running container engine and print its facts. Exits with 1 when no engine responds.",
    )
    parser.add_argument(
        "--host",
        help="try only this engine URL (unix://PATH, tcp://HOST:PORT or ssh://USER@HOST) instead of discovery",
    )
    parser.add_argument(
        "--timeout", type=float, default=CONNECT_TIMEOUT, help="seconds to wait for each candidate (default %(default)s)"
    )
    args = parser.parse_args(argv)

    candidates = [Candidate(args.host, "--host")] if args.host else None
    try:
        connection = connect_engine(candidates, connect_timeout=args.timeout)
    except EngineUnreachableError as error:
        print(error, file=sys.stderr)
        return 1
    print(describe_engine(connection))
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
