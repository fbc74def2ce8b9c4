"""Session fixtures that chain the phases: build_config -> environment -> wheelhouse -> images -> containers.

A phase selected alone (`-m images`) still gets every prerequisite through
these fixtures, and each fixture reuses an artifact that is still valid (a
wheelhouse whose manifest matches, an image layer cache) instead of building
it again. Test order never matters for correctness.

A fixture that cannot provide its artifact fails the tests that need it with
the library's message and no traceback (`pytest.fail(..., pytrace=False)`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from build_suite.config import BuildConfig
from build_suite.engine import EngineConnection, connect_engine
from build_suite.environment import run_checks
from build_suite.errors import BuildSuiteError
from build_suite.output import Output
from plugins.harness import BuildSession, build_session


def fail(error: BuildSuiteError) -> None:
    pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def build_state(pytestconfig: pytest.Config) -> BuildSession:
    state = build_session(pytestconfig)
    if state is None:
        pytest.skip("not a build session: run the phases with `pytest build_suite`")
    return state


@pytest.fixture(scope="session")
def build_config(build_state: BuildSession) -> BuildConfig:
    return build_state.config


class EngineHolder:
    """Connects to the engine on first use; the error is kept so every phase reports the same cause."""

    def __init__(self) -> None:
        self.connection: EngineConnection | None = None
        self.error: BuildSuiteError | None = None

    def get(self) -> EngineConnection:
        if self.connection is None and self.error is None:
            try:
                self.connection = connect_engine()
            except BuildSuiteError as error:
                self.error = error
        if self.error is not None:
            raise self.error
        assert self.connection is not None
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


@pytest.fixture(scope="session")
def engine_holder() -> Iterator[EngineHolder]:
    holder = EngineHolder()
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture(scope="session")
def engine(engine_holder: EngineHolder) -> EngineConnection:
    try:
        return engine_holder.get()
    except BuildSuiteError as error:
        fail(error)
        raise


@pytest.fixture(scope="session")
def environment(build_state: BuildSession, engine_holder: EngineHolder, build_output: Output) -> dict[str, Any]:
    """Run every environment check once and record the facts in the build report."""
    checks = run_checks(build_state.config, engine_holder.get, build_output)
    build_state.record.environment.update(
        {name: check.facts for name, check in checks.items()} | environment_summary(checks))
    return checks


def environment_summary(checks: dict[str, Any]) -> dict[str, Any]:
    python = checks["python"].facts
    engine = checks["engine"].facts
    return {
        "host_python": python.get("host", {}).get("version"),
        "target": python.get("target"),
        "engine": engine,
    }
