"""A heartbeat: repeats the latest activity with its elapsed time, so a waiting phase is never silent.

Phases that wait on something with no output of its own (a container that
starts, a probe that retries) report events when they happen. Between events
the heartbeat publishes the latest one again every `interval` seconds with the
time spent on it, from a daemon thread that stops in `finally`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from build_suite.summary import format_duration


def heartbeat_text(prefix: str, activity: str, seconds: float) -> str:
    """Build the status text: `containers: waiting for api (12s)`."""
    return f"{prefix}: {activity} ({format_duration(seconds)})"


class Heartbeat:
    # 2.5 s keeps the gap between two lines under 3 s even when the machine is busy.
    def __init__(self, prefix: str, publish: Callable[[str], None], interval: float = 2.5) -> None:
        self.prefix = prefix
        self.publish = publish
        self.interval = interval
        self.activity = "starting"
        self.since = time.monotonic()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{prefix}", daemon=True)

    def update(self, activity: str) -> None:
        """Record a new activity; the next beat shows it with the time since now."""
        with self._lock:
            self.activity = activity
            self.since = time.monotonic()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            with self._lock:
                text = heartbeat_text(self.prefix, self.activity, time.monotonic() - self.since)
            self.publish(text)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.interval + 1)
