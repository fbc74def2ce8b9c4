"""Loads build-suite's pytest plugins for every session started in this repository."""

pytest_plugins = ["plugins.harness", "plugins.monitoring", "plugins.reporting", "plugins.fixtures"]
