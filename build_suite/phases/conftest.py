"""Parametrizes the phase tests from the build's configuration: one test per service or command."""

from build_suite.integration import collect_tests
from plugins.harness import build_session


def pytest_generate_tests(metafunc):
    state = build_session(metafunc.config)
    if "service_name" in metafunc.fixturenames:
        names = [service.name for service in state.config.services] if state else []
        metafunc.parametrize("service_name", names)
    if "benchmark_command" in metafunc.fixturenames:
        commands = list(state.config.benchmark.commands) if state else []
        # One None case when none are configured, so the test skips with a reason a person can read.
        cases = commands or [None]
        metafunc.parametrize("benchmark_command", cases,
                             ids=[" ".join(command) if command else "none" for command in cases])
    if "integration_case" in metafunc.fixturenames:
        metafunc.parametrize("integration_case", integration_cases(state))


def integration_cases(state):
    """One case per integration test; None when none are configured, an error text when collection fails."""
    tests = state.config.integration.tests if state else None
    if tests is None:
        return [None]
    try:
        return collect_tests(tests) or [None]
    except RuntimeError as error:
        return [f"error: {error}"]
