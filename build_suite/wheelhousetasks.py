"""The per-wheel tasks of the wheelhouse phase: downloads and sdist builds in parallel, with the deadline.

TaskSteps is a base class of the phase in wheelhouse.py. Its methods use the
phase's `config`, `output`, `context`, `builder`, `sdists`, `downloads`,
`builds`, `lock`, `running`, `running_tasks`, `pending_tasks`, `records`,
`history`, `phase_name`, `run_id`, `_emit` and `_revise_estimate`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait

from build_suite import estimate
from build_suite.crossbuild import CONTAINER_BUILT
from build_suite.errors import WheelhouseError
from build_suite.manifest import WheelRecord, record_for_file
from build_suite.resolve import Artifact
from build_suite.sdistbuild import build_wheel, check_wheel_identity
from build_suite.wheelfetch import Cancelled, fetch_wheel, stop_marked_processes

# The live status must never be silent for longer than this, whatever the
# configured heartbeat.
MAX_SILENCE = 3.0
# Environment variable that marks the pip processes of one run, so a cancel
# stops exactly those (and no other child of this process).
RUN_MARKER = "BUILD_SUITE_WHEELHOUSE_RUN"


def plural(count: int, noun: str) -> str:
    """Return "1 wheel", "2 wheels" and so on."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def fetching_text(downloads: int, builds: int, download_jobs: int, build_jobs: int) -> str:
    """Return the line that starts the downloads and builds, with how many of each run at a time."""
    parts = []
    if downloads:
        parts.append(f"downloading {plural(downloads, 'wheel')}, up to {download_jobs} at a time")
    if builds:
        parts.append(f"building {plural(builds, 'wheel')} from source, up to {build_jobs} at a time")
    return "; ".join(parts)


class TaskSteps:
    """The steps that fetch and build the wheels of a plan."""

    def _run_tasks(self, tasks: Sequence[tuple[str, Artifact]]) -> None:
        if not tasks:
            return
        self.phase_name = "fetching"
        builds = sum(1 for kind, _ in tasks if kind == "build")
        self._emit("download", fetching_text(len(tasks) - builds, builds, self.jobs, self.build_jobs))
        futures: dict[Future, Artifact] = {}
        # Builds first: they take longest, so they should start at once.
        for kind, artifact in sorted(tasks, key=lambda item: item[0] != "build"):
            pool, work = (self.builds, self._build) if kind == "build" else (self.downloads, self._download)
            futures[pool.submit(self._timed, kind, artifact, work)] = artifact
        try:
            self._wait_all(futures)
        finally:
            if any(not future.done() for future in futures):
                self.context.cancel.set()

    def _wait_all(self, futures: Mapping[Future, Artifact]) -> None:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=MAX_SILENCE, return_when=FIRST_COMPLETED)
            for future in finished:
                error = future.exception()
                if error is not None and not isinstance(error, Cancelled):
                    self.context.cancel.set()
                    stop_marked_processes(RUN_MARKER, self.run_id)
                    raise error
            if self.context.remaining() <= 0:
                self._raise_timeout()
        if self.context.remaining() <= 0:
            self._raise_timeout()

    def _raise_timeout(self) -> None:
        now = time.monotonic()
        with self.lock:
            running = [f"{label} (running {estimate.format_duration(now - start)})" for label, start in self.running.items()]
        self.context.cancel.set()
        stop_marked_processes(RUN_MARKER, self.run_id)
        timeout = float(self.config.timeout)
        raise WheelhouseError(
            f"wheelhouse phase timed out after {estimate.format_duration(timeout)} while {self.phase_name} "
            f"({self.done} of {self.total} wheels done)"
            + (": " + ", ".join(running) if running else "")
            + "; the running pip processes were stopped and partial files removed",
            "raise [wheelhouse] timeout in buildsuite.toml, or check the network to the package index",
        )

    def _timed(self, kind: str, artifact: Artifact, work: Callable[[Artifact], WheelRecord]) -> WheelRecord:
        self.context.check()
        label = f"{'building' if kind == 'build' else 'downloading'} {artifact.label}"
        with self.lock:
            self.running[label] = time.monotonic()
            task = self.pending_tasks.pop(artifact.name, estimate.Task(artifact.name, kind))
            self.running_tasks[task] = time.monotonic()
        self._emit(kind, label, package=artifact.name)
        try:
            record = work(artifact)
        finally:
            with self.lock:
                started = self.running.pop(label)
                self.running_tasks.pop(task, None)
        with self.lock:
            self.records[artifact.name] = record
            self.done += 1
            (self.built if kind == "build" else self.downloaded).append(record.filename)
        self._revise_estimate()
        self._emit(kind, f"{record.filename} {record.source} in {estimate.format_duration(record.seconds)}", artifact.name, time.monotonic() - started)
        return record

    def _download(self, artifact: Artifact) -> WheelRecord:
        started = time.monotonic()
        final = fetch_wheel(artifact, self.output, self.context, lambda text: self._emit("download", text, artifact.name))
        seconds = time.monotonic() - started
        record = record_for_file(final, "downloaded", seconds, sha256=artifact.sha256)
        with self.lock:
            self.history.record_download(artifact.name, seconds, record.size)
        return record

    def _build(self, artifact: Artifact) -> WheelRecord:
        started = time.monotonic()
        if artifact.kind == "sdist":
            temp, filename = self.sdists.build(artifact)
        else:
            # NOTE: source trees (local folders, VCS URLs) are built from their
            # URL with the index, so their build requirements are not kept offline.
            temp, filename, _ = build_wheel(artifact.url, self.output, self.context, artifact.label, build_deps=None)
        final = self.output / filename
        try:
            check_wheel_identity(filename, artifact)
        except WheelhouseError:
            temp.unlink(missing_ok=True)
            raise
        os.replace(temp, final)
        seconds = time.monotonic() - started
        with self.lock:
            self.history.record_build(artifact.name, seconds)
        return record_for_file(final, CONTAINER_BUILT if self.builder else "built", seconds)
