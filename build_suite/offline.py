"""Offline resolution: pip resolves the requirements from the wheelhouse alone, for the target.

The dry run is one short subprocess, so it uses subprocess.run and no live output.
pip runs through targetpip.py, so environment markers such as
`python_full_version < "3.11.3"` are evaluated for the target interpreter, not
for the one that runs pip.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from build_suite.pipargs import pip_env
from build_suite.target import TargetSpec, marker_environment, platform_tags
from build_suite.targetpip import MARKER_VARIABLE
from build_suite.validation import Problem, check_wheelhouse_files, parse_requirements_files

TARGET_PIP_SCRIPT = Path(__file__).with_name("targetpip.py")


@dataclass(frozen=True)
class OfflineResolution:
    """The result of a pip dry run against the wheelhouse: problems, or the wheels pip would install."""

    command: tuple[str, ...]
    returncode: int | None
    problems: list[Problem]
    installs: list[tuple[str, str]]


def pip_dry_run_command(
    wheelhouse: Path,
    requirement_files: Sequence[Path | str],
    target: TargetSpec,
    install_dir: Path,
    python: str = sys.executable,
) -> list[str]:
    """Build the pip command that resolves the requirements from the wheelhouse alone, for the target.

    The command needs the environment of dry_run_env, which passes the target's marker values.
    """
    command = [python, str(TARGET_PIP_SCRIPT), "install", "--dry-run", "--ignore-installed", "--no-index"]
    command += ["--find-links", str(wheelhouse), "--only-binary", ":all:", "--disable-pip-version-check", "--quiet"]
    command += ["--python-version", target.python, "--implementation", "cp", "--abi", target.abi]
    if not target.free_threaded:
        command += ["--abi", "abi3"]
    command += ["--abi", "none"]
    for platform in platform_tags(target, include_local=not target.portable):
        command += ["--platform", platform]
    # pip 23.2.1 checks Requires-Python against the running interpreter even with
    # --python-version, so check_requires_python checks it against the target instead.
    command += ["--ignore-requires-python", "--target", str(install_dir), "--report", "-"]
    for path in requirement_files:
        command += ["-r", str(path)]
    return command


def resolve_offline(
    wheelhouse: Path,
    requirement_files: Sequence[Path | str],
    target: TargetSpec,
    python: str = sys.executable,
    timeout: float = 300,
) -> OfflineResolution:
    """Run pip's resolver on the wheelhouse alone, without network or the machine's pip config."""
    with tempfile.TemporaryDirectory(prefix="build-suite-resolve-") as install_dir:
        command = pip_dry_run_command(Path(wheelhouse), requirement_files, target, Path(install_dir), python)
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=dry_run_env(target), check=False
            )
        except subprocess.TimeoutExpired:
            message = f"pip dry run timed out after {timeout:g} s"
            problem = Problem(str(wheelhouse), message, "rerun with a longer timeout")
            return OfflineResolution(tuple(command), None, [problem], [])
        except OSError as error:
            message = f"cannot run pip with {python}: {error}"
            problem = Problem(str(wheelhouse), message, "check that the Python exists and has pip installed")
            return OfflineResolution(tuple(command), None, [problem], [])

    if completed.returncode == 0:
        return OfflineResolution(tuple(command), 0, [], parse_pip_report(completed.stdout))
    # pip names the requirer of a dependency but not the requirements file of a direct requirement.
    lines, _ = parse_requirements_files(requirement_files)
    direct = {line.name: line.location for line in reversed(lines)}
    problems = parse_pip_errors(completed.stderr, str(wheelhouse), direct)
    return OfflineResolution(tuple(command), completed.returncode, problems, [])


def dry_run_env(target: TargetSpec) -> dict[str, str]:
    """Return the isolated pip environment with the target's PEP 508 marker values for targetpip.py."""
    return pip_env(isolate=True, extra={MARKER_VARIABLE: json.dumps(marker_environment(target), sort_keys=True)})


def check_offline_resolution(
    wheelhouse: Path, requirement_files: Sequence[Path | str], target: TargetSpec, python: str = sys.executable
) -> list[Problem]:
    """Return the problems of resolve_offline."""
    return resolve_offline(wheelhouse, requirement_files, target, python).problems


def parse_pip_report(stdout: str) -> list[tuple[str, str]]:
    """Return (name, version) of each distribution in pip's --report JSON."""
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        return []
    installs = []
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        installs.append((canonicalize_name(metadata.get("name", "")), metadata.get("version", "")))
    return installs


_NOT_FOUND_RE = re.compile(
    r"Could not find a version that satisfies the requirement (?P<requirement>.+?)"
    r"(?: \(from (?P<parent>.+?)\))? \(from versions: (?P<versions>[^)]*)\)"
)
# pip 24 and later append the parent, "... for missing-dep>=1 (from app-a)"; pip 23 does not.
_NO_MATCH_RE = re.compile(r"No matching distribution found for (?P<requirement>\S.*?)(?: \(from (?P<parent>.+)\))?$")
_DIRECT_RE = re.compile(r"^-r (?P<file>.+) \(line (?P<line>\d+)\)$")


def parse_pip_errors(stderr: str, wheelhouse: str, direct: Mapping[str, str] | None = None) -> list[Problem]:
    """Turn pip's error output into problems: one per missing distribution, else pip's own ERROR lines.

    `direct` maps canonical project names to the requirements file line that names them.
    """
    parents: dict[str, tuple[str | None, str]] = {}
    for match in _NOT_FOUND_RE.finditer(stderr):
        parents[match.group("requirement")] = (match.group("parent"), match.group("versions").strip())

    problems = []
    for line in stderr.splitlines():
        match = _NO_MATCH_RE.search(line)
        if match:
            requirement = match.group("requirement").strip()
            parent, versions = parents.get(requirement, (match.group("parent"), "none"))
            problems.append(_missing_distribution_problem(requirement, parent, versions, wheelhouse, direct or {}))
    if problems:
        return problems

    errors = [line.removeprefix("ERROR: ") for line in stderr.splitlines() if line.startswith("ERROR:")]
    causes = _conflict_causes(stderr)
    message = " ".join(errors) or stderr.strip()[-2000:] or "pip failed without an error message"
    if causes:
        message += " Caused by: " + "; ".join(causes)
    return [Problem(wheelhouse, message, "fix the requirements so pip can resolve them, then rebuild the wheelhouse")]


def _missing_distribution_problem(
    requirement: str, parent: str | None, versions: str, wheelhouse: str, direct: Mapping[str, str]
) -> Problem:
    name = _requirement_name(requirement)
    file = wheelhouse
    origin = ""
    requirements_line = _DIRECT_RE.match(parent) if parent else None
    if requirements_line:
        file = f"{requirements_line.group('file')}:{requirements_line.group('line')}"
    elif parent:
        parent_location = direct.get(_requirement_name(parent))
        origin = f" (required by {parent}, from {parent_location})" if parent_location else f" (required by {parent})"
    elif name in direct:
        file = direct[name]
    if file != wheelhouse:
        origin = f" (required directly by {file})"
    found = "" if versions in {"", "none"} else f"; the wheelhouse has only versions {versions}"
    return Problem(
        file,
        f"no wheel in the wheelhouse for {requirement}{origin}{found}",
        f"rebuild the wheelhouse with dependencies (pip wheel without --no-deps) so it contains {name}, "
        "or check that the wheel of it matches the target's tags",
    )


def _requirement_name(text: str) -> str:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return text


def _conflict_causes(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if line.strip() == "The conflict is caused by:":
            causes = []
            for cause in lines[index + 1 :]:
                if not cause.strip():
                    break
                causes.append(cause.strip())
            return causes
    return []


def validate_wheelhouse(
    wheelhouse: Path,
    requirement_files: Sequence[Path | str],
    target: TargetSpec,
    manifest: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> list[Problem]:
    """Run every wheelhouse check except pin conflicts, which need no wheelhouse.

    The pip dry run runs only when the other checks pass, because a broken or
    mismatched wheel would make its output harder to read.
    """
    problems = check_wheelhouse_files(wheelhouse, requirement_files, target, manifest)
    if not problems:
        problems += check_offline_resolution(wheelhouse, requirement_files, target, python)
    return problems
