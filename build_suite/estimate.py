"""Estimate how long the wheelhouse phase takes, and learn from earlier runs.

The estimate is made before the build, revised while it runs and compared with
the actual time at the end. A history file (JSON) keeps per-package download
and build seconds and the resolve time per input fingerprint. A package never
seen before gets a heuristic from its kind (wheel or sdist) and file size.
Every heuristic constant errs long, because a build that ends early is
harmless, while a build that runs past its estimate looks hung.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from build_suite.manifest import write_json_atomic
from build_suite.status import format_duration

HISTORY_FORMAT = 1

# Heuristics for packages without history (seconds, bytes per second). They
# assume a slow link and a slow machine on purpose, because a long estimate is
# better than a short one.
DOWNLOAD_OVERHEAD = 0.5
DOWNLOAD_RATE = 2_000_000
UNKNOWN_WHEEL_SIZE = 2_000_000
# A pure-Python sdist builds in a few seconds after build isolation has
# installed its backend, while a compiled extension takes minutes. The base
# covers the first case, and the size term grows towards the second.
BUILD_BASE = 20.0
BUILD_SECONDS_PER_BYTE = 1 / 20_000
UNKNOWN_SDIST_SIZE = 100_000
# Resolving: pip start-up plus index look-ups per package, plus the metadata
# build of each sdist in an isolated environment.
RESOLVE_BASE = 3.0
RESOLVE_PER_PACKAGE = 0.4
RESOLVE_PER_SDIST = 5.0
# Before resolving, the number of packages is unknown: each direct requirement
# is assumed to pull in this many distributions in total.
PACKAGES_PER_REQUIREMENT = 3
# A learned time is scaled by this margin, because network speed and machine
# load vary between runs.
HISTORY_MARGIN = 1.25


@dataclass
class PackageTimes:
    """Seconds measured for one package in the last run that downloaded or built it."""

    download_seconds: float | None = None
    build_seconds: float | None = None
    size: int | None = None


@dataclass
class History:
    """Measured times of earlier runs: per package, and the phase's total per input fingerprint."""

    packages: dict[str, PackageTimes] = field(default_factory=dict)
    total_seconds: dict[str, float] = field(default_factory=dict)

    def record_download(self, name: str, seconds: float, size: int | None) -> None:
        times = self.packages.setdefault(name, PackageTimes())
        times.download_seconds = round(seconds, 3)
        times.size = size

    def record_build(self, name: str, seconds: float) -> None:
        self.packages.setdefault(name, PackageTimes()).build_seconds = round(seconds, 3)


@dataclass(frozen=True)
class Task:
    """One unit of work to estimate: a download or a build of one package."""

    name: str
    kind: str  # "download" or "build"
    size: int | None = None


def load_history(path: Path | None) -> History:
    """Read the history file; an absent or invalid file gives an empty History."""
    if path is None:
        return History()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != HISTORY_FORMAT:
            return History()
        packages = {
            name: PackageTimes(
                download_seconds=item.get("download_seconds"),
                build_seconds=item.get("build_seconds"),
                size=item.get("size"),
            )
            for name, item in data.get("packages", {}).items()
        }
        return History(
            packages=packages,
            total_seconds=dict(data.get("total_seconds", {})),
        )
    except (OSError, ValueError, AttributeError, TypeError):
        return History()


def save_history(path: Path, history: History) -> None:
    """Write the history file atomically."""
    data = {
        "format": HISTORY_FORMAT,
        "packages": {name: vars(times) for name, times in sorted(history.packages.items())},
        "total_seconds": history.total_seconds,
    }
    write_json_atomic(Path(path), data)


def heuristic_seconds(task: Task) -> float:
    """Estimate a task that has no history, from its kind and file size."""
    if task.kind == "build":
        size = task.size if task.size is not None else UNKNOWN_SDIST_SIZE
        return BUILD_BASE + size * BUILD_SECONDS_PER_BYTE
    size = task.size if task.size is not None else UNKNOWN_WHEEL_SIZE
    return DOWNLOAD_OVERHEAD + size / DOWNLOAD_RATE


def task_seconds(task: Task, history: History) -> float:
    """Estimate one task: the learned time with a margin when known, else the heuristic."""
    times = history.packages.get(task.name)
    learned = None
    if times is not None:
        learned = times.build_seconds if task.kind == "build" else times.download_seconds
    if learned is None:
        return heuristic_seconds(task)
    return learned * HISTORY_MARGIN


def makespan(durations: Iterable[float], workers: int) -> float:
    """Return the wall time of running `durations` on `workers` parallel workers, longest first."""
    loads = [0.0] * max(1, workers)
    for duration in sorted(durations, reverse=True):
        least = heapq.heappop(loads)
        heapq.heappush(loads, least + duration)
    return max(loads)


def resolve_seconds(package_count: int, sdist_count: int) -> float:
    """Estimate pip's resolve step from the number of packages and of sdists, in seconds."""
    return RESOLVE_BASE + RESOLVE_PER_PACKAGE * package_count + RESOLVE_PER_SDIST * sdist_count


def estimate_before_resolve(history: History, fingerprint: str, requirement_count: int) -> float:
    """Estimate the whole phase before pip has resolved anything.

    A run with the same fingerprint gives its measured total; otherwise every
    direct requirement is assumed to need PACKAGES_PER_REQUIREMENT downloads.
    """
    if fingerprint in history.total_seconds:
        return history.total_seconds[fingerprint] * HISTORY_MARGIN
    packages = max(1, requirement_count) * PACKAGES_PER_REQUIREMENT
    downloads = [heuristic_seconds(Task("", "download"))] * packages
    return resolve_seconds(packages, 0) + makespan(downloads, 4)


def estimate_tasks(tasks: Sequence[Task], history: History, *, download_jobs: int, build_jobs: int) -> float:
    """Estimate the wall time of the downloads and builds that follow the resolve step.

    Downloads and builds run in separate pools at the same time, so the longer
    of the two decides.
    """
    downloads = [task_seconds(t, history) for t in tasks if t.kind == "download"]
    builds = [task_seconds(t, history) for t in tasks if t.kind == "build"]
    return max(makespan(downloads, download_jobs), makespan(builds, build_jobs), 0.0)


def remaining_seconds(
    pending: Sequence[Task],
    running: Mapping[Task, float],
    history: History,
    *,
    download_jobs: int,
    build_jobs: int,
) -> float:
    """Revise the estimate while tasks run: `running` maps each task to its seconds so far."""
    # A running task that passed its estimate is assumed to be about to end.
    left_of_running = [max(0.0, task_seconds(t, history) - elapsed) for t, elapsed in running.items()]
    rest = estimate_tasks(pending, history, download_jobs=download_jobs, build_jobs=build_jobs)
    return max(rest, max(left_of_running, default=0.0))


def comparison_text(estimated: float, actual: float) -> str:
    """Return the closing line that compares the estimate with the actual time."""
    return f"took {format_duration(actual)}, estimated {format_duration(estimated)}"
