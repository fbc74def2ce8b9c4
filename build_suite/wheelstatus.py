"""Events, progress snapshots and the result of the wheelhouse phase, and the text shown for them.

The text functions are pure, so the live monitor and the reports can render
the same snapshot however they write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from build_suite import estimate
from build_suite.manifest import WheelRecord


@dataclass(frozen=True)
class Step:
    """An event of the phase itself: `kind` is check, remove, estimate, resolve, download, build, reuse or done."""

    kind: str
    text: str
    package: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Progress:
    """A snapshot for the live status: `running` pairs each running task's label with its seconds so far."""

    phase: str
    done: int
    total: int
    running: tuple[tuple[str, float], ...]
    elapsed: float
    estimated_total: float | None


@dataclass(frozen=True)
class WheelhouseResult:
    """The outcome of the phase. `status` is reused (pip never ran), updated or built."""

    output: Path
    status: str
    wheels: tuple[WheelRecord, ...]
    build_deps: tuple[WheelRecord, ...]
    downloaded: tuple[str, ...]
    built: tuple[str, ...]
    reused: tuple[str, ...]
    removed: tuple[str, ...]
    estimated_seconds: float
    duration: float
    pip_runs: int
    manifest_path: Path
    # The tool whose resolution the wheelhouse holds: "pip", or "uv" when pip's offline check agreed.
    resolver: str = "pip"

    @property
    def summary(self) -> str:
        return summary_text(self)


def progress_text(progress: Progress) -> str:
    """Return the one-line live status for `progress`."""
    text = f"wheelhouse: {progress.phase}"
    if progress.total:
        text += f" {progress.done}/{progress.total}"
    if progress.running:
        # A build or download tells more than the resolve it runs beside, so it is named first.
        named = [item for item in progress.running if not item[0].startswith("resolving")] or list(progress.running)
        label, seconds = max(named, key=lambda item: item[1])
        others = len(progress.running) - 1
        text += f", {label} ({estimate.format_duration(seconds)})"
        if others:
            text += f" and {others} more"
    text += f", {estimate.format_duration(progress.elapsed)} elapsed"
    if progress.estimated_total is not None:
        left = progress.estimated_total - progress.elapsed
        if left >= 1.0:
            text += f", about {estimate.format_duration(left)} left"
        else:
            # Past the estimate, "0s left" would be false, so the text states that the estimate was too short.
            text += f", over the estimate of {estimate.format_duration(progress.estimated_total)}"
    return text


def summary_text(result: WheelhouseResult) -> str:
    """Return the closing line of the phase."""
    if result.status == "reused":
        head = f"wheelhouse reused: {len(result.wheels)} wheels verified, pip not run"
    else:
        head = (
            f"wheelhouse {result.status}: {len(result.wheels)} wheels "
            f"({len(result.downloaded)} downloaded, {len(result.built)} built, {len(result.reused)} reused"
            + (f", {len(result.removed)} removed" if result.removed else "")
            + ")"
        )
    return f"{head}; {estimate.comparison_text(result.estimated_seconds, result.duration)}"
