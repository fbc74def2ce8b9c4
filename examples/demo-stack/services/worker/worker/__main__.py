"""Poll the demo-stack API for jobs, run them and send the results back.

Usage:
  worker [options]
  worker -h | --help
  worker --version

Options:
  --api-url=URL            Base URL of the API. Defaults to the API_URL
                           environment variable.
  --name=NAME              Worker name sent with each claim. Defaults to
                           <hostname>-<pid>.
  --poll-interval=SECONDS  Seconds to wait after an empty poll or a failed
                           request [default: 1.0].
  --timeout=SECONDS        Timeout of each HTTP request in seconds
                           [default: 5.0].
  --health-port=PORT       TCP port of the /healthz server; 0 disables it
                           [default: 8001].
  --max-jobs=N             Exit after N finished jobs; 0 runs until stopped
                           [default: 0].
  --log-level=LEVEL        critical, error, warning, info or debug. Defaults
                           to the LOG_LEVEL environment variable, else info.
  -h --help                Show this help.
  --version                Show the version.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

from docopt import docopt

from worker.client import ApiClient
from worker.health import HealthState, start_health_server
from worker.loop import run

VERSION = "0.1.0"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

logger = logging.getLogger("worker")


@dataclass(frozen=True)
class Settings:
    api_url: str
    name: str
    poll_interval: float
    timeout: float
    health_port: int
    max_jobs: int
    log_level: str


class UsageError(ValueError):
    """Raised for an invalid command-line value or environment variable."""


def parse_number(arguments: dict[str, Any], option: str, kind: type, minimum: float) -> Any:
    text = arguments[option]
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"invalid {option} {text!r}: expected a {kind.__name__}") from None
    if value < minimum:
        raise UsageError(f"invalid {option} {text!r}: expected at least {minimum}")
    return value


def parse_settings(arguments: dict[str, Any], environ: dict[str, str]) -> Settings:
    api_url = arguments["--api-url"] or environ.get("API_URL")
    if not api_url:
        raise UsageError("missing API URL: pass --api-url or set API_URL")
    if not api_url.startswith(("http://", "https://")):
        raise UsageError(f"invalid API URL {api_url!r}: expected an http:// or https:// URL")

    log_level = (arguments["--log-level"] or environ.get("LOG_LEVEL") or "info").lower()
    if log_level not in LOG_LEVELS:
        raise UsageError(f"invalid log level {log_level!r}: use one of {', '.join(LOG_LEVELS)}")

    health_port = parse_number(arguments, "--health-port", int, 0)
    if health_port > 65535:
        raise UsageError(f"invalid --health-port {health_port}: expected at most 65535")

    return Settings(
        api_url=api_url.rstrip("/"),
        name=arguments["--name"] or f"{socket.gethostname()}-{os.getpid()}",
        poll_interval=parse_number(arguments, "--poll-interval", float, 0.01),
        timeout=parse_number(arguments, "--timeout", float, 0.1),
        health_port=health_port,
        max_jobs=parse_number(arguments, "--max-jobs", int, 0),
        log_level=log_level,
    )


def stop_on_signals(stop: threading.Event) -> None:
    # As PID 1 in a container, Python ignores SIGTERM unless it installs a
    # handler, and the engine would then kill the worker only after its timeout.
    def handle(signum: int, _frame: object) -> None:
        logger.info("received %s, stopping after the current job", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(argv: list[str] | None = None) -> int:
    arguments = docopt(__doc__, argv=argv, version=VERSION)
    try:
        settings = parse_settings(arguments, dict(os.environ))
    except UsageError as error:
        print(f"worker: {error}", file=sys.stderr)
        return 2

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "debug":
        # httpx logs every request at info level, which is one line per poll.
        # The loop logs job events itself.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    # A poll should count as fresh for a few poll cycles, including slow requests.
    state = HealthState(settings.api_url, stale_after=max(10.0, 3 * (settings.poll_interval + settings.timeout)))
    server = start_health_server(state, settings.health_port) if settings.health_port else None
    stop = threading.Event()
    stop_on_signals(stop)

    client = ApiClient(settings.api_url, settings.name, settings.timeout)
    logger.info("worker %s polling %s every %.2fs", settings.name, settings.api_url, settings.poll_interval)
    try:
        jobs_done = run(client, state, settings.poll_interval, settings.max_jobs, stop)
    finally:
        client.close()
        if server is not None:
            server.shutdown()
    logger.info("worker %s stopped after %d jobs", settings.name, jobs_done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
