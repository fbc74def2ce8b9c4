"""Health state of the worker and the small HTTP server that reports it on /healthz."""

from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

logger = logging.getLogger("worker.health")


class HealthState:
    """API contact state that the polling loop records and the health server reads.

    The worker is healthy once a request to the API has succeeded and the last
    success is at most `stale_after` seconds old, so a loop that hangs turns
    the probe red as well as an unreachable API does.
    """

    def __init__(self, api_url: str, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.api_url = api_url
        self._stale_after = stale_after
        self._clock = clock
        self._lock = threading.Lock()
        self._last_contact: float | None = None
        self._last_error: str | None = None
        self._jobs_done = 0

    def record_contact(self) -> None:
        with self._lock:
            self._last_contact = self._clock()
            self._last_error = None

    def record_failure(self, error: str) -> None:
        with self._lock:
            self._last_error = error

    def record_job_done(self) -> None:
        with self._lock:
            self._jobs_done += 1

    def report(self) -> tuple[bool, dict[str, Any]]:
        """Return (healthy, JSON-ready body) for the health endpoint."""
        with self._lock:
            age = None if self._last_contact is None else self._clock() - self._last_contact
            healthy = age is not None and age <= self._stale_after and self._last_error is None
            body = {
                "status": "ok" if healthy else "unavailable",
                "api_url": self.api_url,
                "seconds_since_api_contact": None if age is None else round(age, 3),
                "last_error": self._last_error,
                "jobs_done": self._jobs_done,
            }
            return healthy, body


def make_handler(state: HealthState) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler.
            if self.path.split("?", 1)[0] != "/healthz":
                self._send_json(HTTPStatus.NOT_FOUND, {"detail": f"{self.path} not found: use /healthz"})
                return
            healthy, body = state.report()
            self._send_json(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class.
            # Probes call every second or so, so their requests are logged at debug level only.
            logger.debug("%s " + format, self.client_address[0], *args)

        def _send_json(self, code: HTTPStatus, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return HealthHandler


def start_health_server(state: HealthState, port: int) -> ThreadingHTTPServer:
    """Serve /healthz on 0.0.0.0:`port` from a daemon thread and return the server."""
    server = ThreadingHTTPServer(("0.0.0.0", port), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="health-server", daemon=True)
    thread.start()
    logger.info("health server listening on 0.0.0.0:%d/healthz", server.server_address[1])
    return server
