"""Error classes of build-suite.

Every error carries a message that names the file, service or package involved
and a hint with what to do next. The exit codes follow pytest's: a bad
configuration is a usage error (4), a failed build is a test failure (1).
"""

from __future__ import annotations


class BuildSuiteError(Exception):
    """Base class for expected failures: shown to the user without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  what to do: {self.hint}"
        return self.message


class ConfigError(BuildSuiteError):
    """An invalid build configuration: the file, the key and what was expected."""

    exit_code = 4

    def __init__(self, path: object, key: str, message: str, hint: str = "") -> None:
        where = f"{path}: {key}" if key else f"{path}"
        super().__init__(f"{where}: {message}", hint)
        self.path = path
        self.key = key


class EngineError(BuildSuiteError):
    """The container engine is unreachable or failed a request."""


class WheelhouseError(BuildSuiteError):
    """The wheelhouse could not be built or is invalid for the target."""


class ImageBuildError(BuildSuiteError):
    """An image failed to build."""


class ContainerError(BuildSuiteError):
    """A container failed to start or to become healthy."""


class LockBusyError(BuildSuiteError):
    """Another build of the same project holds the build lock."""
