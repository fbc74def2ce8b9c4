"""Fixtures shared by the project's tests."""

from __future__ import annotations

import docker
import pytest

from build_suite.containers import remove_labelled
from build_suite.engine import EngineUnreachableError, connect_engine
from stack import cleanup_projects, engine_client, package_index  # noqa: F401 - fixtures for every test module

BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"
TEST_LABEL = "build-suite.test"


@pytest.fixture(scope="module")
def client(request: pytest.FixtureRequest):
    """A docker SDK client of the engine with the bookworm base image, or a skip that names what is missing.

    Everything that the module labelled `build-suite.test=<module name>` is removed when it ends.
    """
    try:
        connection = connect_engine()
    except EngineUnreachableError as error:
        pytest.skip(f"no container engine reachable on this machine: {error.message}")
    try:
        connection.client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        connection.close()
        pytest.skip(f"{BASE_IMAGE} is not present; scripts/setup makes it")
    yield connection.client
    remove_labelled(connection.client, f"{TEST_LABEL}={request.module.__name__.rsplit('.', 1)[-1]}", images=True)
    connection.close()
