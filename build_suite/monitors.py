"""Live monitors of the wheelhouse phase: process tree, network, wheel folder.

Each monitor keeps the state of its previous sample, so one `sample()` call
costs a few reads of /proc or one folder listing and returns the change since
the last call. `LiveMonitor` runs them on a daemon thread and publishes a status
line built by status.format_status.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from build_suite import pipoutput
from build_suite.status import ProgressSnapshot, format_status

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 3.0


@dataclass(frozen=True)
class ProcessSample:
    """One look at a process tree.

    `names` lists each process name once, the most frequent first, with
    "python3.11" and similar shortened to "python". `cpu_percent` is the CPU
    time of the whole tree since the previous sample over the wall time, so two
    busy cores give 200.
    """

    count: int = 0
    names: tuple[str, ...] = ()
    cpu_percent: float = 0.0
    rss_bytes: int = 0


@dataclass(frozen=True)
class WheelFolderSample:
    """The wheels in a folder: `new` names the files that appeared since the previous sample."""

    count: int = 0
    total_bytes: int = 0
    new: tuple[str, ...] = ()


def short_process_name(name: str) -> str:
    """Shorten interpreter names ("python3.11" -> "python") so they group together."""
    if name.startswith("python"):
        return "python"
    return name


class ProcessTreeMonitor:
    """Sample the processes of a tree: the root `pid` and all its descendants.

    CPU is counted from CPU times, not from per-process percentages, so a
    compiler that starts and ends between two samples still counts: when its
    parent reaps it, the kernel adds its time to the parent's children times.
    """

    def __init__(self, pid: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.pid = pid
        self._clock = clock
        self._cpu_seconds: dict[int, float] = {}
        self._processes: dict[int, psutil.Process] = {}
        self._sampled_at: float | None = None

    def sample(self) -> ProcessSample:
        """Return the tree's process count, names, CPU share since the last sample and memory."""
        now = self._clock()
        tree = self._tree()
        cpu_now: dict[int, float] = {}
        rss = 0
        counts: dict[str, int] = {}
        for process in tree:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    rss += process.memory_info().rss
                    name = short_process_name(process.name())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            cpu_now[process.pid] = times.user + times.system + times.children_user + times.children_system
            counts[name] = counts.get(name, 0) + 1

        cpu_percent = 0.0
        if self._sampled_at is not None and now > self._sampled_at:
            used = sum(total - self._cpu_seconds.get(pid, 0.0) for pid, total in cpu_now.items())
            # The time of a reaped process moved into its parent's children
            # times, which the sum above already counts again.
            used -= sum(total for pid, total in self._cpu_seconds.items() if pid not in cpu_now)
            cpu_percent = max(used, 0.0) / (now - self._sampled_at) * 100
        self._cpu_seconds = cpu_now
        self._sampled_at = now

        names = tuple(sorted(counts, key=lambda name: (-counts[name], name)))
        return ProcessSample(count=len(cpu_now), names=names, cpu_percent=cpu_percent, rss_bytes=rss)

    def _tree(self) -> list[psutil.Process]:
        # Reuse Process objects so psutil's per-object caches survive between samples.
        try:
            root = self._processes.get(self.pid) or psutil.Process(self.pid)
            found = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            self._processes = {}
            return []
        self._processes = {process.pid: self._processes.get(process.pid, process) for process in found}
        return list(self._processes.values())


class NetworkMonitor:
    """Measure the bytes received per second by this machine.

    NOTE: psutil has no per-process network counters, so the rate covers every
    program on the machine. The loopback interface is left out unless
    `include_loopback` is set, because local servers talk over it.
    """

    def __init__(self, *, include_loopback: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self._include_loopback = include_loopback
        self._clock = clock
        self._received = self.received_bytes()
        self._sampled_at = clock()

    def received_bytes(self) -> int:
        """Return the bytes received so far on the counted interfaces."""
        counters = psutil.net_io_counters(pernic=True)
        return sum(
            stats.bytes_recv for name, stats in counters.items() if self._include_loopback or name != "lo"
        )

    def sample(self) -> float:
        """Return the bytes received per second since the previous sample (or since creation)."""
        now = self._clock()
        received = self.received_bytes()
        elapsed = now - self._sampled_at
        rate = max(received - self._received, 0) / elapsed if elapsed > 0 else 0.0
        self._received = received
        self._sampled_at = now
        return rate


class WheelFolderMonitor:
    """Count the .whl files in a folder and report the ones that appeared since the last sample.

    NOTE: pip (checked in 23.2.1) copies a finished wheel into the folder under its final name, so
    a wheel still being copied counts with its partial size.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._known: set[str] = set()

    def sample(self) -> WheelFolderSample:
        """Return the count and total size of the wheels, and the names of new ones."""
        sizes: dict[str, int] = {}
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    if not entry.name.endswith(".whl"):
                        continue
                    try:
                        if entry.is_file():
                            sizes[entry.name] = entry.stat().st_size
                    except FileNotFoundError:
                        continue
        except (FileNotFoundError, NotADirectoryError):
            pass
        new = tuple(sorted(name for name in sizes if name not in self._known))
        self._known = set(sizes)
        return WheelFolderSample(count=len(sizes), total_bytes=sum(sizes.values()), new=new)


class BuildProgress:
    """The progress of one pip run, updated from pip events by the reader.

    Safe to update from the reader thread and read from the monitor thread.
    A package counts as done when its file is saved to the output folder or
    its wheel is built.
    """

    def __init__(self, packages_total: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self._activity = "starting"
        self._package: str | None = None
        self._step: str | None = None
        self._activity_started = self._started
        self._total = packages_total
        self._seen: set[str] = set()
        self._done: set[str] = set()
        self._downloaded = 0
        self._errors = 0
        self._failed: set[str] = set()
        self._parser = pipoutput.PipOutputParser()

    def set_total(self, packages_total: int | None) -> None:
        with self._lock:
            self._total = packages_total

    def apply(self, event: pipoutput.PipEvent) -> None:
        """Update the state from one pip event."""
        with self._lock:
            self._apply(event)

    def feed_line(self, line: str) -> pipoutput.PipEvent:
        """Parse `line` with this run's parser, apply the event and return it.

        Meant as run_streaming's `on_line`, or to be called from it.
        """
        event = self._parser.feed(line)
        self.apply(event)
        return event

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            now = self._clock()
            return ProgressSnapshot(
                activity=self._activity,
                package=self._package,
                step=self._step,
                activity_seconds=now - self._activity_started,
                elapsed_seconds=now - self._started,
                packages_done=len(self._done),
                packages_seen=len(self._seen),
                packages_total=self._total,
                downloaded_bytes=self._downloaded,
                errors=self._errors,
                failed=tuple(sorted(self._failed)),
            )

    def _set_activity(self, activity: str, package: str | None, step: str | None = None) -> None:
        if (activity, package, step) != (self._activity, self._package, self._step):
            self._activity_started = self._clock()
        self._activity, self._package, self._step = activity, package, step

    def _apply(self, event: pipoutput.PipEvent) -> None:
        if isinstance(event, pipoutput.Collecting):
            if event.name:
                self._seen.add(pipoutput.canonicalize_name(event.name))
            self._set_activity("collecting", event.name or event.spec)
        elif isinstance(event, pipoutput.Downloading):
            self._downloaded += event.size or 0
            self._set_activity("downloading", event.package or event.filename)
        elif isinstance(event, pipoutput.Processing):
            if event.name:
                self._seen.add(pipoutput.canonicalize_name(event.name))
            self._set_activity("collecting", event.name or event.path.rstrip("/").rsplit("/", 1)[-1])
        elif isinstance(event, pipoutput.UsingCached):
            self._set_activity("collecting", event.package or self._package)
        elif isinstance(event, pipoutput.BuildStep):
            self._set_activity("preparing", event.package or self._package, event.step)
        elif isinstance(event, pipoutput.BuildingWheel):
            if event.state == "error":
                self._failed.add(pipoutput.canonicalize_name(event.name))
                self._set_activity("failed", event.name)
            elif event.state == "done":
                self._set_activity("built", event.name)
            else:
                self._set_activity("building", event.name)
        elif isinstance(event, pipoutput.CreatedWheel):
            self._mark_done(event.filename or event.name)
            self._set_activity("built", event.name)
        elif isinstance(event, pipoutput.Saved):
            self._mark_done(event.filename)
        elif isinstance(event, pipoutput.ResolvedProgress) and event.kind != "satisfied":
            self._set_activity("finished", None)
        elif isinstance(event, pipoutput.BuildFailed):
            self._failed.update(pipoutput.canonicalize_name(name) for name in event.names)
        elif isinstance(event, pipoutput.Error) and event.line.startswith("ERROR:"):
            # Only pip's own "ERROR:" lines count: the "error:" and "×" lines
            # around them describe the same failure again.
            self._errors += 1

    def _mark_done(self, filename: str) -> None:
        name = pipoutput.package_from_filename(filename) or filename
        self._done.add(pipoutput.canonicalize_name(name))
        self._seen.add(pipoutput.canonicalize_name(name))


class LiveMonitor:
    """Publish a status line every `interval` seconds while a pip run goes on.

    Use as a context manager around run_streaming, and call `attach(pid)` once
    the process has started (run_streaming's `on_start`). `eta` receives the
    progress snapshot and returns the seconds left, or None when unknown.
    """

    def __init__(
        self,
        publish: Callable[[str], None],
        progress: BuildProgress,
        *,
        wheel_dir: str | os.PathLike[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        eta: Callable[[ProgressSnapshot], float | None] | None = None,
        network: bool = True,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.publish = publish
        self.progress = progress
        self.interval = interval
        self._eta = eta
        self._wheels = WheelFolderMonitor(wheel_dir) if wheel_dir is not None else None
        self._network = NetworkMonitor() if network else None
        self._tree: ProcessTreeMonitor | None = None
        self._tree_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    def attach(self, pid: int) -> None:
        """Start sampling the process tree of `pid`."""
        with self._tree_lock:
            self._tree = ProcessTreeMonitor(pid)

    def status_text(self) -> str:
        """Sample every monitor once and build the status line."""
        with self._tree_lock:
            tree = self._tree
        snapshot = self.progress.snapshot()
        sample = tree.sample() if tree is not None else None
        rate = self._network.sample() if self._network is not None else None
        wheels = self._wheels.sample() if self._wheels is not None else None
        eta = self._eta(snapshot) if self._eta is not None else None
        return format_status(snapshot, sample, rate, wheels, eta)

    def __enter__(self) -> LiveMonitor:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="build-suite-live-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the thread and wait for it; safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        # Wait first: the first CPU and network samples only set the baseline.
        while not self._stop.wait(self.interval):
            try:
                self.publish(self.status_text())
            except Exception:  # noqa: BLE001 - a broken status line must not stop the build.
                self._failures += 1
                # Log the first failure with its traceback and then every 100th, not every tick.
                if self._failures == 1 or self._failures % 100 == 0:
                    log.exception("live status update failed (%d failures so far)", self._failures)
