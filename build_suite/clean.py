"""The `--clean` option: remove what earlier builds of a project left, before a new build starts."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from build_suite.config import BuildConfig
from build_suite.containers import remove_labelled
from build_suite.engine import connect_engine
from build_suite.errors import BuildSuiteError
from build_suite.heartbeat import Heartbeat

PROJECT_LABEL = "build-suite.project"
# Kept by --clean: the timing and benchmark history that estimates and comparisons learn from.
KEPT_REPORT_ENTRIES = ("history",)


def clean_reports(report_dir: Path) -> list[str]:
    """Remove everything in the reports folder except the history; return what was removed."""
    removed = []
    if not report_dir.is_dir():
        return removed
    for entry in sorted(report_dir.iterdir()):
        if entry.name in KEPT_REPORT_ENTRIES or entry.name == ".gitkeep":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


def clean_build(
    config: BuildConfig, report_dir: Path, say: Callable[[str], None], status: Callable[[str], None] | None = None
) -> None:
    """Remove the project's wheelhouse, its labelled containers, networks and images, and its reports.

    `say` prints each result. `status` shows a heartbeat while the engine
    removes images, which can take many seconds.
    """
    wheelhouse = config.wheelhouse.output
    if wheelhouse.is_dir():
        shutil.rmtree(wheelhouse)
        say(f"clean: removed the wheelhouse {wheelhouse}")
    removed = clean_reports(report_dir)
    say(f"clean: removed {len(removed)} entries from {report_dir} (the history is kept)")
    label = f"{PROJECT_LABEL}={config.project.name}"
    try:
        connection = connect_engine()
    except BuildSuiteError as error:
        say(f"clean: engine unreachable, containers and images not removed: {error.message}")
        return
    try:
        with Heartbeat("clean", status or say) as beat:
            beat.update(f"removing the containers, networks and images labelled {label}")
            result = remove_labelled(connection.client, label, images=True)
    finally:
        connection.close()
    say(f"clean: removed {len(result.containers)} containers, {len(result.networks)} networks and "
        f"{len(result.images)} images labelled {label}")
