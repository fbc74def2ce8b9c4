"""Run pip (or any command) as a child process and stream its output line by line.

The child runs in its own session and process group, so a timeout, a stall or
Ctrl-C stops the whole tree (pip, build backends, compilers) and nothing keeps
running after build-suite returns. Its stdout and stderr share one pipe, read
as bytes and decoded incrementally, so compiler output that is not valid UTF-8
cannot break the reader.

A stop is reported through flags on RunResult (`timed_out`, `stalled`), not by
raising, so the caller can build its own error from `tail`, `last_partial` and
`running`. Only KeyboardInterrupt is re-raised, after the tree is stopped.
"""

from __future__ import annotations

import codecs
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

from build_suite.monitors import NetworkMonitor, ProcessTreeMonitor
from build_suite.redact import Redactor, redact

TAIL_LINES = 50
# Seconds between checks of the clock, the process tree and the network while
# the pipe is quiet.
POLL_INTERVAL = 0.25
# Seconds between CPU and network checks used by the stall detection.
ACTIVITY_INTERVAL = 1.0
# A tree using less CPU than this (percent of one core) counts as idle, because
# an interpreter waiting on a socket or a prompt still wakes up now and then.
IDLE_CPU_PERCENT = 2.0
# Bytes per second on non-loopback interfaces below which the network counts as
# idle. NOTE: the counters cover the whole machine, so traffic of other
# programs can hide a stalled download.
IDLE_NETWORK_RATE = 1024.0
# Seconds between SIGTERM and SIGKILL when stopping the tree.
KILL_GRACE = 3.0
# Seconds to keep reading after the child exits, for output still in the pipe
# or written by a leftover grandchild that keeps the pipe open.
DRAIN_AFTER_EXIT = 1.0

# CSI sequences (colors, cursor moves, erase line), OSC sequences (window
# titles, hyperlinks), character set choices ("ESC ( B") and the remaining
# two-byte escapes ("ESC 7" saves the cursor).
_ANSI_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[()*+][0-~]"
    r"|\x1b[0-~]"
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences from `text`."""
    return _ANSI_ESCAPE.sub("", text)


class LineSplitter:
    """An incremental decoder that turns a byte stream into lines.

    `\\r`, `\\n` and `\\r\\n` all end a line, so each redraw of a progress bar
    becomes its own line. Bytes that are not valid UTF-8 become U+FFFD.
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._buffer = ""

    @property
    def partial(self) -> str:
        """The text after the last line break, not yet ended by one."""
        return self._buffer

    def feed(self, data: bytes) -> list[str]:
        """Decode `data` and return the lines it completes."""
        return self._split(self._decoder.decode(data))

    def close(self) -> list[str]:
        """Flush the decoder and return the remaining text as a last line, if any."""
        lines = self._split(self._decoder.decode(b"", final=True))
        # A trailing "\r" was held back in case "\n" follows; now it cannot.
        rest = self._buffer.removesuffix("\r")
        self._buffer = ""
        if rest:
            lines.append(rest)
        return lines

    def _split(self, text: str) -> list[str]:
        text = self._buffer + text
        # Hold back a trailing "\r", because "\r\n" split across two reads is one break.
        pending_cr = ""
        if text.endswith("\r"):
            text, pending_cr = text[:-1], "\r"
        pieces = _LINE_BREAK.split(text)
        self._buffer = pieces.pop() + pending_cr
        return pieces


def clean_line(text: str, redactor: Callable[[str], str] = redact) -> str:
    """Strip escape sequences and trailing whitespace from `text`, then mask credentials."""
    return redactor(strip_ansi(text).rstrip())


@dataclass
class RunResult:
    """The outcome of one command run.

    `returncode` is None only if the child could not be reaped after SIGKILL.
    A child stopped by a timeout or a stall has its negative signal number.
    `interrupted` means the child itself died of SIGINT, because Ctrl-C on
    build-suite raises KeyboardInterrupt instead of returning. `cancelled`
    means the caller's cancel event stopped the run. `last_partial`
    is the last output text that no line break ended, such as a prompt.
    `tail` contains the last non-empty output lines.
    """

    argv: list[str]
    returncode: int | None
    duration: float
    timed_out: bool = False
    stalled: bool = False
    interrupted: bool = False
    cancelled: bool = False
    last_partial: str = ""
    tail: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    """Command lines of the processes in the tree when it was stopped (redacted)."""

    @property
    def ok(self) -> bool:
        stopped = self.timed_out or self.stalled or self.interrupted or self.cancelled
        return self.returncode == 0 and not stopped


class ActivityProbe:
    """Tell whether a process tree or the network did anything since the last check."""

    def __init__(self, pid: int, *, network: bool = True) -> None:
        self._tree = ProcessTreeMonitor(pid)
        self._tree.sample()  # The first sample only sets the CPU baseline.
        self._network = NetworkMonitor() if network else None

    def check(self) -> bool:
        """Return True if the tree used CPU or the network received data since the last check."""
        busy = self._tree.sample().cpu_percent > IDLE_CPU_PERCENT
        # Sample the network every time, so its next rate covers one interval only.
        receiving = self._network is not None and self._network.sample() >= IDLE_NETWORK_RATE
        return busy or receiving


def tree_processes(pid: int) -> list[psutil.Process]:
    """Return the process `pid` and all its descendants that still exist."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def describe_process(process: psutil.Process, redactor: Callable[[str], str] = redact) -> str:
    """Return the command line of `process`, shortened and redacted, or its name."""
    try:
        command = " ".join(" ".join(process.cmdline()).split()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return f"pid {process.pid} (exited)"
    if len(command) > 200:
        command = command[:197] + "..."
    return redactor(f"{command} (pid {process.pid})")


def kill_process_tree(
    process: subprocess.Popen, *, grace: float = KILL_GRACE, redactor: Callable[[str], str] = redact
) -> list[str]:
    """Stop `process`, its process group and every descendant, and return what was running.

    SIGTERM goes to the group and to descendants that left it (for example with
    setsid); whatever is alive after `grace` seconds gets SIGKILL.
    """
    members = tree_processes(process.pid)
    running = [describe_process(member, redactor) for member in members]
    # The direct child is reaped by Popen, never by psutil: a psutil wait would
    # take its exit status and leave Popen with a false returncode of 0.
    others = [member for member in members if member.pid != process.pid]
    _signal_tree(process.pid, members, signal.SIGTERM)
    deadline = time.monotonic() + grace
    _wait_child(process, grace)
    alive = _wait_gone(others, max(deadline - time.monotonic(), 0.0))
    # Descendants started after the snapshot are found by a second look.
    alive.extend(p for p in tree_processes(process.pid) if p.pid != process.pid and p not in alive)
    alive.extend(p for p in _group_members(process.pid) if p.pid != process.pid and p not in alive and _is_running(p))
    if alive or process.poll() is None:
        _signal_tree(process.pid, alive, signal.SIGKILL)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        _wait_child(process, grace)
        _wait_gone(alive, grace)
    return running


def _wait_gone(processes: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until `processes` exit and return those still alive after `timeout` seconds.

    A zombie counts as gone: an orphan is reaped by whatever adopted it, which
    may take a while, and psutil.wait_procs would wait for that.
    """
    deadline = time.monotonic() + timeout
    alive = list(processes)
    while True:
        alive = [p for p in alive if _is_running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _is_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def _wait_child(process: subprocess.Popen, timeout: float) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def _signal_tree(group: int, members: Sequence[psutil.Process], signum: signal.Signals) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass
    for member in members:
        try:
            member.send_signal(signum)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def _group_members(group: int) -> list[psutil.Process]:
    """Return the processes whose process group is `group`, zombies included."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == group:
                members.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def run_streaming(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    on_line: Callable[[str], None],
    timeout: float,
    stall_timeout: float | None,
    activity: Callable[[], bool] | None = None,
    network: bool = True,
    redactor: Callable[[str], str] | None = None,
    tail_lines: int = TAIL_LINES,
    on_start: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run `argv` and call `on_line` with each cleaned, redacted, non-empty output line.

    The run stops after `timeout` seconds (`timed_out`), or after
    `stall_timeout` seconds with no output, no CPU use in the process tree, no
    network traffic (if `network` is set) and no True from `activity`
    (`stalled`). Stdin is /dev/null, so pip must get `--no-input` and fail
    instead of prompting. `on_start` receives the child's pid, for example
    LiveMonitor.attach. Setting `cancel` (from any thread) stops the tree
    within about POLL_INTERVAL seconds (`cancelled`). KeyboardInterrupt or an exception from `on_line` or
    `on_start` stops the tree, then propagates. Without a `redactor`, lines
    are masked by a Redactor built from the index and proxy URLs of the
    child's environment, so a password is masked even where it appears
    outside its URL.
    """
    if redactor is None:
        redactor = Redactor.from_environ(env if env is not None else os.environ)
    started = time.monotonic()
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    result = RunResult(argv=[redactor(arg) for arg in argv], returncode=None, duration=0.0)
    tail: deque[str] = deque(maxlen=tail_lines)

    def deliver(lines: list[str]) -> None:
        for raw in lines:
            line = clean_line(raw, redactor)
            if line:
                tail.append(line)
                on_line(line)

    splitter = LineSplitter()
    try:
        if on_start is not None:
            on_start(process.pid)
        _pump(process, splitter, deliver, result, started, timeout, stall_timeout, activity, network, redactor, cancel)
    except BaseException:
        try:
            kill_process_tree(process, redactor=redactor)
        except KeyboardInterrupt:
            # A second Ctrl-C skips the grace period instead of leaving the tree running.
            _signal_tree(process.pid, tree_processes(process.pid), signal.SIGKILL)
        raise
    finally:
        result.duration = time.monotonic() - started
        result.tail = list(tail)
        if process.stdout is not None:
            process.stdout.close()

    result.returncode = process.returncode
    if process.returncode == -signal.SIGINT and not (result.timed_out or result.stalled or result.cancelled):
        result.interrupted = True
    return result


def _pump(
    process: subprocess.Popen,
    splitter: LineSplitter,
    deliver: Callable[[list[str]], None],
    result: RunResult,
    started: float,
    timeout: float,
    stall_timeout: float | None,
    activity: Callable[[], bool] | None,
    network: bool,
    redactor: Callable[[str], str],
    cancel: threading.Event | None,
) -> None:
    """Read the pipe until EOF, watching the deadlines; fills the stop flags of `result`."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    probe = ActivityProbe(process.pid, network=network) if stall_timeout is not None else None
    last_activity = time.monotonic()
    last_probe = last_activity
    exited_at: float | None = None

    at_eof = False
    try:
        while True:
            if at_eof:
                # The pipe is closed but the process may still run or not yet be reaped.
                time.sleep(POLL_INTERVAL)
            elif selector.select(POLL_INTERVAL):
                data = _read_available(fd)
                if data is None:
                    at_eof = True  # Every writer closed the pipe.
                    selector.unregister(fd)
                elif data:
                    deliver(splitter.feed(data))
                    last_activity = time.monotonic()
            now = time.monotonic()
            result.last_partial = clean_line(splitter.partial, redactor)

            if process.poll() is not None:
                exited_at = exited_at or now
                if at_eof or now - exited_at >= DRAIN_AFTER_EXIT:
                    # Past the drain time, a leftover grandchild keeps the pipe open. It is stopped below.
                    break
                continue

            if cancel is not None and cancel.is_set():
                result.cancelled = True
                result.running = kill_process_tree(process, redactor=redactor)
                break

            if now - started >= timeout:
                result.timed_out = True
                result.running = kill_process_tree(process, redactor=redactor)
                break

            if probe is not None and now - last_probe >= ACTIVITY_INTERVAL:
                last_probe = now
                if probe.check() or (activity is not None and activity()):
                    last_activity = now
                elif now - last_activity >= stall_timeout:
                    result.stalled = True
                    result.running = kill_process_tree(process, redactor=redactor)
                    break
    finally:
        selector.close()

    # Read what is still buffered in the pipe after a stop, then the unended rest.
    data = None if at_eof else _read_available(fd)
    if data:
        deliver(splitter.feed(data))
    result.last_partial = clean_line(splitter.partial, redactor)
    deliver(splitter.close())
    if process.poll() is None or any(_is_running(p) for p in _group_members(process.pid)):
        # The main process is gone but members of its group are not, or it
        # ignored the end of its pipe: nothing may outlive the run.
        kill_process_tree(process, redactor=redactor)


def _read_available(fd: int) -> bytes | None:
    """Read the bytes the pipe contains now: b"" if there are none yet, None at EOF."""
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not data:
            return b"".join(chunks) if chunks else None
        chunks.append(data)
    return b"".join(chunks)
