"""Benchmark figures: percentiles, comparison with the previous build, the history file, and the phase."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from build_suite.benchmarks import (
    HISTORY_LIMIT,
    Figure,
    append_history,
    compare,
    format_value,
    load_history,
    percentile,
    previous_values,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_phases import ENGINE_PROBLEM, copy_demo_stack, remove_project, run_build  # noqa: E402

SIZE = Figure("api", "image size", 200_000_000.0, "bytes")


@pytest.mark.parametrize("fraction, expected", [(0.0, 1.0), (0.1, 1.0), (0.5, 5.0), (0.51, 6.0), (0.95, 10.0),
                                                 (1.0, 10.0)])
def test_percentile_nearest_rank(fraction: float, expected: float) -> None:
    values = [7.0, 3.0, 10.0, 1.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0]
    assert percentile(values, fraction) == expected


def test_percentile_single_and_empty() -> None:
    assert percentile([4.2], 0.5) == 4.2
    assert percentile([4.2], 0.95) == 4.2
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


@pytest.mark.parametrize("previous, verdict, ratio", [
    (None, "new", None),
    (200_000_000.0, "ok", 1.0),
    (250_000_000.0, "ok", 0.8),
    (160_000_000.0, "warn", 1.25),
    (133_400_000.0, "warn", 200 / 133.4),
    (133_333_333.0, "regression", 1.5),
    (100_000_000.0, "regression", 2.0),
])
def test_compare_verdicts(previous: float | None, verdict: str, ratio: float | None) -> None:
    comparison = compare(SIZE, previous, warn_ratio=1.25, fail_ratio=1.5)
    assert comparison.verdict == verdict
    assert comparison.previous == previous
    if ratio is None:
        assert comparison.ratio is None
    else:
        assert comparison.ratio == pytest.approx(ratio, rel=1e-6)


def test_compare_with_zero_previous() -> None:
    assert compare(SIZE, 0.0, 1.25, 1.5).verdict == "regression"
    assert compare(Figure("api", "memory", 0.0, "bytes"), 0.0, 1.25, 1.5).verdict == "ok"


def test_comparison_message_names_figure() -> None:
    assert compare(SIZE, None, 1.25, 1.5).message() == "api image size: 200.0 MB (no previous build to compare)"
    assert compare(SIZE, 100_000_000.0, 1.25, 1.5).message() == (
        "api image size: 200.0 MB, previous 100.0 MB, 2.00x: regression")
    assert format_value(1.5, "ms") == "1.5 ms"


def test_previous_values_from_latest_build() -> None:
    history = [
        {"build_id": "one", "figures": [{"service": "api", "name": "image size", "value": 1, "unit": "bytes"}]},
        {"build_id": "two", "figures": [{"service": "api", "name": "memory", "value": 5, "unit": "bytes"},
                                        {"service": "worker", "name": "memory", "value": 7, "unit": "bytes"}]},
    ]
    assert previous_values(history) == {("api", "memory"): 5.0, ("worker", "memory"): 7.0}
    assert previous_values([]) == {}


def test_history_round_trip_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "history" / "benchmarks.json"
    assert load_history(path) == []
    for number in range(HISTORY_LIMIT + 3):
        append_history(path, f"build-{number}", [Figure("api", "memory", float(number), "bytes")])
    history = load_history(path)
    assert len(history) == HISTORY_LIMIT
    assert history[0]["build_id"] == "build-3"
    assert history[-1] == {"build_id": f"build-{HISTORY_LIMIT + 2}",
                           "figures": [{"service": "api", "name": "memory", "value": float(HISTORY_LIMIT + 2),
                                        "unit": "bytes"}]}


@pytest.mark.parametrize("text, problem", [("{not json", "invalid benchmark history"),
                                           ('{"build_id": "x"}', "expected a JSON array")])
def test_damaged_history_raises(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "benchmarks.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as raised:
        load_history(path)
    assert str(path) in str(raised.value)
    assert "delete the file" in str(raised.value)


# ---------------------------------------------------------------- the benchmark phase through the harness


@pytest.fixture(scope="module")
def bench_stack(tmp_path_factory: pytest.TempPathFactory):
    if ENGINE_PROBLEM:
        pytest.skip(f"no container engine: {ENGINE_PROBLEM}")
    project = "bench-demo"
    config = copy_demo_stack(tmp_path_factory.mktemp("bench") / "stack", project)
    yield config
    remove_project(project)


@pytest.fixture(scope="module")
def api_image_size(bench_stack: Path) -> int:
    """Return the api image's size from a first benchmark run, which has no history to compare with."""
    run = run_build(bench_stack, bench_stack.parent / "reports-first", "-m", "benchmark")
    assert run.returncode == 0, run.output[-6000:]
    verdicts = {figure["verdict"] for figure in run.build["benchmark"]["figures"]}
    assert verdicts == {"new"}, run.build["benchmark"]
    return next(image["size"] for image in run.build["images"] if image["service"] == "api")


def write_half_size_history(report_dir: Path, size: int) -> Path:
    path = report_dir / "history" / "benchmarks.json"
    path.parent.mkdir(parents=True)
    figure = {"service": "api", "name": "image size", "value": size / 2, "unit": "bytes"}
    path.write_text(json.dumps([{"build_id": "earlier-build", "figures": [figure]}]))
    return path


def api_size_figure(run) -> dict:
    figures = run.build["benchmark"]["figures"]
    return next(figure for figure in figures if figure["service"] == "api" and figure["name"] == "image size")


@pytest.mark.slow
def test_doubled_image_size_warns(bench_stack: Path, api_image_size: int) -> None:
    report_dir = bench_stack.parent / "reports-warn"
    write_half_size_history(report_dir, api_image_size)

    run = run_build(bench_stack, report_dir, "-m", "benchmark")
    assert run.returncode == 0, run.output[-6000:]
    figure = api_size_figure(run)
    assert figure["verdict"] == "regression"
    assert figure["ratio"] == pytest.approx(2.0, rel=0.01)
    assert figure["previous"] == api_image_size / 2
    assert run.build["benchmark"]["previous_build"] == "earlier-build"
    assert re.search(r"BenchmarkRegression: api image size: [\d.]+ MB, previous [\d.]+ MB, 2\.00x: regression",
                     run.output), run.output[-4000:]
    assert run.outcomes["build_suite/phases/test_benchmark.py::test_service_figures[api]"] == "passed"
    assert load_history(report_dir / "history" / "benchmarks.json")[-1]["build_id"] == run.build["build_id"]


@pytest.mark.slow
def test_doubled_image_size_fails_when_configured(bench_stack: Path, api_image_size: int) -> None:
    text = bench_stack.read_text()
    assert "[benchmark]" not in text
    bench_stack.write_text(text.replace("[integration]", '[benchmark]\non_regression = "fail"\n\n[integration]'))
    report_dir = bench_stack.parent / "reports-fail"
    write_half_size_history(report_dir, api_image_size)

    run = run_build(bench_stack, report_dir, "-m", "benchmark")
    assert run.returncode == 1, run.output[-6000:]
    assert run.outcomes["build_suite/phases/test_benchmark.py::test_service_figures[api]"] == "failed"
    assert run.outcomes["build_suite/phases/test_benchmark.py::test_service_figures[worker]"] == "passed"
    assert "benchmark regressions past fail_ratio 1.5" in run.output
    assert re.search(r"api image size: [\d.]+ MB, previous [\d.]+ MB, 2\.00x: regression", run.output)
    assert api_size_figure(run)["verdict"] == "regression"
