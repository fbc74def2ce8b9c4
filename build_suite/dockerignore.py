"""Build-context selection: the files an image build sends, after the ignore file.

The rules follow what Podman 4.3 (buildah) applies to a build context, checked against
the engine by tests/test_dockerignore.py:

- The ignore file is ``<dockerfile>.dockerignore`` next to the Dockerfile if it exists,
  else ``.containerignore`` in the context root, else ``.dockerignore`` there.
- A line whose first character is ``#`` is a comment. Other lines are stripped of
  surrounding whitespace, and empty lines are skipped.
- ``!`` starts a re-include pattern. Unlike newer Docker releases, buildah does not strip
  whitespace after the ``!``.
- Each pattern is cleaned like Go's ``filepath.Clean`` (``./a`` is ``a``, ``dir/`` is
  ``dir``), and one leading ``/`` is dropped.
- ``*`` and ``?`` match within one path segment, ``**`` matches any number of segments,
  ``[...]`` is a character class and ``\\`` escapes the next character.
- A pattern applies to a path when it matches the path or one of its parent folders, so
  a pattern that matches a folder excludes everything under it.
- Patterns apply in order and the last one that matches decides.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from build_suite.errors import BuildSuiteError

CONTEXT_IGNORE_FILES = (".containerignore", ".dockerignore")


class ContextError(BuildSuiteError):
    """A build context that cannot be sent because the Dockerfile is outside it or missing."""


@dataclass(frozen=True)
class IgnorePattern:
    """One ignore-file pattern after cleaning, with its compiled regular expression."""

    pattern: str
    reinclude: bool
    regex: re.Pattern[str]


def find_ignore_file(context: Path, dockerfile: Path | None = None) -> Path | None:
    """Return the ignore file the engine would read for this context, or None."""
    if dockerfile is not None:
        beside_dockerfile = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if beside_dockerfile.is_file():
            return beside_dockerfile
    for name in CONTEXT_IGNORE_FILES:
        candidate = context / name
        if candidate.is_file():
            return candidate
    return None


def parse_ignore_text(text: str) -> list[IgnorePattern]:
    """Parse ignore-file text into patterns, in file order."""
    patterns = []
    for line in text.removeprefix("\ufeff").split("\n"):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        reinclude = line.startswith("!")
        if reinclude:
            line = line[1:]
            if not line:
                raise ValueError('invalid ignore pattern "!": a re-include needs a pattern after "!"')
        cleaned = _clean_pattern(line)
        patterns.append(IgnorePattern(cleaned, reinclude, pattern_to_regex(cleaned)))
    return patterns


def _clean_pattern(pattern: str) -> str:
    # posixpath.normpath keeps a leading "//", which Go's filepath.Clean folds to "/".
    cleaned = posixpath.normpath(pattern)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return cleaned


def pattern_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile one cleaned ignore pattern into a regex matched against whole relative paths."""
    parts = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        position += 1
        if char == "*" and pattern[position:position + 1] == "*":
            position += 1
            if pattern[position:position + 1] == "/":
                position += 1
            # "**" at the end matches everything below. Elsewhere it matches zero or more
            # whole segments, so "**/a" matches "a" as well as "x/y/a".
            parts.append(".*" if position == len(pattern) else "(?:.*/)?")
        elif char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "\\":
            if position < len(pattern):
                parts.append(re.escape(pattern[position]))
                position += 1
            else:
                parts.append(re.escape("\\"))
        elif char in "[]":
            parts.append(char)
        else:
            parts.append(re.escape(char))
    try:
        return re.compile("".join(parts), re.DOTALL)
    except re.error as error:
        raise ValueError(f"invalid ignore pattern {pattern!r}: {error}") from error


def is_excluded(path: str, patterns: list[IgnorePattern]) -> bool:
    """Return whether a context-relative POSIX path is left out of the build context."""
    parents = _parent_paths(path)
    excluded = False
    for pattern in patterns:
        if pattern.regex.fullmatch(path) or any(pattern.regex.fullmatch(parent) for parent in parents):
            excluded = not pattern.reinclude
    return excluded


def _parent_paths(path: str) -> list[str]:
    segments = path.split("/")[:-1]
    return ["/".join(segments[:count]) for count in range(1, len(segments) + 1)]


@dataclass(frozen=True)
class ContextSelection:
    """Files and folders of a build context after the ignore file, as context-relative paths."""

    files: list[str]
    directories: list[str]


def select_context(context: Path, dockerfile: Path | None = None) -> ContextSelection:
    """Walk the context and return the files and folders that the engine keeps."""
    ignore_file = find_ignore_file(context, dockerfile)
    patterns = _read_patterns(ignore_file) if ignore_file else []
    has_reincludes = any(pattern.reinclude for pattern in patterns)
    files: list[str] = []
    directories: set[str] = set()

    for folder, subfolders, names in os.walk(context):
        relative_folder = Path(folder).relative_to(context).as_posix()
        prefix = "" if relative_folder == "." else relative_folder + "/"
        kept_subfolders = []
        for name in sorted(subfolders):
            relative = prefix + name
            if os.path.islink(os.path.join(folder, name)):
                # os.walk does not follow links to folders, and the engine sends the link itself.
                names.append(name)
                continue
            excluded = is_excluded(relative, patterns)
            if not excluded:
                directories.add(relative)
            # A "!" pattern may re-include something below an excluded folder, so the walk
            # only prunes excluded folders when the ignore file has no "!" pattern.
            if not excluded or has_reincludes:
                kept_subfolders.append(name)
        subfolders[:] = kept_subfolders
        for name in names:
            relative = prefix + name
            if not is_excluded(relative, patterns):
                files.append(relative)
                directories.update(_parent_paths(relative))

    return ContextSelection(files=sorted(files), directories=sorted(directories))


def _read_patterns(ignore_file: Path) -> list[IgnorePattern]:
    try:
        return parse_ignore_text(ignore_file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ContextError(f"{ignore_file}: {error}", "Fix or remove the pattern in the ignore file.") from None


def context_files(context: Path, dockerfile: Path | None = None) -> list[str]:
    """Return the sorted context-relative paths of the files (and links) the engine receives."""
    return select_context(context, dockerfile).files


def dockerfile_in_context(context: Path, dockerfile: Path) -> str:
    """Return the Dockerfile's POSIX path relative to the context, as the build API expects it."""
    resolved_context = context.resolve()
    resolved_dockerfile = (dockerfile if dockerfile.is_absolute() else resolved_context / dockerfile).resolve()
    try:
        relative = resolved_dockerfile.relative_to(resolved_context)
    except ValueError:
        raise ContextError(
            f"Dockerfile {dockerfile} is outside the build context {context}",
            "Move the Dockerfile into the context folder, or set context to a folder that contains it.",
        ) from None
    if not resolved_dockerfile.is_file():
        raise ContextError(f"Dockerfile {dockerfile} not found in the build context {context}",
                           "Fix the dockerfile path in the service settings.")
    return relative.as_posix()


def build_context_tar(context: Path, dockerfile: Path | None = None) -> BinaryIO:
    """Write the build context into a temporary tar file and return it, rewound.

    The archive contains exactly the selected files, plus the Dockerfile and the ignore file
    even when the ignore file excludes them, because the engine must read both. The engine
    applies the ignore file again, so an excluded Dockerfile is still left out of COPY.
    Owners are set to root and user names cleared, so the archive does not depend on
    who runs the build.
    """
    context = context.resolve()
    always_sent = []
    if dockerfile is not None:
        always_sent.append(dockerfile_in_context(context, dockerfile))
        dockerfile = context / always_sent[0]
    selection = select_context(context, dockerfile)
    ignore_file = find_ignore_file(context, dockerfile)
    if ignore_file is not None:
        always_sent.append(ignore_file.relative_to(context).as_posix())

    members = sorted(set(selection.files) | set(always_sent))
    directories = set(selection.directories)
    for member in always_sent:
        directories.update(_parent_paths(member))

    archive_file = tempfile.TemporaryFile()
    with tarfile.open(fileobj=archive_file, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for relative in sorted(directories) + members:
            _add_member(archive, context, relative)
    archive_file.seek(0)
    return archive_file


def _add_member(archive: tarfile.TarFile, context: Path, relative: str) -> None:
    info = archive.gettarinfo(str(context / relative), arcname=relative)
    if info is None:
        # NOTE: sockets have no tar form, so they are left out though context_files lists them.
        return
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isreg():
        with open(context / relative, "rb") as source:
            archive.addfile(info, source)
    else:
        archive.addfile(info, io.BytesIO(b""))
