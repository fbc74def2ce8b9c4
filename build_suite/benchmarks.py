"""Benchmark figures of a build and their comparison with the previous build's.

Each figure is a number where larger is worse (bytes, seconds, memory). A
figure whose ratio to the previous build's passes `warn_ratio` warns, and one
that passes `fail_ratio` is a regression that warns or fails, as configured.
The history file keeps the figures of earlier builds beside the reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from build_suite.record import write_json_atomic

HISTORY_LIMIT = 50  # builds kept in the history file


@dataclass(frozen=True)
class Figure:
    service: str
    name: str
    value: float
    unit: str


@dataclass(frozen=True)
class Comparison:
    figure: Figure
    previous: float | None
    ratio: float | None
    verdict: str  # "new", "ok", "warn" or "regression"

    def message(self) -> str:
        figure = self.figure
        value = format_value(figure.value, figure.unit)
        if self.previous is None:
            return f"{figure.service} {figure.name}: {value} (no previous build to compare)"
        return (f"{figure.service} {figure.name}: {value}, previous {format_value(self.previous, figure.unit)}, "
                f"{self.ratio:.2f}x: {self.verdict}")


def format_value(value: float, unit: str) -> str:
    """Format a figure for people: bytes as MB, other units as they are."""
    if unit == "bytes":
        return f"{value / 1e6:.1f} MB"
    return f"{value:g} {unit}"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values` (fraction 0.5 for p50, 0.95 for p95)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def compare(figure: Figure, previous: float | None, warn_ratio: float, fail_ratio: float) -> Comparison:
    """Compare a figure with the previous build's value of the same figure."""
    if previous is None:
        return Comparison(figure, None, None, "new")
    if previous <= 0:
        ratio = math.inf if figure.value > 0 else 1.0
    else:
        ratio = figure.value / previous
    if ratio >= fail_ratio:
        verdict = "regression"
    elif ratio >= warn_ratio:
        verdict = "warn"
    else:
        verdict = "ok"
    return Comparison(figure, previous, ratio, verdict)


def previous_values(history: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Return the latest build's value of each (service, figure) from the history."""
    if not history:
        return {}
    latest = history[-1]
    return {(item["service"], item["name"]): float(item["value"]) for item in latest.get("figures", [])}


def load_history(path: Path) -> list[dict[str, Any]]:
    """Read the benchmark history; a missing file is an empty history, a damaged one raises ValueError."""
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid benchmark history ({error}); delete the file to start a new one") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: invalid benchmark history (expected a JSON array); delete the file to start a new one")
    return data


def append_history(path: Path, build_id: str, figures: Sequence[Figure]) -> None:
    history = load_history(path)
    history.append({"build_id": build_id, "figures": [asdict(figure) for figure in figures]})
    write_json_atomic(path, history[-HISTORY_LIMIT:])
