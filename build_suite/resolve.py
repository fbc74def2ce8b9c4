"""Resolve the requirements once with pip and turn its installation report into a Plan.

pip itself resolves (`pip install --dry-run --ignore-installed --report`), so
constraints, hashes, extras, environment markers and nested -r/-c files mean
exactly what they mean to pip. The report (format version 1, pip 22.2 and
later) lists one entry per distribution to install, with the URL of the file
pip chose, its sha256 and its core metadata.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from build_suite.errors import WheelhouseError
from build_suite.pipargs import binary_options, index_options, pip_argv, requirement_options
from build_suite.piprunner import run_streaming
from build_suite.redact import redact

# -r/-c includes inside requirement files, in the spellings pip accepts.
_INCLUDE = re.compile(r"^\s*(?P<option>-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+)(?P<path>\S+)")
_HASH_OPTION = re.compile(r"--hash[=\s]")


@dataclass(frozen=True)
class Artifact:
    """One distribution that pip would install, and the file pip chose for it.

    `kind` is "wheel", "sdist" (a source archive) or "source" (a local folder
    or a VCS checkout, which can only be built through pip).
    """

    name: str
    version: str
    filename: str
    url: str
    sha256: str | None
    kind: str
    requested: bool = False
    requires_dist: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def local_path(self) -> Path | None:
        """The file behind a file:// URL, or None for remote files."""
        parts = urlsplit(self.url)
        if parts.scheme != "file":
            return None
        return Path(unquote(parts.path))


@dataclass(frozen=True)
class Plan:
    """The resolution: every artifact to put in the wheelhouse, sorted by name."""

    artifacts: tuple[Artifact, ...]
    pip_version: str = ""

    @property
    def wheels(self) -> tuple[Artifact, ...]:
        return tuple(a for a in self.artifacts if a.kind == "wheel")

    @property
    def sources(self) -> tuple[Artifact, ...]:
        """Artifacts that must be built into wheels: sdists and source trees."""
        return tuple(a for a in self.artifacts if a.kind != "wheel")

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        return frozenset(a.key for a in self.artifacts)


def included_files(paths: Sequence[Path]) -> list[Path]:
    """Return `paths` and every file they include through -r or -c, each once, in reading order.

    Relative includes resolve against the folder of the including file, as in
    pip. Missing files are kept in the list, so pip reports them.
    """
    seen: list[Path] = []
    # normpath folds "sub/../x.txt" into "x.txt", so an include cycle ends.
    pending = [Path(os.path.normpath(p)) for p in paths]
    while pending:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.append(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            match = _INCLUDE.match(line)
            if match:
                include = Path(match.group("path"))
                pending.append(Path(os.path.normpath(path.parent / include)))
    return seen


def count_requirements(paths: Sequence[Path]) -> int:
    """Count the requirement lines in `paths` (not their includes), for estimates before resolving."""
    count = 0
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        count += sum(1 for line in lines if line.strip() and not line.lstrip().startswith(("#", "-")))
    return count


def files_use_hashes(paths: Sequence[Path]) -> bool:
    """Tell whether any requirement line in `paths` or their includes carries --hash."""
    for path in included_files(paths):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if _HASH_OPTION.search(text):
            return True
    return False


def resolve_argv(
    config: object,
    report_path: Path,
    *,
    pip_command: Sequence[str],
    local_find_links: Sequence[Path] = (),
    target_options: Sequence[str] = (),
    target_dir: Path | None = None,
    ignore_requires_python: bool = False,
    offline: bool = False,
) -> list[str]:
    """Return the argv of the resolving pip run, which writes its report to `report_path`.

    With `offline`, pip reads no index: only the `local_find_links` folders.

    `target_options` (crossbuild.target_options) resolve binary wheels for
    another interpreter. pip then also needs `target_dir` for --target, which a
    dry run never writes to, and ignores the config's --no-binary and
    --only-binary lists, because it accepts no other binary option with them.
    """
    requirements = tuple(getattr(config, "requirements", ()))
    constraints = tuple(getattr(config, "constraints", ()))
    options = ["--dry-run", "--ignore-installed", "--report", str(report_path)]
    options += ["--no-index"] if offline else index_options(config)
    for folder in local_find_links:
        options += ["--find-links", str(folder)]
    if target_options:
        if target_dir is None:
            raise ValueError("target_options need a target_dir for pip's --target")
        options += [*target_options, "--target", str(target_dir)]
    elif not offline:
        # An offline resolve reads a wheelhouse, which holds only wheels.
        options += binary_options(config)
    if ignore_requires_python:
        options.append("--ignore-requires-python")
    if getattr(config, "require_hashes", False) or files_use_hashes(requirements + constraints):
        options.append("--require-hashes")
    options += requirement_options(requirements, constraints)
    return pip_argv(pip_command, "install", *options)


def parse_report(report: Mapping[str, object]) -> Plan:
    """Turn a parsed pip installation report into a Plan.

    Raises WheelhouseError if the report is not version 1 or an entry lacks
    its download URL or metadata.
    """
    version = str(report.get("version", ""))
    if version != "1":
        raise WheelhouseError(
            f"pip installation report has version {version!r}, expected '1'",
            "use pip 22.2 or later",
        )
    artifacts = [_parse_entry(entry) for entry in report.get("install", [])]  # type: ignore[union-attr]
    artifacts.sort(key=lambda a: a.name)
    return Plan(artifacts=tuple(artifacts), pip_version=str(report.get("pip_version", "")))


def load_report(path: Path) -> Plan:
    """Read the report file at `path` and parse it into a Plan."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WheelhouseError(f"cannot read pip's installation report {path}: {error}") from error
    return parse_report(data)


def url_filename(url: str) -> str:
    """Return the file name at the end of a URL or path, with %-escapes decoded."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


def _parse_entry(entry: Mapping[str, object]) -> Artifact:
    metadata = entry.get("metadata") or {}
    info = entry.get("download_info") or {}
    if not isinstance(metadata, Mapping) or not isinstance(info, Mapping) or "url" not in info:
        raise WheelhouseError(f"pip's installation report has an entry without download_info or metadata: {str(entry)[:200]}")

    url = redact(str(info["url"]))
    name = canonicalize_name(str(metadata.get("name", "")))
    version = str(metadata.get("version", ""))

    archive = info.get("archive_info")
    sha256 = None
    if isinstance(archive, Mapping):
        hashes = archive.get("hashes") or {}
        sha256 = hashes.get("sha256") if isinstance(hashes, Mapping) else None
        if sha256 is None and str(archive.get("hash", "")).startswith("sha256="):
            sha256 = str(archive["hash"]).split("=", 1)[1]

    filename = url_filename(url)
    if not isinstance(archive, Mapping):
        kind = "source"
    elif filename.endswith(".whl"):
        kind = "wheel"
    else:
        kind = "sdist"
    return Artifact(
        name=name,
        version=version,
        filename=filename,
        url=url,
        sha256=sha256,
        kind=kind,
        requested=bool(entry.get("requested", False)),
        requires_dist=tuple(metadata.get("requires_dist") or ()),
    )


def resolve(
    config: object,
    *,
    pip_command: Sequence[str],
    env: Mapping[str, str],
    on_line: Callable[[str], None],
    timeout: float,
    stall_timeout: float | None,
    work_dir: Path,
    local_find_links: Sequence[Path] = (),
    target_options: Sequence[str] = (),
    ignore_requires_python: bool = False,
    offline: bool = False,
) -> Plan:
    """Run pip's resolver over the config's requirement files and return the Plan.

    `target_options`, `ignore_requires_python` and `offline` are passed to resolve_argv.
    Raises WheelhouseError when pip fails, times out or stalls, with the last
    lines of its output.
    """
    handle, name = tempfile.mkstemp(prefix=".tmp-report-", suffix=".json", dir=work_dir)
    os.close(handle)
    report_path = Path(name)
    target_dir = Path(tempfile.mkdtemp(prefix=".tmp-target-", dir=work_dir)) if target_options else None
    try:
        argv = resolve_argv(
            config, report_path, pip_command=pip_command, local_find_links=local_find_links,
            target_options=target_options, target_dir=target_dir, ignore_requires_python=ignore_requires_python,
            offline=offline,
        )
        result = run_streaming(argv, env=env, on_line=on_line, timeout=timeout, stall_timeout=stall_timeout)
        if result.interrupted:
            raise KeyboardInterrupt
        if not result.ok:
            raise WheelhouseError(failure_message("resolving the requirements", result), failure_hint(result))
        return load_report(report_path)
    finally:
        report_path.unlink(missing_ok=True)
        if target_dir is not None:
            shutil.rmtree(target_dir, ignore_errors=True)


def failure_message(step: str, result: object, tool: str = "pip") -> str:
    """Describe a failed run of `tool` during `step` for an error message: why it stopped and its last lines."""
    duration = getattr(result, "duration", 0.0)
    if getattr(result, "timed_out", False):
        reason = f"timed out after {duration:.0f} s"
    elif getattr(result, "stalled", False):
        reason = f"stalled (no output, CPU or network use) and was stopped after {duration:.0f} s"
    else:
        reason = f"failed with exit code {getattr(result, 'returncode', None)} after {duration:.0f} s"
    tail = "\n".join(getattr(result, "tail", [])[-15:])
    return f"{tool} {reason} while {step}" + (f"; last output:\n{tail}" if tail else "")


def failure_hint(result: object, tool: str = "pip") -> str:
    """Return what the user can do about a failed run of `tool` (pip or uv)."""
    if getattr(result, "timed_out", False):
        return "raise [wheelhouse] timeout in buildsuite.toml, or check the network to the package index"
    if getattr(result, "stalled", False):
        return "raise [wheelhouse] stall_timeout, or check the network to the package index"
    if tool == "uv":
        return "read uv's output above; set [wheelhouse] resolver = \"pip\" to see pip's account of the same problem"
    return "read pip's output above; run the same pip command by hand to reproduce it"

