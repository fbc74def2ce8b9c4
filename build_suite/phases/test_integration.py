"""Integration phase: the project's own integration tests, one result each, against the running containers."""

import pytest

from build_suite.containers import published_port
from build_suite.heartbeat import Heartbeat
from build_suite.integration import run_tests, url_variable
from build_suite.status import format_run_stop

pytestmark = pytest.mark.xdist_group("stack")


def service_urls(build_config, containers):
    urls = {}
    for service in build_config.services:
        container = containers.containers.get(service.name)
        port = service.probe.port or next(iter(service.ports), None)
        host_port = published_port(container, port) if container is not None and port else None
        if host_port:
            urls[service.name] = f"http://127.0.0.1:{host_port}"
    return urls


@pytest.fixture(scope="module")
def integration_run(build_config, build_state, containers, build_output):
    tests = build_config.integration.tests
    urls = service_urls(build_config, containers)
    for service, url in urls.items():
        build_output.line(f"integration: {url_variable(service)}={url}")
    with Heartbeat("integration", build_output.status) as beat:
        def on_line(line):
            beat.update(line[:120])
            build_output.log(line)

        result, outcomes = run_tests(tests, urls, on_line, build_config.integration.timeout)
    section = {"tests": str(tests), "urls": urls, "returncode": result.returncode,
               "duration": round(result.duration, 3), "results": outcomes}
    build_state.record.set_section("integration", section)
    stop = format_run_stop(result, timeout=build_config.integration.timeout, program="the integration tests")
    if stop:
        pytest.fail(stop, pytrace=False)
    return outcomes


def test_integration(integration_case, integration_run):
    if integration_case is None:
        pytest.skip("no integration tests configured: set [integration] tests in buildsuite.toml")
    if integration_case.startswith("error: "):
        pytest.fail(integration_case[len("error: "):], pytrace=False)
    outcome = integration_run.get(integration_case)
    assert outcome is not None, f"integration test {integration_case} did not run"
    if outcome["outcome"] == "skipped":
        pytest.skip(f"{integration_case}: {outcome['message']}")
    assert outcome["outcome"] == "passed", f"{integration_case} {outcome['outcome']}:\n{outcome['message']}"
