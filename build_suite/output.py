"""The one helper through which build-suite shows anything to the user.

Output policy:

* ``tty``: a terminal. Status text replaces one updating line (carriage
  return and erase-to-end-of-line), and permanent lines are printed above it.
* ``plain``: a CI log or a pipe. Status texts become lines of their own, so
  a log never depends on cursor moves. Only one status line is written per
  ``plain_interval``. A status that comes sooner is held back and written when
  the interval ends, unless a newer status or a permanent line replaces it.
  So the limit never makes a silence longer.
* ``quiet``: status text is dropped, permanent lines are still printed.

Every line, status included, is also passed with a timestamp to the tee
callbacks: the build log in reports/ and the report section of the running
test. Every line goes through the redactor first, so a credential in a URL is
never shown or written. Writers are called under a lock because the
live monitor publishes from its own thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from build_suite.redact import redact as redact_urls

MODES = ("auto", "tty", "plain", "quiet")

Writer = Callable[[str], None]
Tee = Callable[[str], None]


def choose_mode(requested: str, stream: TextIO | None) -> str:
    """Resolve ``auto`` to ``tty`` on an interactive terminal outside CI, else ``plain``."""
    if requested != "auto":
        return requested
    if os.environ.get("CI"):
        return "plain"
    isatty = getattr(stream, "isatty", None)
    return "tty" if isatty is not None and isatty() else "plain"


def fit_to_width(text: str, width: int) -> str:
    """Cut `text` to one line of at most `width` characters, marking the cut with an ellipsis."""
    line = text.replace("\r", " ").replace("\n", " ")
    if width <= 1 or len(line) <= width:
        return line
    return line[: width - 1] + "…"


def stamp(text: str, now: float | None = None) -> str:
    """Prefix `text` with a local wall-clock time, as written to logs."""
    moment = time.localtime(time.time() if now is None else now)
    return f"{time.strftime('%H:%M:%S', moment)} {text}"


class Output:
    """Writes status and permanent lines according to the output policy above."""

    def __init__(self, write: Writer, mode: str = "plain", *, width: int = 120,
                 redact: Callable[[str], str] | None = None, tees: list[Tee] | None = None,
                 plain_interval: float = 1.0) -> None:
        if mode not in MODES or mode == "auto":
            raise ValueError(f"invalid output mode {mode!r}: expected tty, plain or quiet")
        self.mode = mode
        self.width = width
        self._write = write
        self._redact = redact or redact_urls
        self._tees = list(tees or [])
        self._lock = threading.Lock()
        self._status_shown = False
        self.plain_interval = plain_interval
        self._last_status = 0.0
        self._pending_status: str | None = None
        self._flush_timer: threading.Timer | None = None

    def add_tee(self, tee: Tee) -> None:
        with self._lock:
            self._tees.append(tee)

    def remove_tee(self, tee: Tee) -> None:
        with self._lock:
            if tee in self._tees:
                self._tees.remove(tee)

    def status(self, text: str) -> None:
        """Show what is happening now: one updating line on a terminal, a plain line elsewhere."""
        text = self._redact(text)
        with self._lock:
            self._tee(text)
            if self.mode == "quiet":
                return
            if self.mode == "tty":
                self._emit("\r" + fit_to_width(text, self.width) + "\x1b[K")
                self._status_shown = True
            else:
                self._plain_status(text)

    def line(self, text: str) -> None:
        """Print a permanent line, above the status line on a terminal."""
        text = self._redact(text)
        with self._lock:
            self._tee(text)
            self._clear_status()
            # A held-back status is older than this line, so it is dropped.
            self._pending_status = None
            self._emit(text + "\n")

    def log(self, text: str) -> None:
        """Write a line to the log and the test's report only, as for every line of pip's output."""
        text = self._redact(text)
        with self._lock:
            self._tee(text)

    def clear(self) -> None:
        """Erase the status line, so that later output starts on a clean line."""
        with self._lock:
            self._pending_status = None
            self._clear_status()

    def _plain_status(self, text: str) -> None:
        """Write a status line now, or hold it until `plain_interval` has passed since the last one."""
        wait = self._last_status + self.plain_interval - time.monotonic()
        if wait <= 0:
            self._pending_status = None
            self._emit(text + "\n")
            self._last_status = time.monotonic()
            return
        self._pending_status = text
        if self._flush_timer is None:
            self._flush_timer = threading.Timer(wait, self._flush_pending_status)
            self._flush_timer.daemon = True
            self._flush_timer.start()

    def _flush_pending_status(self) -> None:
        with self._lock:
            self._flush_timer = None
            if self._pending_status is not None:
                self._plain_status(self._pending_status)

    def _clear_status(self) -> None:
        if self._status_shown:
            self._emit("\r\x1b[K")
            self._status_shown = False

    def _emit(self, text: str) -> None:
        self._write(text)

    def _tee(self, text: str) -> None:
        stamped = stamp(text)
        for tee in self._tees:
            tee(stamped)


class NullOutput(Output):
    """An Output that shows nothing: for library calls with no user to inform."""

    def __init__(self) -> None:
        super().__init__(lambda text: None, "quiet")


def stream_writer(stream: TextIO = sys.stderr) -> Writer:
    """Return a writer that writes to `stream` and flushes at once."""

    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write
