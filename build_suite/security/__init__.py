"""Security checks of a build: secrets in build contexts, known vulnerabilities
of pinned packages, Dockerfile lint and built-image checks.

Each module returns findings that name the file, image, package or variable
involved and never carry a secret value.
"""

from __future__ import annotations

from build_suite.errors import BuildSuiteError


class SecurityError(BuildSuiteError):
    """A security check could not run: a tool is missing or its input is invalid."""
