"""Known vulnerabilities of pinned Python packages, from OSV advisories.

The offline source is a folder of OSV records (YAML or JSON files at any depth,
one advisory per file), such as a mirror of the PyPA advisory database. It is
indexed once per process by PEP 503 normalised package name. The online source
is an OSV API server's /v1/querybatch endpoint and is used only when a caller
passes its URL.

A missing or empty database gives a result with status "unavailable" and the
reason, so that a build never reads "no vulnerabilities" from absent data.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from build_suite.security import SecurityError
from build_suite.security.osvrecords import (
    SEVERITY_LEVELS,
    UNKNOWN,
    Advisory,
    AffectedPackage,
    Vulnerability,
    fixed_versions,
    is_affected,
    later_versions,
    match_advisories,
    normalize_name,
    parse_advisory,
    vulnerability_for,
)

__all__ = [
    "SEVERITY_LEVELS",
    "UNKNOWN",
    "Advisory",
    "AdvisoryIndex",
    "AffectedPackage",
    "ScanResult",
    "Vulnerability",
    "check_offline",
    "check_online",
    "check_packages",
    "clear_index_cache",
    "failing",
    "format_vulnerability",
    "is_affected",
    "load_index",
    "match_advisories",
    "normalize_name",
    "parse_advisory",
    "severity_rank",
    "verdict",
]

log = logging.getLogger(__name__)

_RECORD_SUFFIXES = {".yaml", ".yml", ".json"}
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class AdvisoryIndex:
    """The advisories under one database folder, keyed by normalised package name."""

    root: Path
    by_package: Mapping[str, tuple[Advisory, ...]]
    record_count: int
    newest_modified: datetime | None
    invalid_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanResult:
    """The outcome of a vulnerability check.

    `status` is "checked" or "unavailable". `snapshot` is the date of the
    advisory data the check used.
    """

    status: str
    source: str
    packages: tuple[tuple[str, str], ...]
    vulnerabilities: tuple[Vulnerability, ...] = ()
    snapshot: str | None = None
    reason: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def available(self) -> bool:
        return self.status == "checked"


def severity_rank(level: str) -> int:
    """Return the position of `level` in SEVERITY_LEVELS, raising SecurityError for other names."""
    try:
        return SEVERITY_LEVELS.index(level)
    except ValueError:
        raise SecurityError(
            f"invalid severity level: {level!r}", f"use one of {', '.join(SEVERITY_LEVELS)}"
        ) from None


def failing(result: ScanResult, threshold: str = "high", unknown_as: str = "high") -> list[Vulnerability]:
    """Return the vulnerabilities at or above `threshold`.

    A vulnerability of unknown severity counts as `unknown_as`, which is a
    severity level or "ignore".
    """
    limit = severity_rank(threshold)
    if unknown_as != "ignore":
        severity_rank(unknown_as)
    selected = []
    for vulnerability in result.vulnerabilities:
        level = vulnerability.severity
        if level == UNKNOWN:
            if unknown_as == "ignore":
                continue
            level = unknown_as
        if severity_rank(level) >= limit:
            selected.append(vulnerability)
    return selected


def verdict(result: ScanResult, threshold: str = "high", unknown_as: str = "high") -> str:
    """Return "pass", "fail" or "unavailable" for a check result."""
    if not result.available:
        return "unavailable"
    return "fail" if failing(result, threshold, unknown_as) else "pass"


def format_vulnerability(vulnerability: Vulnerability) -> str:
    """Build the one-line message for a vulnerability."""
    aliases = f" ({', '.join(vulnerability.aliases)})" if vulnerability.aliases else ""
    fixed = f", fixed in {', '.join(vulnerability.fixed_versions)}" if vulnerability.fixed_versions else ""
    score = f" {vulnerability.score:.1f}" if vulnerability.score is not None else ""
    return (
        f"{vulnerability.package}=={vulnerability.version}: {vulnerability.advisory_id}{aliases}, "
        f"severity {vulnerability.severity}{score}{fixed}"
    )


# The offline database.

# Index per resolved folder with the signature of its files, so that a second
# check in the same process skips the parse unless a record changed.
_INDEX_CACHE: dict[Path, tuple[tuple[int, int, int], AdvisoryIndex]] = {}


def clear_index_cache() -> None:
    """Drop every cached index, so that the next load parses the records again."""
    _INDEX_CACHE.clear()


def load_index(root: Path) -> AdvisoryIndex:
    """Load every OSV record under `root` into an index by normalised package name.

    Raises SecurityError when `root` is not a folder. Files that are not valid
    YAML or JSON OSV records are listed in `invalid_files` and skipped.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise SecurityError(f"OSV database folder not found: {root}", "set the OSV database path to a folder of OSV records")

    files = sorted(path for path in root.rglob("*") if path.suffix in _RECORD_SUFFIXES and path.is_file())
    signature = _signature(files)
    cached = _INDEX_CACHE.get(root)
    if cached and cached[0] == signature:
        return cached[1]

    index = _build_index(root, files)
    _INDEX_CACHE[root] = (signature, index)
    return index


def _signature(files: list[Path]) -> tuple[int, int, int]:
    newest = 0
    total = 0
    for path in files:
        stat = path.stat()
        newest = max(newest, stat.st_mtime_ns)
        total += stat.st_size
    return len(files), newest, total


def _build_index(root: Path, files: list[Path]) -> AdvisoryIndex:
    by_package: dict[str, list[Advisory]] = {}
    invalid: list[str] = []
    count = 0
    newest: datetime | None = None
    for path in files:
        record = _read_record(path)
        if record is None:
            invalid.append(path.relative_to(root).as_posix())
            continue
        if record.get("withdrawn"):
            continue
        advisory = parse_advisory(record)
        count += 1
        if advisory.modified and (newest is None or advisory.modified > newest):
            newest = advisory.modified
        for name in {entry.name for entry in advisory.affected}:
            by_package.setdefault(name, []).append(advisory)

    if invalid:
        log.warning("skipped %d files under %s that are not OSV records, first: %s", len(invalid), root, invalid[0])
    return AdvisoryIndex(
        root=root,
        by_package={name: tuple(items) for name, items in by_package.items()},
        record_count=count,
        newest_modified=newest,
        invalid_files=tuple(invalid),
    )


def _read_record(path: Path) -> dict | None:
    try:
        with path.open("rb") as stream:
            if path.suffix == ".json":
                record = json.load(stream)
            else:
                record = yaml.load(stream, Loader=_YAML_LOADER)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(record, dict) or "id" not in record or not isinstance(record.get("affected", []), list):
        return None
    return record


def check_offline(
    packages: Iterable[tuple[str, str]], database: Path | None, snapshot_date: str | None = None
) -> ScanResult:
    """Check (name, version) pairs against the OSV records under `database`."""
    pinned = tuple((name, version) for name, version in packages)
    if database is None:
        return ScanResult("unavailable", "offline", pinned, reason="no OSV database is configured")
    try:
        index = load_index(database)
    except SecurityError as error:
        return ScanResult("unavailable", "offline", pinned, reason=error.message)
    if index.record_count == 0:
        return ScanResult("unavailable", "offline", pinned, reason=f"OSV database {index.root} has no OSV records")

    found: list[Vulnerability] = []
    for name, version in pinned:
        found.extend(match_advisories(index.by_package.get(normalize_name(name), ()), name, version))

    snapshot = snapshot_date or (index.newest_modified.date().isoformat() if index.newest_modified else None)
    notes = (f"{len(index.invalid_files)} files are not valid OSV records",) if index.invalid_files else ()
    return ScanResult("checked", "offline", pinned, tuple(found), snapshot=snapshot, notes=notes)


# The online source.


def check_online(packages: Iterable[tuple[str, str]], api_url: str, timeout: float = 10.0) -> ScanResult:
    """Check (name, version) pairs with an OSV API server's querybatch endpoint.

    `api_url` is the server's base URL, for example the public OSV service's
    "https://api.osv.dev". An unreachable server or an invalid reply gives an
    "unavailable" result.
    """
    pinned = tuple((name, version) for name, version in packages)
    base = api_url.rstrip("/")
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        return ScanResult("unavailable", "online", pinned, reason=f"invalid OSV API URL {api_url!r}: use http or https")
    queries = [{"package": {"name": name, "ecosystem": "PyPI"}, "version": version} for name, version in pinned]
    try:
        reply = _request_json(f"{base}/v1/querybatch", {"queries": queries}, timeout)
        results = reply["results"]
        if len(results) != len(pinned):
            raise ValueError(f"{len(results)} results for {len(pinned)} queries")
        # NOTE: a result that the server pages with next_page_token is read
        # only to its first page.
        ids_per_package = [[str(item["id"]) for item in result.get("vulns") or ()] for result in results]
        advisories = {
            advisory_id: parse_advisory(_request_json(f"{base}/v1/vulns/{urllib.parse.quote(advisory_id)}", None, timeout))
            for advisory_id in dict.fromkeys(item for ids in ids_per_package for item in ids)
        }
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError, TypeError) as error:
        return ScanResult("unavailable", "online", pinned, reason=f"OSV API at {base} failed: {error}")

    found = []
    for (name, version), ids in zip(pinned, ids_per_package):
        for advisory_id in ids:
            advisory = advisories[advisory_id]
            entries = [entry for entry in advisory.affected if entry.name == normalize_name(name)]
            fixed = later_versions(version, (text for entry in entries for text in fixed_versions(entry)))
            found.append(vulnerability_for(advisory, name, version, fixed))
    snapshot = datetime.now(timezone.utc).date().isoformat()
    return ScanResult("checked", "online", pinned, tuple(found), snapshot=snapshot)


def _request_json(url: str, body: Any, timeout: float) -> Any:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def check_packages(
    packages: Iterable[tuple[str, str]],
    database: Path | None,
    *,
    snapshot_date: str | None = None,
    api_url: str | None = None,
    timeout: float = 10.0,
) -> ScanResult:
    """Check pinned packages online when `api_url` is set and the server responds, else offline.

    When the online check is unavailable, the offline result carries the
    online failure in `notes`.
    """
    pinned = tuple(packages)
    if api_url:
        online = check_online(pinned, api_url, timeout)
        if online.available or database is None:
            return online
        offline = check_offline(pinned, database, snapshot_date)
        return ScanResult(
            offline.status,
            offline.source,
            offline.packages,
            offline.vulnerabilities,
            offline.snapshot,
            offline.reason,
            (online.reason, *offline.notes),
        )
    return check_offline(pinned, database, snapshot_date)

