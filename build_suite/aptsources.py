"""Read the host's apt sources and derive mmdebstrap mirror lines for another Debian suite.

The host's entries for its own release (for example bookworm, bookworm-updates and
bookworm-security) are rewritten for the requested suite (trixie, trixie-updates,
trixie-security), so the mirror hosts come from the host's configuration and are never
hard-coded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

APT_ROOT = Path("/etc/apt")
OS_RELEASE = Path("/etc/os-release")
# Debian suites without -updates or -security companions.
SUITES_WITHOUT_UPDATES = ("sid", "unstable", "experimental")


@dataclass(frozen=True)
class AptSource:
    """One `deb` entry: a repository URI, a suite and its components."""

    uri: str
    suite: str
    components: tuple[str, ...]


def read_host_sources(apt_root: Path = APT_ROOT, os_release: Path = OS_RELEASE) -> tuple[str, list[AptSource]]:
    """Return the host's release codename and its enabled `deb` sources (deb822 and one-line files)."""
    sources: list[AptSource] = []
    one_line_files = [apt_root / "sources.list", *sorted((apt_root / "sources.list.d").glob("*.list"))]
    for path in one_line_files:
        if path.is_file():
            sources.extend(parse_one_line_sources(path.read_text(errors="replace")))
    for path in sorted((apt_root / "sources.list.d").glob("*.sources")):
        sources.extend(parse_deb822_sources(path.read_text(errors="replace")))
    return read_codename(os_release), sources


def read_codename(os_release: Path = OS_RELEASE) -> str:
    """Return VERSION_CODENAME from os-release, or "" when it is missing."""
    try:
        text = os_release.read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME":
            return value.strip().strip('"')
    return ""


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Parse sources.list lines such as `deb [signed-by=...] URI SUITE COMPONENT...`."""
    sources = []
    for raw_line in text.splitlines():
        words = raw_line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            # Options run until the word that ends with "]".
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            sources.append(AptSource(words[0], words[1], tuple(words[2:])))
    return sources


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Parse a deb822 .sources file into one AptSource per URI and suite."""
    sources = []
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                sources.append(AptSource(uri, suite, components))
    return sources


def _deb822_stanzas(text: str) -> Iterable[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
            continue
        if line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        stanza[key] = value.strip()
    if stanza:
        yield stanza


def debian_mirror_lines(suite: str, host: tuple[str, Sequence[AptSource]]) -> list[str]:
    """Return mmdebstrap mirror lines for `suite`, rewritten from the host's release entries.

    An entry counts as the host's release when its suite is the codename or starts with
    "<codename>-". Returns [] when no entry matches, so the caller can ask for a mirror.
    """
    codename, sources = host
    if not codename:
        return []
    lines: list[str] = []
    for source in sources:
        if source.suite == codename:
            target_suite = suite
        elif source.suite.startswith(codename + "-"):
            if suite in SUITES_WITHOUT_UPDATES:
                continue
            target_suite = suite + source.suite[len(codename):]
        else:
            continue
        components = " ".join(source.components) or "main"
        line = f"deb {source.uri} {target_suite} {components}"
        if line not in lines:
            lines.append(line)
    return lines
