"""Tests of the wheelhouse time estimate: heuristics, learning from history and persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from build_suite import estimate
from build_suite.estimate import History, Task


def test_heuristic_sdist_longer_than_wheel() -> None:
    size = 500_000
    assert estimate.heuristic_seconds(Task("a", "build", size)) > estimate.heuristic_seconds(Task("a", "download", size))


def test_heuristic_grows_with_size() -> None:
    for kind in ("build", "download"):
        small = estimate.heuristic_seconds(Task("a", kind, 10_000))
        large = estimate.heuristic_seconds(Task("a", kind, 10_000_000))
        assert large > small


def test_heuristic_errs_long_for_small_sdist() -> None:
    # A pure-Python sdist such as docopt 0.6.2 (25 kB) builds in about 3 to 5 s
    # here; the heuristic must not promise less.
    assert estimate.heuristic_seconds(Task("docopt", "build", 25_000)) >= 10


def test_history_replaces_heuristic() -> None:
    history = History()
    history.record_build("docopt", 4.0)
    history.record_download("idna", 0.2, 70_000)
    assert estimate.task_seconds(Task("docopt", "build"), history) == pytest.approx(4.0 * estimate.HISTORY_MARGIN)
    assert estimate.task_seconds(Task("idna", "download"), history) == pytest.approx(0.2 * estimate.HISTORY_MARGIN)
    assert estimate.task_seconds(Task("idna", "build"), history) == estimate.heuristic_seconds(Task("idna", "build"))


def test_history_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "wheelhouse-history.json"
    history = History()
    history.record_build("docopt", 4.25)
    history.record_download("idna", 0.5, 70_000)
    history.total_seconds["fp"] = 12.0
    estimate.save_history(path, history)
    loaded = estimate.load_history(path)
    assert loaded.packages["docopt"].build_seconds == 4.25
    assert loaded.packages["idna"].download_seconds == 0.5
    assert loaded.packages["idna"].size == 70_000
    assert loaded.total_seconds == {"fp": 12.0}


@pytest.mark.parametrize("content", ["", "{bad", '{"format": 7}', '{"format": 1, "packages": []}'])
def test_history_invalid_is_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "history.json"
    path.write_text(content)
    history = estimate.load_history(path)
    assert history.packages == {}


def test_makespan_parallel_workers() -> None:
    assert estimate.makespan([4, 4, 4, 4], 2) == 8
    assert estimate.makespan([10, 1, 1], 2) == 10
    assert estimate.makespan([], 3) == 0
    assert estimate.makespan([3, 3], 1) == 6


def test_estimate_tasks_learns_from_history() -> None:
    tasks = [Task("docopt", "build", 25_000), Task("idna", "download", 70_000)]
    unknown = estimate.estimate_tasks(tasks, History(), download_jobs=4, build_jobs=2)
    history = History()
    history.record_build("docopt", 3.0)
    history.record_download("idna", 0.1, 70_000)
    learned = estimate.estimate_tasks(tasks, history, download_jobs=4, build_jobs=2)
    assert learned == pytest.approx(3.0 * estimate.HISTORY_MARGIN)
    assert unknown > learned


def test_estimate_before_resolve_uses_same_inputs_total() -> None:
    history = History(total_seconds={"fp": 40.0})
    assert estimate.estimate_before_resolve(history, "fp", 3) == pytest.approx(40.0 * estimate.HISTORY_MARGIN)
    assert estimate.estimate_before_resolve(history, "other", 3) > 0


def test_remaining_counts_running_tasks() -> None:
    history = History()
    history.record_build("docopt", 10.0)
    running = {Task("docopt", "build"): 4.0}
    left = estimate.remaining_seconds([], running, history, download_jobs=4, build_jobs=2)
    assert left == pytest.approx(10.0 * estimate.HISTORY_MARGIN - 4.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45.4, "45s"), (130, "2m10s"), (3600, "1h00m"), (3725, "1h02m"), (-3, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert estimate.format_duration(seconds) == text


def test_comparison_text() -> None:
    assert estimate.comparison_text(130, 62) == "took 1m02s, estimated 2m10s"
