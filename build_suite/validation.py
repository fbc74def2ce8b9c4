"""Checks of requirements files and wheelhouse files against the target.

Every check returns a list of Problem objects and raises nothing for expected
failures, so a caller can report all problems of a wheelhouse at once.
Pin conflicts need only the requirements files and can run before any build.
The pip dry run that resolves the requirements offline is in build_suite.offline.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from build_suite.manifest import sha256_file
from build_suite.target import TargetSpec, check_wheel, marker_environment

WHEEL_SUFFIX = ".whl"
SOURCE_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")
# RECORD hashes must be sha256 or stronger (PEP 376 and 427), so md5 and sha1 are rejected.
RECORD_HASHES = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"})
REBUILD_HINT = "delete {file} and rebuild the wheelhouse"


@dataclass(frozen=True)
class Problem:
    """One failed check: the file it concerns, what is wrong, and how to fix it."""

    file: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}\n  fix: {self.hint}"


@dataclass(frozen=True)
class RequirementLine:
    """A requirement as written in a requirements file, with where it was written."""

    requirement: Requirement
    file: Path
    line: int
    constraint: bool = False

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


# ---------------------------------------------------------------- requirements files

_COMMENT_RE = re.compile(r"(^|\s+)#.*$")
# Per-requirement options such as --hash=sha256:... follow the requirement after whitespace.
_TRAILING_OPTION_RE = re.compile(r"\s+--?[A-Za-z]")
_INCLUDE_RE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?=[^-\s]))(.+)$")


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Yield (first line number, line) after joining backslash continuations and removing comments."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        line = _COMMENT_RE.sub("", " ".join(pending)).strip()
        pending = []
        if line:
            yield start, line
    if pending:
        line = _COMMENT_RE.sub("", " ".join(pending)).strip()
        if line:
            yield start, line


def parse_requirements_files(paths: Iterable[Path | str]) -> tuple[list[RequirementLine], list[Problem]]:
    """Parse requirements files and the files they include with -r and -c.

    Options such as --index-url, editable installs (-e) and plain paths or URLs are
    skipped because they name no version that can be checked.
    """
    lines: list[RequirementLine] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for path in paths:
        _parse_file(Path(path), False, seen, lines, problems)
    return lines, problems


def _parse_file(
    path: Path, constraint: bool, seen: set[Path], lines: list[RequirementLine], problems: list[Problem]
) -> None:
    resolved = path.resolve()
    if resolved in seen:
        return
    seen.add(resolved)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        hint = "check the path in the configuration or in the -r line that includes it"
        problems.append(Problem(str(path), f"cannot read requirements file: {error}", hint))
        return

    for number, line in _logical_lines(text):
        include = _INCLUDE_RE.match(line)
        if include:
            nested = path.parent / include.group(2).strip()
            nested_constraint = constraint or include.group(1) in {"-c", "--constraint"}
            _parse_file(nested, nested_constraint, seen, lines, problems)
            continue
        if line.startswith("-"):
            continue  # pip options, -e included, name no version to check
        text_part = _TRAILING_OPTION_RE.split(line, maxsplit=1)[0]
        if text_part.startswith((".", "/")) or ("://" in text_part and "@" not in text_part):
            continue  # a plain path or URL names no version either
        try:
            requirement = Requirement(text_part)
        except InvalidRequirement as error:
            problems.append(
                Problem(
                    f"{path}:{number}",
                    f"invalid requirement {text_part!r}: {error}",
                    "write the line as a PEP 508 requirement, such as `requests==2.32.5`",
                )
            )
            continue
        lines.append(RequirementLine(requirement, path, number, constraint))


def _applies(line: RequirementLine, environment: Mapping[str, str] | None) -> bool:
    marker = line.requirement.marker
    if marker is None or environment is None:
        return True
    try:
        return marker.evaluate(dict(environment))
    except (UndefinedComparison, UndefinedEnvironmentName):
        return True  # a marker that cannot be evaluated is kept, as the stricter choice


# ---------------------------------------------------------------- pin conflicts


def check_pin_conflicts(
    requirement_files: Sequence[Path | str], target: TargetSpec | None = None
) -> list[Problem]:
    """Find projects whose specifiers across all requirements files no version can satisfy.

    With a target, requirements whose markers do not apply to it are left out. Invalid
    lines and unreadable files are reported here as well.
    """
    lines, problems = parse_requirements_files(requirement_files)
    environment = marker_environment(target) if target is not None else None
    groups: dict[str, list[RequirementLine]] = defaultdict(list)
    for line in lines:
        if line.requirement.url is None and _applies(line, environment):
            groups[line.name].append(line)

    for name, group in groups.items():
        combined = SpecifierSet()
        for line in group:
            combined &= line.requirement.specifier
        if not combined.is_unsatisfiable():
            continue
        problems.append(_conflict_problem(name, group))
    return problems


def _conflict_problem(name: str, group: list[RequirementLine]) -> Problem:
    pairs = [
        (first, second)
        for index, first in enumerate(group)
        for second in group[index + 1 :]
        if (first.requirement.specifier & second.requirement.specifier).is_unsatisfiable()
    ]
    if pairs:
        details = "; ".join(
            f"{first.location} requires {first.requirement.specifier} "
            f"but {second.location} requires {second.requirement.specifier}"
            for first, second in pairs
        )
    else:
        listed = ", ".join(f"{line.location} ({line.requirement.specifier})" for line in group)
        details = f"together {listed} exclude every version"
    return Problem(
        str(group[0].file),
        f"conflicting requirements for {name}: {details}",
        f"change the specifiers for {name} so that one version satisfies every requirements file",
    )


# ---------------------------------------------------------------- wheelhouse contents


def _wheelhouse_files(wheelhouse: Path) -> list[Path]:
    return sorted(path for path in wheelhouse.iterdir() if path.is_file() and not path.name.startswith("."))


def _wheels(wheelhouse: Path) -> list[Path]:
    return [path for path in _wheelhouse_files(wheelhouse) if path.name.endswith(WHEEL_SUFFIX)]


def check_wheel_tags(wheelhouse: Path, target: TargetSpec) -> list[Problem]:
    """Check every wheel and source distribution in the wheelhouse against the target's tags."""
    problems = []
    for path in _wheelhouse_files(Path(wheelhouse)):
        if not path.name.endswith((WHEEL_SUFFIX, *SOURCE_SUFFIXES)):
            continue
        verdict = check_wheel(path.name, target)
        if not verdict.ok:
            problems.append(Problem(str(path), verdict.reason.removesuffix(f": {verdict.fix}"), verdict.fix))
    return problems


def check_duplicates(
    wheelhouse: Path, requirement_files: Sequence[Path | str] = (), target: TargetSpec | None = None
) -> list[Problem]:
    """Find projects that have wheels of more than one version in the wheelhouse.

    Each version is listed with the requirements file lines that request it.
    check_pin_conflicts reports invalid requirements files, so this check skips them.
    """
    lines, _ = parse_requirements_files(requirement_files)
    problems = []
    environment = marker_environment(target) if target is not None else None
    by_project: dict[str, dict[Version, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in _wheels(Path(wheelhouse)):
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except (InvalidWheelFilename, InvalidVersion):
            continue  # check_wheel_tags reports invalid filenames
        by_project[name][version].append(path)

    for name, versions in sorted(by_project.items()):
        if len(versions) < 2:
            continue
        requesting = [line for line in lines if line.name == name and _applies(line, environment)]
        described = "; ".join(
            _describe_version(version, paths, requesting) for version, paths in sorted(versions.items())
        )
        message = f"{name} has {len(versions)} versions in the wheelhouse, and pip installs only one: {described}"
        hint = (
            "delete the wheels of the version that no requirements file needs and rebuild the wheelhouse, "
            "or align the specifiers in the requirements files"
        )
        problems.append(Problem(str(wheelhouse), message, hint))
    return problems


def _describe_version(version: Version, paths: list[Path], requesting: list[RequirementLine]) -> str:
    files = ", ".join(path.name for path in paths)
    locations = [
        f"{line.location} ({line.requirement})"
        for line in requesting
        if line.requirement.specifier.contains(version, prereleases=True)
    ]
    if locations:
        return f"{files} is requested by {', '.join(locations)}"
    return f"{files} is requested by no requirements file (a dependency, or left from an earlier build)"


# ---------------------------------------------------------------- integrity


def check_integrity(wheelhouse: Path, manifest: Mapping[str, str] | None = None) -> list[Problem]:
    """Check that every wheel is a readable zip matching its RECORD and, if given, the manifest's sha256."""
    wheelhouse = Path(wheelhouse)
    problems = []
    for path in _wheels(wheelhouse):
        problems.extend(check_wheel_record(path))
    if manifest is not None:
        problems.extend(_check_manifest(wheelhouse, manifest))
    return problems


def check_wheel_record(path: Path) -> list[Problem]:
    """Compare each file in the wheel with the hash and size listed in its RECORD."""
    hint = REBUILD_HINT.format(file=path.name)
    try:
        with zipfile.ZipFile(path) as archive:
            records = [name for name in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/RECORD", name)]
            if len(records) != 1:
                message = f"wheel must contain exactly one .dist-info/RECORD file, found {len(records)}"
                return [Problem(str(path), message, hint)]
            try:
                record = _parse_record(archive.read(records[0]))
            except (UnicodeDecodeError, csv.Error) as error:
                return [Problem(str(path), f"invalid RECORD file: {error}", hint)]
            return _compare_record(path, archive, records[0], record)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
        return [Problem(str(path), f"wheel is not a valid zip archive (truncated or corrupt): {error}", hint)]


def _parse_record(data: bytes) -> dict[str, tuple[str, str]]:
    rows = csv.reader(io.StringIO(data.decode("utf-8")))
    return {row[0]: (row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "") for row in rows if row}


def _compare_record(
    path: Path, archive: zipfile.ZipFile, record_name: str, record: dict[str, tuple[str, str]]
) -> list[Problem]:
    hint = REBUILD_HINT.format(file=path.name)
    problems = []
    signatures = {record_name, record_name + ".jws", record_name + ".p7s"}
    members = [info for info in archive.infolist() if not info.is_dir()]
    for info in members:
        if info.filename in signatures:
            continue
        if info.filename not in record:
            problems.append(Problem(str(path), f"{info.filename} is in the wheel but not in its RECORD", hint))
            continue
        expected_hash, expected_size = record[info.filename]
        problem = _compare_member(archive, info, expected_hash, expected_size)
        if problem:
            problems.append(Problem(str(path), problem, hint))
    names = {info.filename for info in members}
    for missing in sorted(set(record) - names - signatures):
        problems.append(Problem(str(path), f"RECORD lists {missing} but the wheel does not contain it", hint))
    return problems


def _compare_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, expected_hash: str, expected_size: str
) -> str | None:
    algorithm, _, expected_digest = expected_hash.partition("=")
    if not expected_digest:
        return f"RECORD has no hash for {info.filename}"
    if algorithm not in RECORD_HASHES:
        return f"RECORD uses the unsupported hash {algorithm!r} for {info.filename}"
    digest = hashlib.new(algorithm)
    size = 0
    with archive.open(info) as member:
        for chunk in iter(lambda: member.read(1 << 16), b""):
            digest.update(chunk)
            size += len(chunk)
    actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")
    if actual != expected_digest:
        return f"{info.filename} does not match its RECORD hash ({algorithm}={actual}, RECORD has {expected_digest})"
    if expected_size and expected_size != str(size):
        return f"{info.filename} is {size} bytes but RECORD says {expected_size}"
    return None


def _check_manifest(wheelhouse: Path, manifest: Mapping[str, str]) -> list[Problem]:
    problems = []
    for filename, expected in sorted(manifest.items()):
        path = wheelhouse / filename
        if not path.is_file():
            message = "listed in the manifest but missing from the wheelhouse"
            problems.append(Problem(str(path), message, "rebuild the wheelhouse"))
            continue
        actual = sha256_file(path)
        if actual != expected.lower():
            message = f"sha256 {actual} does not match the manifest ({expected})"
            problems.append(Problem(str(path), message, REBUILD_HINT.format(file=filename)))
    for path in _wheels(wheelhouse):
        if path.name not in manifest:
            hint = "rebuild the wheelhouse so the manifest lists every wheel"
            problems.append(Problem(str(path), "wheel is not listed in the manifest", hint))
    return problems


def check_requires_python(wheelhouse: Path, target: TargetSpec) -> list[Problem]:
    """Check each wheel's Requires-Python metadata against the target Python version.

    A MAJOR.MINOR target fails a wheel that only some patch releases accept (such as
    >=3.11.5 for "3.11"), because the image's Python may be an older patch release.
    """
    problems = []
    for path in _wheels(Path(wheelhouse)):
        requires_python = _read_requires_python(path)
        if requires_python is None:
            continue
        try:
            specifier = SpecifierSet(requires_python)
        except InvalidSpecifier:
            continue  # pip ignores an invalid Requires-Python as well
        problem = _requires_python_problem(path, requires_python, specifier, target)
        if problem is not None:
            problems.append(problem)
    return problems


def _requires_python_problem(
    path: Path, requires_python: str, specifier: SpecifierSet, target: TargetSpec
) -> Problem | None:
    mismatch = Problem(
        str(path),
        f"requires Python {requires_python} but the target is CPython {target.python}",
        "pin a release of this project that supports the target Python, or change [target] python",
    )
    if target.python.count(".") == 2:
        return None if specifier.contains(target.python, prereleases=True) else mismatch

    major, minor = target.python_version
    if (specifier & SpecifierSet(f"=={major}.{minor}.*")).is_unsatisfiable():
        return mismatch
    # NOTE: the first and a far-off patch release stand in for all of them, so a
    # specifier that excludes only patch releases in between is not caught.
    if specifier.contains(f"{major}.{minor}.0") and specifier.contains(f"{major}.{minor}.999"):
        return None
    message = (
        f"requires Python {requires_python}, which only some {major}.{minor} patch releases satisfy, "
        f"and the target names no patch release"
    )
    hint = (
        f'set [target] python to the exact version in the image (such as "{major}.{minor}.2") so the check is exact, '
        "or pin a release of this project that supports every patch release"
    )
    return Problem(str(path), message, hint)


def _read_requires_python(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", name)]
            if len(names) != 1:
                return None  # check_integrity reports broken wheels
            metadata = HeaderParser().parsestr(archive.read(names[0]).decode("utf-8", errors="replace"))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
        return None
    return metadata.get("Requires-Python")


# ---------------------------------------------------------------- all file checks


def check_wheelhouse_files(
    wheelhouse: Path,
    requirement_files: Sequence[Path | str],
    target: TargetSpec,
    manifest: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Run the checks that read the wheelhouse files: integrity, tags, duplicates and Requires-Python."""
    problems = check_integrity(wheelhouse, manifest)
    problems += check_wheel_tags(wheelhouse, target)
    problems += check_duplicates(wheelhouse, requirement_files, target)
    problems += check_requires_python(wheelhouse, target)
    return problems
