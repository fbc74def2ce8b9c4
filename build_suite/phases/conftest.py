"""Parametrizes the per-service phase tests with the services of the build's configuration."""

from plugins.harness import build_session


def pytest_generate_tests(metafunc):
    if "service_name" not in metafunc.fixturenames:
        return
    state = build_session(metafunc.config)
    names = [service.name for service in state.config.services] if state else []
    metafunc.parametrize("service_name", names)
