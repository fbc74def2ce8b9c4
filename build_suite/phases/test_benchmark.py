"""Benchmark phase: image size, time to healthy, probe latency and memory, against the previous build."""

import json
import subprocess
import warnings

import pytest

from build_suite.benchmarks import Figure, append_history, compare, load_history, percentile, previous_values
from build_suite.containers import published_port
from build_suite.probes import probe_once

pytestmark = pytest.mark.xdist_group("stack")


class BenchmarkRegression(UserWarning):
    """A figure grew past the configured warning ratio."""


@pytest.fixture(scope="module")
def benchmark_state(build_state):
    path = build_state.report_dir / "history" / "benchmarks.json"
    try:
        history = load_history(path)
    except ValueError as error:
        pytest.fail(str(error), pytrace=False)
    state = {"path": path, "previous": previous_values(history), "figures": [], "section": {
        "history": str(path), "previous_build": history[-1]["build_id"] if history else None,
        "figures": [], "commands": []}}
    build_state.record.set_section("benchmark", state["section"])
    return state


def measure_service(name, build_config, images, containers, engine):
    service = build_config.service(name)
    image = images.get(name)
    outcome = containers.outcomes[name]
    container = containers.containers[name]
    figures = [Figure(name, "image size", float(image.size or 0), "bytes"),
               Figure(name, "time to healthy", round(outcome.seconds_to_healthy or 0.0, 3), "s")]

    port = published_port(container, service.probe.port) if service.probe.port else None
    latencies = []
    for _ in range(build_config.benchmark.probe_requests):
        result = probe_once(service.probe, port=port, container=container)
        assert result.healthy, f"service {name!r}: probe failed during the benchmark: {result.detail}"
        latencies.append(result.latency * 1000)
    figures.append(Figure(name, "probe latency p50", round(percentile(latencies, 0.5), 3), "ms"))
    figures.append(Figure(name, "probe latency p95", round(percentile(latencies, 0.95), 3), "ms"))

    stats = engine.client.api.stats(container.id, stream=False)
    memory = (stats.get("memory_stats") or {}).get("usage")
    if memory:
        figures.append(Figure(name, "memory", float(memory), "bytes"))
    return figures


def test_service_figures(service_name, build_config, build_state, images, containers, engine, benchmark_state,
                         build_output):
    assert containers.outcomes[service_name].status == "healthy", f"service {service_name!r} is not healthy"
    settings = build_config.benchmark
    regressions = []
    for figure in measure_service(service_name, build_config, images, containers, engine):
        comparison = compare(figure, benchmark_state["previous"].get((figure.service, figure.name)),
                             settings.warn_ratio, settings.fail_ratio)
        benchmark_state["figures"].append(figure)
        benchmark_state["section"]["figures"].append({
            "service": figure.service, "name": figure.name, "value": figure.value, "unit": figure.unit,
            "previous": comparison.previous, "ratio": comparison.ratio, "verdict": comparison.verdict})
        build_output.line(f"benchmark: {comparison.message()}")
        if comparison.verdict == "warn" or (comparison.verdict == "regression" and settings.on_regression == "warn"):
            warnings.warn(comparison.message(), BenchmarkRegression)
        elif comparison.verdict == "regression":
            regressions.append(comparison.message())
    assert not regressions, ("benchmark regressions past fail_ratio "
                             f"{settings.fail_ratio}:\n" + "\n".join(regressions))


def test_benchmark_command(benchmark_command, build_config, benchmark_state, build_output, request):
    if benchmark_command is None:
        pytest.skip("no benchmark commands configured: add [benchmark] commands to buildsuite.toml")
    request.getfixturevalue("containers")
    command = list(benchmark_command)
    completed = subprocess.run(command, capture_output=True, text=True, cwd=build_config.root, timeout=600,
                               check=False)
    entry = {"command": command, "returncode": completed.returncode}
    benchmark_state["section"]["commands"].append(entry)
    assert completed.returncode == 0, (f"benchmark command {command} failed with exit code "
                                       f"{completed.returncode}:\n{completed.stderr[-2000:]}")
    try:
        entry["result"] = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        pytest.fail(f"benchmark command {command} printed no JSON ({error}); it must print one JSON document",
                    pytrace=False)
    build_output.line(f"benchmark: command {' '.join(command)} finished")


def test_history_saved(benchmark_state, build_state):
    assert benchmark_state["figures"], "no benchmark figures were measured"
    append_history(benchmark_state["path"], build_state.record.build_id, benchmark_state["figures"])
    assert load_history(benchmark_state["path"])[-1]["build_id"] == build_state.record.build_id
