"""Build the status text of the wheelhouse phase from plain data.

Every function here is pure: it takes snapshots and numbers and returns text,
so the wording can be tested without processes, threads or a terminal. The
code that samples and writes the text lives in monitors.py and output.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from build_suite.monitors import ProcessSample, WheelFolderSample
    from build_suite.piprunner import RunResult

SEPARATOR = " · "

# Process names that describe the work better than "python" or "sh" do, most
# telling first: a compiler proper before its driver, build tools after them.
NOTABLE_PROCESSES = (
    "cc1", "cc1plus", "rustc", "gfortran", "f951", "nvcc",
    "gcc", "g++", "clang", "clang++", "c++", "cc", "ld", "as",
    "cargo", "cmake", "ninja", "make", "meson", "maturin", "cython",
    "git", "hg", "svn",
)
PROCESS_NAME_LIMIT = 2
TAIL_IN_MESSAGE = 15


@dataclass(frozen=True)
class ProgressSnapshot:
    """The state of one pip run at one moment.

    `activity` is one of "starting", "collecting", "downloading", "preparing",
    "building", "built", "failed" and "finished". `step` is pip's own name of
    a build step, such as "Installing build dependencies". `errors` counts
    pip's "ERROR:" lines and `failed` names the packages whose build failed.
    Times are in seconds.
    """

    activity: str = "starting"
    package: str | None = None
    step: str | None = None
    activity_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    packages_done: int = 0
    packages_seen: int = 0
    packages_total: int | None = None
    downloaded_bytes: int = 0
    errors: int = 0
    failed: tuple[str, ...] = ()


def format_duration(seconds: float | None) -> str:
    """Format a duration as "41s", "1m10s" or "2h05m"; negative or None gives "0s"."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "0s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_size(size: float | None) -> str:
    """Format a byte count in decimal units, as pip does: "512 B", "3.1 MB", "31 MB"."""
    if size is None or size != size or size < 0:
        size = 0
    if size < 1000:
        return f"{int(size)} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            break
    # One decimal below 10 keeps small sizes informative; more would be noise.
    if value < 10:
        return f"{value:.1f} {unit}"
    return f"{value:.0f} {unit}"


def format_rate(bytes_per_second: float | None) -> str:
    """Format a transfer rate, for example "3.1 MB/s"."""
    return f"{format_size(bytes_per_second)}/s"


def notable_process_names(names: Sequence[str], limit: int = PROCESS_NAME_LIMIT) -> list[str]:
    """Pick up to `limit` names that best describe what a process tree does.

    Compilers and build tools come first in the order of NOTABLE_PROCESSES,
    then the other names in their given order.
    """
    unique = list(dict.fromkeys(names))
    notable = [name for name in NOTABLE_PROCESSES if name in unique]
    others = [name for name in unique if name not in NOTABLE_PROCESSES]
    return (notable + others)[:limit]


def format_activity(progress: ProgressSnapshot) -> str:
    """Describe what pip does now, for example "building pyyaml from source"."""
    package = progress.package or "requirements"
    if progress.activity == "building":
        return f"building {package} from source"
    if progress.activity == "downloading":
        return f"downloading {package}"
    if progress.activity == "collecting":
        return f"collecting {package}"
    if progress.activity == "preparing":
        step = (progress.step or "preparing").lower()
        return f"{step} for {package}" if progress.package else step
    if progress.activity == "built":
        return f"built {package}"
    if progress.activity == "failed":
        return f"build of {package} failed"
    if progress.activity == "finished":
        return "finishing"
    return "starting pip"


def format_processes(sample: ProcessSample | None) -> str:
    """Describe a process tree sample: "3 processes (gcc, cc1), 180% CPU"."""
    if sample is None or sample.count == 0:
        return ""
    noun = "process" if sample.count == 1 else "processes"
    names = notable_process_names(sample.names)
    listed = f" ({', '.join(names)})" if names else ""
    return f"{sample.count} {noun}{listed}, {sample.cpu_percent:.0f}% CPU"


def format_packages(progress: ProgressSnapshot) -> str:
    """Count packages: "23/77 packages" with a known total, else "23 done, 40 found"."""
    if progress.packages_total:
        return f"{progress.packages_done}/{progress.packages_total} packages"
    if progress.packages_seen:
        return f"{progress.packages_done} done, {progress.packages_seen} found"
    return ""


def format_status(
    progress: ProgressSnapshot,
    sample: ProcessSample | None = None,
    network_rate: float | None = None,
    wheels: WheelFolderSample | None = None,
    eta_seconds: float | None = None,
) -> str:
    """Build the one-line status of a pip run.

    Example: "building pyyaml from source: 3 processes (gcc), 180% CPU, 41s ·
    23/77 packages · 31 MB · about 1m10s left". The size is the wheel folder's
    when a wheel folder sample is given, else the sum of announced downloads.
    """
    details = []
    processes = format_processes(sample) if progress.activity in ("building", "preparing") else ""
    if processes:
        details.append(processes)
    if progress.activity == "downloading" and network_rate:
        details.append(format_rate(network_rate))
    if progress.activity not in ("starting", "finished", "failed"):
        details.append(format_duration(progress.activity_seconds))

    parts = [format_activity(progress) + (": " + ", ".join(details) if details else "")]
    packages = format_packages(progress)
    if packages:
        parts.append(packages)
    if wheels is not None and wheels.count:
        parts.append(f"{format_size(wheels.total_bytes)} in {wheels.count} wheels")
    elif progress.downloaded_bytes:
        parts.append(f"{format_size(progress.downloaded_bytes)} downloaded")
    if progress.failed:
        parts.append(f"{len(progress.failed)} failed ({', '.join(progress.failed[:3])})")
    elif progress.errors:
        parts.append(f"{progress.errors} error" + ("" if progress.errors == 1 else "s"))
    if eta_seconds is not None and eta_seconds >= 0:
        parts.append(f"about {format_duration(eta_seconds)} left")
    return SEPARATOR.join(parts)


def looks_like_prompt(text: str) -> bool:
    """Tell whether an unended output line looks like a question waiting for input."""
    stripped = text.rstrip()
    return bool(stripped) and stripped.endswith((":", "?", ">", "]"))


def format_run_stop(
    result: RunResult,
    *,
    timeout: float | None = None,
    stall_timeout: float | None = None,
    program: str = "pip",
    tail_lines: int = TAIL_IN_MESSAGE,
) -> str:
    """Explain why a run stopped early: the limit, what was running and the last output.

    Returns "" for a run that ended on its own.
    """
    if result.timed_out:
        limit = f" (limit {format_duration(timeout)})" if timeout is not None else ""
        headline = f"{program} timed out after {format_duration(result.duration)}{limit}"
    elif result.stalled:
        quiet = format_duration(stall_timeout) if stall_timeout is not None else "too long"
        headline = (
            f"{program} stalled after {format_duration(result.duration)}: "
            f"no output, CPU use or network traffic for {quiet}"
        )
    elif result.interrupted:
        headline = f"{program} was interrupted after {format_duration(result.duration)}"
    elif result.cancelled:
        headline = f"{program} was cancelled after {format_duration(result.duration)}"
    else:
        return ""

    lines = [headline]
    if result.last_partial and looks_like_prompt(result.last_partial):
        lines.append(f"  it waits for input: {result.last_partial!r}")
        lines.append("  pip runs with --no-input; give credentials in the index URL or a keyring instead")
    elif result.last_partial:
        lines.append(f"  unfinished line: {result.last_partial!r}")
    if result.running:
        lines.append("  running when stopped:")
        lines.extend(f"    {command}" for command in result.running)
    if result.tail:
        lines.append(f"  last {min(len(result.tail), tail_lines)} lines of output:")
        lines.extend(f"    {line}" for line in result.tail[-tail_lines:])
    return "\n".join(lines)
