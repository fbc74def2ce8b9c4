"""Find secrets in the files of a build context with detect-secrets.

Only the files the engine receives for a build are scanned, so a secret that
.dockerignore keeps out of the context is not reported. A finding names the
file, line and kind of secret, never the value. Accepted findings are listed in
a baseline file and filtered out.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.core.scan import scan_file
from detect_secrets.settings import transient_settings

from build_suite.dockerignore import context_files
from build_suite.security import SecurityError

# The filters detect-secrets 1.5 enables by default. The verification filter
# (`is_ignored_due_to_verification_policies`) is left out on purpose, because
# it sends each candidate secret to the service that issued it.
_FILTERS = (
    "detect_secrets.filters.allowlist.is_line_allowlisted",
    "detect_secrets.filters.heuristic.is_sequential_string",
    "detect_secrets.filters.heuristic.is_potential_uuid",
    "detect_secrets.filters.heuristic.is_likely_id_string",
    "detect_secrets.filters.heuristic.is_templated_secret",
    "detect_secrets.filters.heuristic.is_prefixed_with_dollar_sign",
    "detect_secrets.filters.heuristic.is_indirect_reference",
    "detect_secrets.filters.heuristic.is_lock_file",
    "detect_secrets.filters.heuristic.is_not_alphanumeric_string",
    "detect_secrets.filters.heuristic.is_swagger_file",
)


@dataclass(frozen=True)
class Finding:
    """A secret found in a file of a build context.

    `file` is relative to the context. `secret_hash` is the SHA-1 hex digest of
    the value, the form detect-secrets stores in its baselines, and is kept out
    of repr so that logs show only the location and kind.
    """

    file: str
    line: int
    kind: str
    secret_hash: str = field(repr=False, compare=True)

    def describe(self) -> str:
        return format_finding(self)


@dataclass(frozen=True)
class BaselineEntry:
    """An accepted finding. An entry without a line accepts the secret on any line."""

    file: str
    kind: str
    secret_hash: str
    line: int | None = None

    def accepts(self, finding: Finding) -> bool:
        if (self.file, self.kind, self.secret_hash) != (finding.file, finding.kind, finding.secret_hash):
            return False
        return self.line is None or self.line == finding.line


def format_finding(finding: Finding) -> str:
    """Build the one-line message for a finding: location and kind, no value."""
    return f"{finding.file}:{finding.line}: possible secret ({finding.kind})"


@contextmanager
def detect_secrets_settings(exclude_plugins: Iterable[str] = ()) -> Iterator[None]:
    """Set detect-secrets' plugins and filters for one scan and restore the old settings after.

    All plugins of detect-secrets are enabled except the class names in `exclude_plugins`.
    """
    excluded = set(exclude_plugins)
    plugins = [
        {"name": plugin.__name__}
        for plugin in get_mapping_from_secret_type_to_class().values()
        if plugin.__name__ not in excluded
    ]
    filters = [{"path": path} for path in _FILTERS]
    # NOTE: detect-secrets keeps its settings in a process-wide singleton, so
    # two scans must not run at the same time in threads of one process.
    with transient_settings({"plugins_used": plugins, "filters_used": filters}):
        yield


def scan_files(root: Path, files: Iterable[str]) -> list[Finding]:
    """Scan `files` (paths relative to `root`) and return findings sorted by file and line.

    Symbolic links are skipped, because the engine sends the link itself and
    not the file it points to.
    """
    findings: set[Finding] = set()
    with detect_secrets_settings():
        for relative in files:
            path = root / relative
            if path.is_symlink() or not path.is_file():
                continue
            for secret in scan_file(str(path)):
                findings.add(
                    Finding(
                        file=Path(relative).as_posix(),
                        line=secret.line_number,
                        kind=secret.type,
                        secret_hash=secret.secret_hash,
                    )
                )
    return sorted(findings, key=lambda finding: (finding.file, finding.line, finding.kind))


def undecodable_files(root: Path, files: Iterable[str]) -> list[str]:
    """Return the files that detect-secrets skips because they are not valid UTF-8 text.

    detect-secrets 1.5 drops a file on the first byte it cannot decode, so a
    text file with one stray Latin-1 byte is not scanned at all. Callers list
    these files so that a clean result is not read as "scanned and clean".
    """
    skipped = []
    for relative in files:
        path = root / relative
        if path.is_symlink() or not path.is_file():
            continue
        if not _is_utf8(path):
            skipped.append(Path(relative).as_posix())
    return skipped


def _is_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 16):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except (OSError, UnicodeDecodeError):
        return False
    return True


def scan_context(context: Path, dockerfile: Path | None = None, skip: Iterable[Path] = ()) -> list[Finding]:
    """Scan the files the engine would receive when building `context`, except those under `skip`.

    The harness skips the wheelhouse: its wheels and manifest come from package indexes, and the
    manifest's sha256 values look like high-entropy secrets to every scanner.
    """
    skipped = [Path(folder).resolve() for folder in skip]
    files = [name for name in context_files(context, dockerfile)
             if not any(folder == (context / name).resolve() or folder in (context / name).resolve().parents
                        for folder in skipped)]
    return scan_files(context, files)


def filter_accepted(findings: Iterable[Finding], baseline: Iterable[BaselineEntry]) -> list[Finding]:
    """Return the findings that no baseline entry accepts."""
    entries = list(baseline)
    return [finding for finding in findings if not any(entry.accepts(finding) for entry in entries)]


_BASELINE_HINT = (
    'use a JSON list of {"file", "line", "kind", "hash"} objects or a baseline written by detect-secrets'
)


def load_baseline(path: Path) -> list[BaselineEntry]:
    """Read a baseline file in either supported format.

    The build-suite format is a JSON list of objects with "file", "line",
    "kind" and "hash". The detect-secrets format is the object that
    `detect-secrets scan` writes, with "results" keyed by file name.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise SecurityError(f"secrets baseline not found: {path}", "create it or remove the baseline setting") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SecurityError(f"secrets baseline {path} is not valid JSON: {error}", "fix or regenerate the file") from error

    try:
        if isinstance(data, list):
            return [_entry_from_list_item(item) for item in data]
        if isinstance(data, dict) and isinstance(data.get("results"), dict):
            return list(_entries_from_detect_secrets(data["results"]))
    except (KeyError, TypeError, ValueError) as error:
        raise SecurityError(f"secrets baseline {path} has an invalid entry: {error!r}", _BASELINE_HINT) from error
    raise SecurityError(f"secrets baseline {path} has an unknown format", _BASELINE_HINT)


def _entry_from_list_item(item: dict) -> BaselineEntry:
    line = item.get("line")
    return BaselineEntry(
        file=str(item["file"]),
        kind=str(item["kind"]),
        secret_hash=str(item["hash"]),
        line=None if line is None else int(line),
    )


def _entries_from_detect_secrets(results: dict) -> Iterator[BaselineEntry]:
    for file_name, secrets in results.items():
        for secret in secrets:
            line = secret.get("line_number")
            yield BaselineEntry(
                file=Path(file_name).as_posix(),
                kind=str(secret["type"]),
                secret_hash=str(secret["hashed_secret"]),
                line=None if line is None else int(line),
            )


def baseline_json(findings: Iterable[Finding]) -> str:
    """Build the text of a build-suite baseline that accepts `findings`."""
    items = [
        {"file": finding.file, "line": finding.line, "kind": finding.kind, "hash": finding.secret_hash}
        for finding in findings
    ]
    return json.dumps(items, indent=2) + "\n"
