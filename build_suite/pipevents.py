"""The events that pipoutput.py turns pip's output lines into, one class per line shape."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class PipEvent:
    """Base of all events: `line` is the parsed line without surrounding whitespace."""

    line: str = ""


@dataclass(frozen=True)
class LookingIn(PipEvent):
    """The package sources pip uses: kind is "indexes" or "links"; URLs arrive redacted from the runner."""

    kind: str
    locations: tuple[str, ...]


@dataclass(frozen=True)
class Collecting(PipEvent):
    """pip started to look for a requirement.

    `parent` is the requirement that pulled this one in ("python-dateutil==2.9.0"
    in `(from python-dateutil==2.9.0->-r requirements.txt (line 2))`), and
    `requirement_file` and `line_number` name the requirements file line at the
    root of that chain.
    """

    name: str | None
    spec: str
    parent: str | None = None
    requirement_file: str | None = None
    line_number: int | None = None
    origin: str | None = None


@dataclass(frozen=True)
class Downloading(PipEvent):
    """pip started a download. `url` is set only by pip releases that print the whole URL."""

    filename: str
    url: str | None = None
    size_text: str | None = None
    size: int | None = None
    package: str | None = None


@dataclass(frozen=True)
class DownloadProgress(PipEvent):
    """One frame of a download progress bar."""

    done: int | None
    total: int | None
    rate_text: str | None = None


@dataclass(frozen=True)
class UsingCached(PipEvent):
    filename: str
    size_text: str | None = None
    size: int | None = None
    package: str | None = None


@dataclass(frozen=True)
class Processing(PipEvent):
    """pip took a local file or folder, for example a wheel found in a --find-links folder.

    `name` comes from the file name and is None for a folder. The origin
    fields are those of Collecting.
    """

    path: str
    name: str | None = None
    parent: str | None = None
    requirement_file: str | None = None
    line_number: int | None = None
    origin: str | None = None


@dataclass(frozen=True)
class BuildStep(PipEvent):
    """A build or metadata step such as "Installing build dependencies".

    `state` is "started", "done", "error" or another word pip printed, or None
    when the line names the step only.
    """

    step: str
    state: str | None = None
    package: str | None = None


@dataclass(frozen=True)
class BuildingWheels(PipEvent):
    """The list of packages pip is about to build from source."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class BuildingWheel(PipEvent):
    """pip builds one wheel. `backend` is "setup.py" or "pyproject.toml" when shown."""

    name: str
    backend: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class CreatedWheel(PipEvent):
    name: str
    filename: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class Stored(PipEvent):
    """The cache folder where pip stored a built wheel."""

    directory: str


@dataclass(frozen=True)
class Saved(PipEvent):
    """A file in the output folder. `existing` is True for "File was already downloaded"."""

    path: str
    existing: bool = False

    @property
    def filename(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ResolvedProgress(PipEvent):
    """A summary line: kind is "built", "downloaded" or "satisfied"."""

    kind: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class BuildFailed(PipEvent):
    """The "Failed to build a b" summary line."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Error(PipEvent):
    text: str


@dataclass(frozen=True)
class ErrorDetail(PipEvent):
    """A line of pip's framed error block ("│ exit code: 1") or of the failed command's output inside it."""

    text: str


@dataclass(frozen=True)
class Note(PipEvent):
    """A "note:" or "hint:" line that pip prints after an error."""

    text: str


@dataclass(frozen=True)
class PipWarning(PipEvent):
    """A "WARNING:" or "DEPRECATION:" line."""

    text: str


@dataclass(frozen=True)
class Unknown(PipEvent):
    text: str
