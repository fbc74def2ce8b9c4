"""The build record: the facts of one build, written as the `build` object of the JSON report.

The record is filled in as the build runs: each phase adds its outcome and
duration, and the phases that produce artifacts add their own section
(`wheelhouse`, `images`, `containers`, ...). Nothing in it is a fixed value:
a phase that did not run stays `not run`, and its section stays null.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PHASES = ("environment", "wheelhouse", "images", "containers", "integration", "benchmark", "security", "docs")
PHASE_SECTIONS = ("wheelhouse", "validation", "images", "containers", "integration", "benchmark", "security",
                  "docs")
SCHEMA_VERSION = 1


def new_build_id(now: dt.datetime | None = None) -> str:
    """Return a sortable, unique build id such as 20261204-201502-3fa9."""
    moment = now or dt.datetime.now()
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class PhaseResult:
    outcome: str = "not run"
    duration: float = 0.0
    tests: int = 0
    failed: int = 0
    skipped: int = 0
    start: float | None = None  # seconds from the build's start to the phase's first test

    def add(self, outcome: str, duration: float) -> None:
        self.tests += 1
        self.duration += duration
        if outcome == "failed":
            self.failed += 1
        elif outcome == "skipped":
            self.skipped += 1
        self.outcome = phase_outcome(self)


def phase_outcome(result: PhaseResult) -> str:
    """Combine a phase's test outcomes: any failure fails it, all skipped skips it."""
    if result.tests == 0:
        return "not run"
    if result.failed:
        return "failed"
    if result.skipped == result.tests:
        return "skipped"
    return "passed"


@dataclass
class BuildRecord:
    build_id: str
    project: dict[str, str]
    config_path: str
    config_digest: str
    marker_expression: str
    started: str = field(default_factory=utc_now)
    finished: str | None = None
    duration: float = 0.0
    outcome: str = "running"
    running_phase: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, PhaseResult] = field(default_factory=lambda: {name: PhaseResult() for name in PHASES})
    sections: dict[str, Any] = field(default_factory=lambda: {name: None for name in PHASE_SECTIONS})
    artifacts: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_section(self, name: str, value: Any) -> None:
        if name not in self.sections:
            raise KeyError(f"unknown report section {name!r}; expected one of {', '.join(PHASE_SECTIONS)}")
        with self._lock:
            self.sections[name] = value

    def add_test(self, phase: str, outcome: str, duration: float) -> None:
        with self._lock:
            self.phases[phase].add(outcome, duration)

    def to_json_sections(self) -> dict[str, Any]:
        """Return the report sections and environment facts, as an xdist worker sends them to the controller."""
        with self._lock:
            return json.loads(json.dumps({"environment": self.environment, "sections": self.sections},
                                         default=str))

    def merge_sections(self, worker: dict[str, Any]) -> None:
        """Merge the sections that one xdist worker filled in into this (the controller's) record."""
        with self._lock:
            self.environment = merge_section(self.environment, worker.get("environment"))
            for name, value in (worker.get("sections") or {}).items():
                if name in self.sections:
                    self.sections[name] = merge_section(self.sections[name], value)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "build_id": self.build_id,
            "project": self.project,
            "config": {"path": self.config_path, "sha256": self.config_digest},
            "marker_expression": self.marker_expression,
            "started": self.started,
            "finished": self.finished,
            "duration": round(self.duration, 3),
            "outcome": self.outcome,
            "running_phase": self.running_phase,
            "environment": self.environment,
            "phases": {name: {"outcome": result.outcome, "duration": round(result.duration, 3),
                              "tests": result.tests, "failed": result.failed, "skipped": result.skipped,
                              "start": None if result.start is None else round(result.start, 3)}
                       for name, result in self.phases.items()},
            **{name: value for name, value in self.sections.items()},
            "artifacts": self.artifacts,
        }


def build_outcome(exit_status: int, phases: dict[str, PhaseResult]) -> str:
    """Map pytest's exit status and the phase results to passed, failed, interrupted or error."""
    if exit_status == 2:
        return "interrupted"
    if exit_status in (3, 4):
        return "error"
    if exit_status == 5:
        return "no tests"
    if any(result.outcome == "failed" for result in phases.values()) or exit_status == 1:
        return "failed"
    return "passed"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` through a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def merge_section(ours: Any, theirs: Any) -> Any:
    """Merge two workers' values of one report section.

    Lists of per-service records (images, containers, benchmark figures) keep one entry per service
    and name, the first one merged. Other lists are concatenated without repeats, and dicts are merged
    key by key.
    """
    if ours is None:
        return theirs
    if theirs is None:
        return ours
    if isinstance(ours, dict) and isinstance(theirs, dict):
        merged = dict(ours)
        for key, value in theirs.items():
            merged[key] = merge_section(merged.get(key), value)
        return merged
    if isinstance(ours, list) and isinstance(theirs, list):
        keys = {record_key(item) for item in ours} - {None}
        merged_list = list(ours)
        for item in theirs:
            key = record_key(item)
            if key is None and item not in merged_list:
                merged_list.append(item)
            elif key is not None and key not in keys:
                merged_list.append(item)
                keys.add(key)
        return merged_list
    return ours


def record_key(item: Any) -> tuple[Any, Any] | None:
    """Return the (service, name) of a per-service record, or None for any other list item."""
    if isinstance(item, dict) and "service" in item:
        return (item["service"], item.get("name"))
    return None
