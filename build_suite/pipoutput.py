"""Parse pip's output lines into events.

pip's wording changes between releases, so the parser matches each known line
shape on its own and turns every other line into Unknown. `parse_line` never
raises. The shapes were checked against the recorded transcripts of pip 23.2.1,
24.0, 24.3.1, 25.3 and 26.3 in tests/transcripts. The event classes live in
pipevents.py, and callers import them from here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from build_suite.pipevents import (
    BuildFailed,
    BuildStep,
    BuildingWheel,
    BuildingWheels,
    Collecting,
    CreatedWheel,
    DownloadProgress,
    Downloading,
    Error,
    ErrorDetail,
    LookingIn,
    Note,
    PipEvent,
    PipWarning,
    Processing,
    ResolvedProgress,
    Saved,
    Stored,
    Unknown,
    UsingCached,
)



_NAME = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
_LOOKING_IN = re.compile(r"^Looking in (?P<kind>indexes|links): (?P<locations>.+)$")
_COLLECTING = re.compile(r"^Collecting (?P<spec>.+?)(?: \(from (?P<origin>.+)\))?$")
_FROM_FILE = re.compile(r"^-[rc] (?P<file>.+?) \(line (?P<number>\d+)\)$")
_SIZE = r"\((?P<size>[\d.,]+\s*[A-Za-z]+)\)"
_DOWNLOADING = re.compile(rf"^Downloading (?P<target>\S+)(?: {_SIZE})?$")
_USING_CACHED = re.compile(rf"^Using cached (?P<target>\S+)(?: {_SIZE})?$")
_PROCESSING = re.compile(r"^Processing (?P<path>.+?)(?: \(from (?P<origin>.+)\))?$")
_BUILDING_WHEELS = re.compile(r"^Building wheels for collected packages: (?P<names>.+)$")
_STEP_STATE = re.compile(
    r"^(?P<step>.+?)(?:"
    r" \.\.\.(?: (?P<dots>\S.*))?"
    r"|: (?P<started>started)"
    r"|: finished with status '(?P<status>[^']*)'"
    r")$"
)
_BUILDING_WHEEL = re.compile(rf"^Building wheel for (?P<name>{_NAME})(?: \((?P<backend>[^)]+)\))?$")
_RUNNING_BDIST = re.compile(rf"^Running setup\.py bdist_wheel for (?P<name>{_NAME})$")
_KNOWN_STEPS = re.compile(
    r"^(Installing build dependencies|Getting requirements to build (?:wheel|editable)"
    r"|Preparing (?:editable )?metadata(?: \([^)]+\))?|Running setup\.py (?:install|develop|clean) for .+)$"
)
_CREATED_WHEEL = re.compile(rf"^Created wheel for (?P<name>{_NAME}): (?P<fields>.+)$")
_STORED = re.compile(r"^Stored in directory: (?P<directory>.+)$")
_SAVED = re.compile(r"^Saved (?P<path>.+)$")
_ALREADY_DOWNLOADED = re.compile(r"^File was already downloaded (?P<path>.+)$")
_SUCCESSFULLY = re.compile(r"^Successfully (?P<kind>built|downloaded) (?P<names>.+)$")
_SATISFIED = re.compile(r"^Requirement already satisfied: (?P<spec>\S+)")
_FAILED_TO_BUILD = re.compile(r"^Failed to build (?P<names>.+)$")
_ERROR = re.compile(r"^(?:ERROR: |error: |×\s)(?P<text>.*)$")
_WARNING = re.compile(r"^(?:WARNING|DEPRECATION): (?P<text>.*)$")
_NOTE = re.compile(r"^(?:note|hint): (?P<text>.*)$")
# The frame of pip's error block: "│ exit code: 1", "╰─> [5 lines of output]".
_ERROR_FRAME = re.compile(r"^(?:│|╰─>)\s*(?P<text>.*)$")
_OUTPUT_START = re.compile(r"^╰─> \[\d+ lines? of output\]$")
_OUTPUT_END = "[end of output]"
# rich's bar ("━━━━ 1.2/10.0 MB 3.1 MB/s eta 0:00:03") and the older bar
# ("|████| 25 kB 1.2 MB/s").
_PROGRESS_RICH = re.compile(
    r"^[━╸╺─\s]*(?P<done>[\d.]+)/(?P<total>[\d.]+)\s+(?P<unit>[kMGT]?B|bytes)(?:\s+(?P<rate>[\d.]+\s*[kMGT]?B/s))?"
)
_PROGRESS_OLD = re.compile(r"^\|[█▉▊▋▌▍▎▏ ]*\|\s+(?P<done>[\d.]+\s*[kMGT]?B)(?:\s+(?P<rate>[\d.]+\s*[kMGT]?B/s))?")

_UNITS = {
    "b": 1, "byte": 1, "bytes": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_SIZE_TEXT = re.compile(r"^\s*(?P<number>[\d.,]+)\s*(?P<unit>[A-Za-z]+)\s*$")


def parse_size(text: str | None) -> int | None:
    """Convert a size such as "25 kB", "1.2 MB" or "500 bytes" to bytes, or None if unreadable.

    pip prints decimal units (kB = 1000 bytes); binary units (KiB) are accepted too.
    """
    if not text:
        return None
    match = _SIZE_TEXT.match(text)
    if match is None:
        return None
    factor = _UNITS.get(match["unit"].lower())
    if factor is None:
        return None
    try:
        return round(float(match["number"].replace(",", "")) * factor)
    except ValueError:
        return None


def package_from_filename(filename: str) -> str | None:
    """Return the canonical project name of a wheel or sdist file name, or None."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        pass
    # Other archives (.tar.bz2, .egg) still have "name-version" in front.
    match = re.match(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._]*(?:-[A-Za-z_][A-Za-z0-9._]*)*)-\d", filename)
    return canonicalize_name(match["name"]) if match else None


def requirement_name(spec: str) -> str | None:
    """Return the project name at the start of a requirement spec, or None for URLs and paths."""
    if "://" in spec or spec.startswith((".", "/", "~")):
        # "name @ https://..." still starts with the name.
        direct = re.match(rf"^(?P<name>{_NAME})\s*(?:\[[^\]]*\])?\s*@\s", spec)
        return direct["name"] if direct else None
    match = re.match(_NAME, spec)
    if match is None:
        return None
    # A valid name never ends in ".", "-" or "_", so those belong to what follows.
    return match.group(0).rstrip(".-_") or None


def parse_line(line: str) -> PipEvent:
    """Parse one output line of pip into an event; lines of unknown shape give Unknown."""
    text = line.strip()
    try:
        event = _parse(text)
    except Exception:  # noqa: BLE001 - a parser bug must never stop a build.
        event = None
    if event is None:
        return Unknown(text=text, line=text)
    return event


def parse_lines(lines: Iterable[str]) -> Iterator[PipEvent]:
    """Parse `lines` with a PipOutputParser, so events get the package they belong to."""
    parser = PipOutputParser()
    for line in lines:
        yield parser.feed(line)


class PipOutputParser:
    """A parser that remembers the requirement being collected and the wheel being built.

    pip names the package only on the "Collecting" and "Building wheel" lines,
    so the lines that follow get `package` from here. Inside the output block
    of a failed build ("╰─> [N lines of output]" to "[end of output]") every
    line is an ErrorDetail, whatever it looks like.
    """

    def __init__(self) -> None:
        self.current_package: str | None = None
        self.in_error_output = False

    def feed(self, line: str) -> PipEvent:
        """Parse `line` and fill its `package` field from the current context."""
        text = line.strip()
        if self.in_error_output:
            if text == _OUTPUT_END:
                self.in_error_output = False
            return ErrorDetail(text=text, line=text)
        if _OUTPUT_START.match(text):
            self.in_error_output = True
        event = parse_line(line)
        if isinstance(event, Collecting):
            self.current_package = event.name
        elif isinstance(event, BuildingWheel):
            self.current_package = event.name
        elif isinstance(event, (Downloading, UsingCached)):
            package = package_from_filename(event.filename) or self.current_package
            event = dataclasses.replace(event, package=package)
        elif isinstance(event, BuildStep) and event.package is None:
            event = dataclasses.replace(event, package=self.current_package)
        return event


def _parse(text: str) -> PipEvent | None:
    if not text:
        return None
    for parse in _PARSERS:
        event = parse(text)
        if event is not None:
            return event
    return None


def _parse_origin(origin: str | None) -> tuple[str | None, str | None, int | None]:
    """Split "a==1->b->-r file (line 2)" into (parent "a==1", file, line number)."""
    if not origin:
        return None, None, None
    chain = origin.split("->")
    requirement_file = line_number = None
    root = _FROM_FILE.match(chain[-1].strip())
    if root is not None:
        requirement_file = root["file"]
        line_number = int(root["number"])
        chain = chain[:-1]
    parent = chain[0].strip() if chain else None
    return parent or None, requirement_file, line_number


def _parse_collecting(text: str) -> PipEvent | None:
    match = _COLLECTING.match(text)
    if match is None:
        return None
    spec = match["spec"].strip()
    parent, requirement_file, line_number = _parse_origin(match["origin"])
    return Collecting(
        name=requirement_name(spec),
        spec=spec,
        parent=parent,
        requirement_file=requirement_file,
        line_number=line_number,
        origin=match["origin"],
        line=text,
    )


def _split_target(target: str) -> tuple[str, str | None]:
    """Return (filename, url or None) for the target of a Downloading or Using cached line."""
    if "://" in target:
        path = target.split("#", 1)[0].split("?", 1)[0]
        return path.rstrip("/").rsplit("/", 1)[-1], target
    return target.rsplit("/", 1)[-1], None


def _parse_downloading(text: str) -> PipEvent | None:
    match = _DOWNLOADING.match(text)
    if match is None:
        return None
    filename, url = _split_target(match["target"])
    size_text = match["size"]
    return Downloading(filename=filename, url=url, size_text=size_text, size=parse_size(size_text), line=text)


def _parse_using_cached(text: str) -> PipEvent | None:
    match = _USING_CACHED.match(text)
    if match is None:
        return None
    filename, _ = _split_target(match["target"])
    size_text = match["size"]
    return UsingCached(filename=filename, size_text=size_text, size=parse_size(size_text), line=text)


def _parse_progress(text: str) -> PipEvent | None:
    match = _PROGRESS_RICH.match(text)
    if match is not None:
        unit = match["unit"]
        return DownloadProgress(
            done=parse_size(f"{match['done']} {unit}"),
            total=parse_size(f"{match['total']} {unit}"),
            rate_text=match["rate"],
            line=text,
        )
    match = _PROGRESS_OLD.match(text)
    if match is not None:
        return DownloadProgress(done=parse_size(match["done"]), total=None, rate_text=match["rate"], line=text)
    return None


def _parse_looking_in(text: str) -> PipEvent | None:
    match = _LOOKING_IN.match(text)
    if match is None:
        return None
    locations = tuple(location.strip() for location in match["locations"].split(", ") if location.strip())
    return LookingIn(kind=match["kind"], locations=locations, line=text)


def _parse_processing(text: str) -> PipEvent | None:
    match = _PROCESSING.match(text)
    if match is None:
        return None
    path = match["path"]
    parent, requirement_file, line_number = _parse_origin(match["origin"])
    filename = path.rstrip("/").rsplit("/", 1)[-1]
    name = package_from_filename(filename) if "." in filename else None
    return Processing(
        path=path,
        name=name,
        parent=parent,
        requirement_file=requirement_file,
        line_number=line_number,
        origin=match["origin"],
        line=text,
    )


def _parse_building_wheels(text: str) -> PipEvent | None:
    match = _BUILDING_WHEELS.match(text)
    return BuildingWheels(names=_split_names(match["names"]), line=text) if match else None


def _parse_step(text: str) -> PipEvent | None:
    """Parse "Building wheel for x (setup.py) ... done" and the other spinner steps."""
    match = _STEP_STATE.match(text)
    step, state = text, None
    if match is not None:
        step = match["step"]
        state = match["dots"] or match["started"] or match["status"]
    wheel = _BUILDING_WHEEL.match(step) or _RUNNING_BDIST.match(step)
    if wheel is not None:
        backend = wheel.groupdict().get("backend")
        return BuildingWheel(name=wheel["name"], backend=backend, state=state, line=text)
    if _KNOWN_STEPS.match(step) or (match is not None and _looks_like_step(step)):
        return BuildStep(step=step, state=state, line=text)
    return None


def _looks_like_step(step: str) -> bool:
    # Spinner lines start with a capitalized verb in "-ing" ("Installing ...",
    # "Preparing ..."); this keeps "foo ... bar" from a compiler out.
    first = step.split(" ", 1)[0]
    return first[:1].isupper() and first.endswith("ing")


def _parse_created_wheel(text: str) -> PipEvent | None:
    match = _CREATED_WHEEL.match(text)
    if match is None:
        return None
    fields = dict(re.findall(r"(\w+)=(\S+)", match["fields"]))
    size = fields.get("size")
    return CreatedWheel(
        name=match["name"],
        filename=fields.get("filename", ""),
        size=int(size) if size and size.isdigit() else None,
        sha256=fields.get("sha256"),
        line=text,
    )


def _parse_stored(text: str) -> PipEvent | None:
    match = _STORED.match(text)
    return Stored(directory=match["directory"], line=text) if match else None


def _parse_saved(text: str) -> PipEvent | None:
    match = _SAVED.match(text)
    if match is not None:
        return Saved(path=match["path"], line=text)
    match = _ALREADY_DOWNLOADED.match(text)
    if match is not None:
        return Saved(path=match["path"], existing=True, line=text)
    return None


def _parse_summary(text: str) -> PipEvent | None:
    match = _SUCCESSFULLY.match(text)
    if match is not None:
        return ResolvedProgress(kind=match["kind"], names=_split_names(match["names"]), line=text)
    match = _SATISFIED.match(text)
    if match is not None:
        name = requirement_name(match["spec"])
        return ResolvedProgress(kind="satisfied", names=(name,) if name else (), line=text)
    match = _FAILED_TO_BUILD.match(text)
    if match is not None:
        return BuildFailed(names=_split_names(match["names"]), line=text)
    return None


def _parse_error(text: str) -> PipEvent | None:
    match = _ERROR.match(text)
    if match is not None:
        return Error(text=match["text"].strip(), line=text)
    match = _WARNING.match(text)
    if match is not None:
        return PipWarning(text=match["text"].strip(), line=text)
    match = _NOTE.match(text)
    if match is not None:
        return Note(text=match["text"].strip(), line=text)
    match = _ERROR_FRAME.match(text)
    if match is not None:
        return ErrorDetail(text=match["text"].strip(), line=text)
    return None


def _split_names(text: str) -> tuple[str, ...]:
    return tuple(name for name in re.split(r"[,\s]+", text.strip()) if name)


_PARSERS = (
    _parse_collecting,
    _parse_looking_in,
    _parse_downloading,
    _parse_using_cached,
    _parse_progress,
    _parse_created_wheel,
    _parse_stored,
    _parse_saved,
    _parse_summary,
    _parse_building_wheels,
    _parse_error,
    _parse_processing,
    _parse_step,
)

