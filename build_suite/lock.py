"""The build lock: one build of a project at a time, so the wheelhouse and reports are never written twice.

The lock is an flock(2) on a file in the project's folder. The kernel drops it
when the holder exits, even after SIGKILL, so a crashed build never leaves a
stale lock behind. The file records the holder's pid, build id and start time
so that a waiting build can name the build it waits for.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from build_suite.errors import LockBusyError

LOCK_NAME = ".build-suite.lock"


class BuildLock:
    def __init__(self, folder: Path, build_id: str) -> None:
        self.path = folder / LOCK_NAME
        self.build_id = build_id
        self.fd: int | None = None

    def holder(self) -> str:
        """Describe the current holder from the lock file, for messages."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "another build"
        return f"build {info.get('build_id', '?')} (pid {info.get('pid', '?')}, started {info.get('started', '?')})"

    def acquire(self, wait: bool, on_wait: Callable[[str], None], interval: float = 1.0,
                timeout: float | None = None) -> None:
        """Take the lock; wait for it, reporting every `interval` seconds, or raise LockBusyError."""
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.holder()
                if not wait:
                    self.release()
                    raise LockBusyError(f"another build of this project is running: {holder} has the lock {self.path}",
                                        "wait for it to finish, or run with --lock=wait to queue behind it") from None
                waited = time.monotonic() - started
                if timeout is not None and waited > timeout:
                    self.release()
                    raise LockBusyError(f"timed out after {waited:.0f} s waiting for {holder} to release {self.path}",
                                        "check whether that build hangs") from None
                on_wait(f"waiting for the build lock: {holder} is running ({waited:.0f} s)")
                time.sleep(interval)
        record = {"pid": os.getpid(), "build_id": self.build_id,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(record).encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


class FolderLock:
    """An exclusive flock beside a folder, held while one process writes into it.

    pytest-xdist workers each run the session fixtures, so two workers may try to build
    the same wheelhouse at once. The second waits here, then finds it built and reuses it.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder.parent / f".{folder.name}.lock"
        self.fd: int | None = None

    def __enter__(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
