"""Download the wheels of a Plan, and the pip plumbing that every worker of the phase shares.

Every file is written under a temporary name (TEMP_PREFIX) in its final
folder. It is moved into place with os.replace only after its sha256 or its
zip directory was checked, so a file with a final name is complete. pip runs
go through piprunner.run_streaming, with the time left before the phase's
deadline as their timeout.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from build_suite.errors import WheelhouseError
from build_suite.manifest import check_file, make_temp_file
from build_suite.pipargs import index_options, pip_argv
from build_suite.piprunner import RunResult, run_streaming
from build_suite.redact import redact
from build_suite.resolve import Artifact, failure_hint, failure_message

TEMP_PREFIX = ".tmp-"
_CHUNK = 1 << 16
# Seconds a single socket read may block before the download counts as failed.
SOCKET_TIMEOUT = 60.0


class Cancelled(Exception):
    """The phase was cancelled (another task failed, the deadline passed or the user interrupted)."""


@dataclass
class PipContext:
    """The settings that every pip run of one phase shares: command, environment, options, deadline and cancel flag."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    config: object
    deadline: float
    stall_timeout: float | None
    on_line: Callable[[str, str], None]
    # pip options that choose wheels for another interpreter (crossbuild.target_options), empty for the host.
    target_options: tuple[str, ...] = ()
    cancel: threading.Event = field(default_factory=threading.Event)
    runs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        """Raise Cancelled when the phase was cancelled or its deadline passed."""
        if self.cancel.is_set() or self.remaining() <= 0:
            raise Cancelled()

    def count_run(self) -> None:
        """Count one more run of pip or uv, from any thread."""
        with self._lock:
            self.runs += 1

    def run(self, label: str, subcommand: str, *options: str, watch: Callable[[str], None] | None = None) -> RunResult:
        """Run one pip subcommand, streaming its lines to `watch`, or else to on_line with `label`."""
        self.check()
        self.count_run()
        argv = pip_argv(self.command, subcommand, *options)
        result = run_streaming(
            argv,
            env=self.env,
            on_line=watch or (lambda line: self.on_line(label, line)),
            timeout=max(1.0, self.remaining()),
            stall_timeout=self.stall_timeout,
        )
        if self.cancel.is_set() or result.timed_out:
            raise Cancelled()
        return result


def temp_path(folder: Path, filename: str) -> Path:
    """Return a fresh temporary path in `folder` for a file that will become `filename`."""
    return make_temp_file(folder, f"{TEMP_PREFIX}{filename}.")


def clean_temp(folder: Path) -> list[str]:
    """Remove the temporary files and folders that an interrupted run left in `folder` and its subfolders."""
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    for path in [folder, *(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(TEMP_PREFIX))]:
        for entry in path.iterdir():
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(str(entry.relative_to(folder)))
    return removed


_connections = threading.local()
_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def _open(url: str):
    """Open `url` for reading, reusing this thread's connection to the same host.

    A new TLS connection per file costs more than a small wheel's transfer, and
    pip's report often lists dozens of files on one host. Redirects, proxies
    and file:// URLs go through urllib.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return _open_with_urllib(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    pool = getattr(_connections, "pool", None)
    if pool is None:
        pool = _connections.pool = {}
    key = (parts.scheme, parts.netloc)
    for attempt in range(2):
        connection = pool.get(key)
        if connection is None:
            connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            connection = pool[key] = connection_class(parts.netloc, timeout=SOCKET_TIMEOUT)
        try:
            connection.request("GET", path, headers={"User-Agent": "build-suite"})
            response = connection.getresponse()
        except (OSError, http.client.HTTPException):
            # The server may have closed an idle kept-alive connection: retry once on a new one.
            connection.close()
            pool.pop(key, None)
            if attempt:
                raise
            continue
        if response.status == 200:
            return response
        response.read()
        if response.status in (301, 302, 303, 307, 308):
            return _open_with_urllib(url)
        raise urllib.error.HTTPError(redact(url), response.status, response.reason, response.headers, None)
    raise AssertionError("unreachable")


def _open_with_urllib(url: str):
    request = urllib.request.Request(url, headers={"User-Agent": "build-suite"})
    return urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT)


def download_url(url: str, final: Path, *, sha256: str | None, context: PipContext) -> int:
    """Download `url` (http, https or file) to `final`, checking sha256; return the size in bytes.

    Raises WheelhouseError on a sha256 mismatch, OSError or urllib.error.URLError
    when the transfer fails, and Cancelled when the phase stops.
    """
    temp = temp_path(final.parent, final.name)
    digest = hashlib.sha256()
    size = 0
    try:
        with _open(url) as response, open(temp, "wb") as stream:
            while chunk := response.read(_CHUNK):
                context.check()
                digest.update(chunk)
                stream.write(chunk)
                size += len(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise WheelhouseError(
                f"sha256 mismatch for {final.name} from {redact(url)}: got {digest.hexdigest()}, expected {sha256}",
                "the index served a different file than pip resolved; rerun, and report the index if it persists",
            )
        os.replace(temp, final)
        return size
    finally:
        temp.unlink(missing_ok=True)


def pip_download_wheel(artifact: Artifact, folder: Path, context: PipContext) -> Path:
    """Download the artifact's wheel through pip (used when urllib cannot reach the URL, e.g. with index auth)."""
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))
    try:
        options = ["--no-deps", "--only-binary", ":all:", *context.target_options, "--dest", str(work)]
        options += index_options(context.config)
        options.append(f"{artifact.name}=={artifact.version}")
        result = context.run(artifact.label, "download", *options)
        if not result.ok:
            raise WheelhouseError(failure_message(f"downloading {artifact.label}", result), failure_hint(result))
        wheel = single_file(work, ".whl", artifact.label)
        temp = temp_path(folder, artifact.filename)
        os.replace(wheel, temp)
        return temp
    finally:
        shutil.rmtree(work, ignore_errors=True)


def single_file(folder: Path, suffix: str, label: str) -> Path:
    """Return the one file ending in `suffix` in `folder`; raise WheelhouseError otherwise."""
    found = sorted(p for p in folder.iterdir() if p.name.endswith(suffix))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise WheelhouseError(f"expected one {suffix} file for {label}, found {names}")
    return found[0]


def fetch_wheel(artifact: Artifact, folder: Path, context: PipContext, report: Callable[[str], None]) -> Path:
    """Download the artifact's wheel into `folder`, checking its sha256; return the final path.

    The report's URL is fetched directly. If that fails, pip downloads the
    file, because the URL may need credentials that only pip has (an
    authenticated index). `report` gets a line about the fallback.
    """
    final = folder / artifact.filename
    try:
        download_url(artifact.url, final, sha256=artifact.sha256, context=context)
        return final
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        report(f"direct download of {artifact.filename} failed ({redact(str(error))}), downloading it with pip")
        cause = error
    temp = pip_download_wheel(artifact, folder, context)
    problem = check_file(temp, artifact.sha256) if artifact.sha256 else None
    if problem is not None:
        temp.unlink(missing_ok=True)
        raise WheelhouseError(f"pip downloaded {artifact.filename} with {problem}") from cause
    os.replace(temp, final)
    return final


def stop_marked_processes(marker: str, value: str) -> None:
    """Stop the process groups of this process's children whose environment has `marker` set to `value`.

    Only processes that this process started carry the marker, so no other
    process is touched.
    """
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            if child.environ().get(marker) != value:
                continue
            if os.getpgid(child.pid) == child.pid:
                os.killpg(child.pid, signal.SIGTERM)
            else:
                child.terminate()
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
