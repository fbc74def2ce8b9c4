"""Environment phase: one test per check, so that each check shows in the reports on its own."""

import pytest

CHECKS = ["configuration", "tools", "engine", "python", "disk", "memory", "base images"]


@pytest.mark.parametrize("name", CHECKS)
def test_environment(environment, name):
    check = environment[name]
    assert check.ok, check.message()
    if check.warning:
        print(f"warning: {check.warning}: {check.detail}")
