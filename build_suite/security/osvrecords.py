"""OSV advisory records: parsing, severity and version matching for PyPI packages.

Ranges and versions are read as the OSV schema defines them. Versions
are compared as PEP 440 versions with packaging.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

log = logging.getLogger(__name__)

SEVERITY_LEVELS = ("low", "medium", "high", "critical")
UNKNOWN = "unknown"

# GitHub advisories write "MODERATE" in database_specific.severity.
_DATABASE_SEVERITY = {"low": "low", "moderate": "medium", "medium": "medium", "high": "high", "critical": "critical"}


@dataclass(frozen=True)
class AffectedPackage:
    """One `affected` entry of an advisory for a PyPI package.

    `ranges` contains the events of each ECOSYSTEM range as (event, version)
    pairs, where event is "introduced", "fixed" or "last_affected".
    """

    name: str
    ranges: tuple[tuple[tuple[str, str], ...], ...]
    versions: tuple[str, ...]


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str
    score: float | None
    modified: datetime | None
    affected: tuple[AffectedPackage, ...]


@dataclass(frozen=True)
class Vulnerability:
    """An advisory that applies to one pinned package version."""

    package: str
    version: str
    advisory_id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str
    score: float | None
    fixed_versions: tuple[str, ...]


def normalize_name(name: str) -> str:
    """Normalise a package name as PEP 503 does."""
    return canonicalize_name(name)


# Parsing of OSV records.


def parse_advisory(record: Mapping[str, Any]) -> Advisory:
    """Build an Advisory from one OSV record, keeping only PyPI `affected` entries."""
    affected = []
    for entry in record.get("affected") or ():
        package = entry.get("package") or {}
        if str(package.get("ecosystem", "")).lower() != "pypi" or not package.get("name"):
            continue
        ranges = tuple(
            tuple(_events(item.get("events") or ()))
            for item in entry.get("ranges") or ()
            if item.get("type") == "ECOSYSTEM"
        )
        versions = tuple(str(version) for version in entry.get("versions") or ())
        affected.append(AffectedPackage(normalize_name(str(package["name"])), ranges, versions))

    severity, score = _severity(record)
    return Advisory(
        id=str(record["id"]),
        aliases=tuple(str(alias) for alias in record.get("aliases") or ()),
        summary=_summary(record),
        severity=severity,
        score=score,
        modified=_timestamp(record.get("modified")),
        affected=tuple(affected),
    )


def _summary(record: Mapping[str, Any]) -> str:
    """Return the record's summary, or the first line of its details."""
    text = str(record.get("summary") or record.get("details") or "").strip()
    return text.splitlines()[0] if text else ""


def _events(events: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
    for event in events:
        for kind in ("introduced", "fixed", "last_affected"):
            if kind in event:
                yield kind, str(event[kind])


def _severity(record: Mapping[str, Any]) -> tuple[str, float | None]:
    """Return the level and CVSS base score of a record, the highest if it has several."""
    scores = [_cvss_score(item) for item in record.get("severity") or ()]
    for entry in record.get("affected") or ():
        scores.extend(_cvss_score(item) for item in entry.get("severity") or ())
    known = [score for score in scores if score is not None]
    if known:
        score = max(known)
        return _level_for_score(score), score

    database = record.get("database_specific") or {}
    named = _DATABASE_SEVERITY.get(str(database.get("severity", "")).lower())
    return (named, None) if named else (UNKNOWN, None)


def _cvss_score(item: Mapping[str, Any]) -> float | None:
    vector = str(item.get("score", ""))
    kind = item.get("type")
    try:
        if kind == "CVSS_V3":
            return float(CVSS3(vector).scores()[0])
        if kind == "CVSS_V4":
            return float(CVSS4(vector).base_score)
        if kind == "CVSS_V2":
            return float(CVSS2(vector).scores()[0])
    except (CVSSError, ValueError, KeyError, IndexError):
        log.debug("invalid %s vector %r", kind, vector)
    return None


def _level_for_score(score: float) -> str:
    # CVSS v3 qualitative ratings. A score of 0.0 ("none") is reported as low
    # so that the advisory is still listed.
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# Version matching.


def is_affected(package: AffectedPackage, version: str) -> bool:
    """Return whether `version` is listed in `package.versions` or falls in one of its ranges.

    ECOSYSTEM ranges are evaluated as the OSV schema defines. The events are
    sorted by version. Each "introduced" at or below the version opens a range,
    and a later "fixed" at or below it, or "last_affected" below it, closes it.
    """
    try:
        parsed = Version(version)
    except InvalidVersion:
        return version in package.versions

    for listed in package.versions:
        if listed == version or _same_version(listed, parsed):
            return True
    return any(_in_range(parsed, events) for events in package.ranges)


def _same_version(listed: str, version: Version) -> bool:
    try:
        return Version(listed) == version
    except InvalidVersion:
        return False


def _in_range(version: Version, events: tuple[tuple[str, str], ...]) -> bool:
    parsed: list[tuple[Version | None, str]] = []
    for kind, text in events:
        if kind == "introduced" and text == "0":
            parsed.append((None, kind))
            continue
        try:
            parsed.append((Version(text), kind))
        except InvalidVersion:
            # NOTE: a range with a version that PEP 440 cannot parse is skipped,
            # so only the advisory's explicit `versions` list covers it.
            return False

    affected = False
    for event_version, kind in sorted(parsed, key=lambda item: (item[0] is not None, item[0] or Version("0"))):
        if kind == "introduced" and (event_version is None or version >= event_version):
            affected = True
        elif kind == "fixed" and event_version is not None and version >= event_version:
            affected = False
        elif kind == "last_affected" and event_version is not None and version > event_version:
            affected = False
    return affected


def fixed_versions(package: AffectedPackage) -> tuple[str, ...]:
    """Return the "fixed" versions of all ECOSYSTEM ranges of `package`, without repeats."""
    return tuple(dict.fromkeys(text for events in package.ranges for kind, text in events if kind == "fixed"))


def match_advisories(
    advisories: Iterable[Advisory], name: str, version: str
) -> list[Vulnerability]:
    """Return a Vulnerability for each advisory whose PyPI entries affect name==version."""
    normalized = normalize_name(name)
    found = []
    for advisory in advisories:
        entries = [entry for entry in advisory.affected if entry.name == normalized and is_affected(entry, version)]
        if not entries:
            continue
        fixed = later_versions(version, (text for entry in entries for text in fixed_versions(entry)))
        found.append(vulnerability_for(advisory, name, version, fixed))
    return found


def later_versions(version: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """Return the candidates above `version`, which are the upgrades that fix it."""
    try:
        current = Version(version)
    except InvalidVersion:
        return tuple(dict.fromkeys(candidates))
    later = []
    for text in dict.fromkeys(candidates):
        try:
            if Version(text) > current:
                later.append(text)
        except InvalidVersion:
            later.append(text)
    return tuple(later)


def vulnerability_for(advisory: Advisory, name: str, version: str, fixed: tuple[str, ...]) -> Vulnerability:
    """Build the Vulnerability record of `advisory` for the pinned name==version."""
    return Vulnerability(
        package=name,
        version=version,
        advisory_id=advisory.id,
        aliases=advisory.aliases,
        summary=advisory.summary,
        severity=advisory.severity,
        score=advisory.score,
        fixed_versions=fixed,
    )
