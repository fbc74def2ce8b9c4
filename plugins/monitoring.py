"""Live monitoring: streams the build's status into the terminal while tests run.

pytest captures the output of tests (file descriptor 1 is redirected while a
test runs), so the plugin keeps a duplicate of the terminal's descriptor taken
at start-up and writes there: progress shows under the default capture, with
no `-s`. Under pytest-xdist a worker has no terminal, so it appends its lines
to a file in the reports folder. The controller follows those files and shows
every worker's lines with the worker's id.

Every line, status included, is also copied into reports/build.log and into
the report section of the test that is running.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from build_suite.output import Output, choose_mode
from build_suite.redact import Redactor
from plugins.harness import build_session

OUTPUT = pytest.StashKey[Output]()
PROGRESS_FOLDER = ".progress"


class FdWriter:
    """Writes to a duplicate of the terminal's descriptor, which capture does not redirect."""

    def __init__(self, fd: int) -> None:
        self.fd = os.dup(fd)

    def __call__(self, text: str) -> None:
        data = text.encode("utf-8", errors="replace")
        while data:
            written = os.write(self.fd, data)
            data = data[written:]

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class LogFile:
    """Appends every line to the build log; a lock keeps lines from several threads whole.

    A write that fails (a full disk) stops the log for the rest of the build instead of
    failing the build. The terminal still shows every line, and `error` keeps the cause.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Each build starts a new log: the build lock is held by now, so no other build writes here.
        self.file = path.open("w", encoding="utf-8")
        self.lock = threading.Lock()
        self.error: OSError | None = None

    def __call__(self, line: str) -> None:
        with self.lock:
            if self.error is not None:
                return
            try:
                self.file.write(line + "\n")
                self.file.flush()
            except OSError as error:
                self.error = error

    def close(self) -> None:
        with self.lock:
            try:
                self.file.close()
            except OSError as error:
                self.error = self.error or error
            if self.error is not None:
                sys.stderr.write(f"build log {self.path} is incomplete: {self.error.strerror}\n")


class WorkerChannel:
    """An xdist worker's progress file: one line per message, tagged S (status) or L (permanent line)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")
        self.lock = threading.Lock()

    def __call__(self, text: str) -> None:
        status = text.startswith("\r")
        body = text.replace("\r", "").replace("\x1b[K", "").rstrip("\n")
        if not body:
            return
        with self.lock:
            self.file.write(("S " if status else "L ") + body + "\n")
            self.file.flush()

    def close(self) -> None:
        self.file.close()


class WorkerFollower(threading.Thread):
    """Shows the lines that xdist workers append to their progress files, prefixed with the worker id."""

    def __init__(self, folder: Path, output: Output, interval: float = 0.5) -> None:
        super().__init__(name="build-suite-worker-follower", daemon=True)
        self.folder = folder
        self.output = output
        self.interval = interval
        self.offsets: dict[Path, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.poll()
        self.poll()

    def poll(self) -> None:
        for path in sorted(self.folder.glob("*.log")):
            offset = self.offsets.get(path, 0)
            with path.open("rb") as file:
                file.seek(offset)
                data = file.read()
            complete = data[: data.rfind(b"\n") + 1]
            self.offsets[path] = offset + len(complete)
            for raw in complete.decode("utf-8", errors="replace").splitlines():
                self.show(path.stem, raw)

    def show(self, worker: str, raw: str) -> None:
        kind, _, text = raw.partition(" ")
        if kind == "S":
            self.output.status(f"[{worker}] {text}")
        else:
            self.output.line(f"[{worker}] {text}")

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


class Monitoring:
    """Owns the session's Output and routes its lines to the terminal, the log and the test reports."""

    def __init__(self, config: pytest.Config, report_dir: Path, redactor: Redactor) -> None:
        self.config = config
        self.closers: list = []
        self.follower: WorkerFollower | None = None
        worker = getattr(config, "workerinput", {}).get("workerid")
        requested = config.getoption("progress")
        progress_folder = report_dir / PROGRESS_FOLDER
        if worker:
            channel = WorkerChannel(progress_folder / f"{worker}.log")
            self.closers.append(channel.close)
            mode = "plain" if requested in ("auto", "tty") else requested
            self.output = Output(channel, mode, redact=redactor)
            return
        writer = FdWriter(sys.stdout.fileno())
        self.closers.append(writer.close)
        mode = choose_mode(requested, writer)
        width = max(40, os.get_terminal_size(writer.fd).columns - 1) if writer.isatty() else 160
        log = LogFile(report_dir / "build.log")
        self.closers.append(log.close)
        state = build_session(config)
        log(f"build {state.record.build_id} of {state.config.path}, started {state.record.started}")
        self.output = Output(self._write_on_own_line(writer), mode, width=width, redact=redactor, tees=[log])
        if progress_folder.is_dir():
            for stale in progress_folder.glob("*.log"):
                stale.unlink()
        progress_folder.mkdir(parents=True, exist_ok=True)
        self.follower = WorkerFollower(progress_folder, self.output)
        self.follower.start()

    def _write_on_own_line(self, writer):
        """Start a new line first when pytest's progress dots or test name hold the current line."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")

        def write(text: str) -> None:
            terminal = getattr(reporter, "_tw", None)
            if terminal is not None and terminal.width_of_current_line:
                writer("\n")
                terminal._current_line = ""
            writer(text)

        return write

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        yield from self._capture(item, "setup")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        yield from self._capture(item, "call")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item):
        yield from self._capture(item, "teardown")

    def _capture(self, item: pytest.Item, when: str):
        lines: list[str] = []
        self.output.add_tee(lines.append)
        try:
            yield
        finally:
            self.output.remove_tee(lines.append)
            self.output.clear()
            if lines:
                item.add_report_section(when, "build log", "\n".join(lines))

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.output.clear()
        for close in reversed(self.closers):
            close()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    state = build_session(config)
    if state is None:
        return
    wheelhouse = state.config.wheelhouse
    urls = [url for url in (wheelhouse.index_url, *wheelhouse.extra_index_urls, *wheelhouse.find_links) if url]
    monitoring = Monitoring(config, state.report_dir, Redactor.from_environ(extra_urls=urls))
    config.stash[OUTPUT] = monitoring.output
    config.pluginmanager.register(monitoring, "build-suite-monitoring")


def pytest_unconfigure(config: pytest.Config) -> None:
    monitoring = config.pluginmanager.get_plugin("build-suite-monitoring")
    if monitoring is not None:
        monitoring.close()


@pytest.fixture(scope="session")
def build_output(pytestconfig: pytest.Config) -> Output:
    """Return the Output through which phases show progress; skip outside a build session."""
    output = pytestconfig.stash.get(OUTPUT, None)
    if output is None:
        pytest.skip("not a build session: run the phases with `pytest build_suite`")
    return output
