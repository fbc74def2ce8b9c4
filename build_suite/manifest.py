"""The wheelhouse manifest: which wheels the folder contains and for which inputs.

`wheelhouse-manifest.json` lies beside the wheels. For each wheel it records
the name, version, file name, sha256 and size, where the wheel came from
(downloaded, built or reused) and how long that took. It also records a
fingerprint of the inputs: the requirement and constraint files with their
includes, the target and the pip options. A later run with the same
fingerprint whose files all still match their sha256 can reuse the folder
without running pip.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from build_suite.errors import WheelhouseError

MANIFEST_NAME = "wheelhouse-manifest.json"
MANIFEST_FORMAT = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelRecord:
    """One file of the wheelhouse. `seconds` is the time spent downloading or building it."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    source: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Manifest:
    """The manifest file's content. `build_deps` are the wheels kept in `build-deps/` for offline sdist builds."""

    fingerprint: str
    wheels: tuple[WheelRecord, ...]
    target: Mapping[str, object] = field(default_factory=dict)
    build_deps: tuple[WheelRecord, ...] = ()
    pip_version: str = ""


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_readable_zip(path: Path) -> bool:
    """Tell whether `path` opens as a zip archive, which a truncated wheel does not."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def fingerprint(
    files: Iterable[Path],
    *,
    target: Mapping[str, object],
    options: Mapping[str, object],
    pip_version: str,
    base: Path | None = None,
) -> str:
    """Return the sha256 over the inputs that decide the wheelhouse's content.

    `files` are the requirement and constraint files including nested ones. A
    file's path relative to `base` counts as well as its content, and a missing
    file counts as missing, so adding or removing an include changes the
    fingerprint while moving the whole project folder does not.
    """
    digest = hashlib.sha256()
    for path in files:
        name = os.path.relpath(path, base) if base is not None else str(path)
        digest.update(name.encode() + b"\0")
        try:
            digest.update(Path(path).read_bytes())
        except OSError:
            digest.update(b"<missing>")
        digest.update(b"\0")
    rest = {"target": dict(target), "options": dict(options), "pip_version": pip_version}
    digest.update(json.dumps(rest, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def manifest_to_json(manifest: Manifest) -> dict[str, object]:
    """Return the JSON-ready form of `manifest`."""
    return {
        "format": MANIFEST_FORMAT,
        "fingerprint": manifest.fingerprint,
        "pip_version": manifest.pip_version,
        "target": dict(manifest.target),
        "wheels": [asdict(record) for record in manifest.wheels],
        "build_deps": [asdict(record) for record in manifest.build_deps],
    }


def manifest_from_json(data: Mapping[str, object]) -> Manifest:
    """Parse the JSON form; raises ValueError when a field is missing or has the wrong type."""
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"manifest format {data.get('format')!r} is not {MANIFEST_FORMAT}")
    fingerprint_value = data.get("fingerprint")
    if not isinstance(fingerprint_value, str):
        raise ValueError("manifest has no fingerprint")
    return Manifest(
        fingerprint=fingerprint_value,
        wheels=_records(data.get("wheels")),
        target=dict(data.get("target") or {}),  # type: ignore[arg-type]
        build_deps=_records(data.get("build_deps", [])),
        pip_version=str(data.get("pip_version", "")),
    )


def _records(items: object) -> tuple[WheelRecord, ...]:
    if not isinstance(items, list):
        raise ValueError("manifest wheel list is missing")
    records = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError(f"manifest wheel entry is not an object: {item!r}")
        try:
            record = WheelRecord(
                name=str(item["name"]),
                version=str(item["version"]),
                filename=str(item["filename"]),
                sha256=str(item["sha256"]),
                size=int(item["size"]),
                source=str(item["source"]),
                seconds=float(item.get("seconds", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"manifest wheel entry is invalid: {item!r}") from error
        if "/" in record.filename or record.filename.startswith("."):
            raise ValueError(f"manifest wheel file name is not a plain file name: {record.filename!r}")
        records.append(record)
    return tuple(records)


def load_manifest(folder: Path) -> Manifest | None:
    """Read the manifest in `folder`; None when it is missing, unreadable or invalid."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        return manifest_from_json(data)
    except (OSError, ValueError, AttributeError):
        return None


def umask() -> int:
    """Return the process's file mode creation mask, read without changing it (Linux), else 0o022."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def make_temp_file(folder: Path, prefix: str, suffix: str = "") -> Path:
    """Create an empty temporary file in `folder` with the mode a plain new file gets (0o666 less the umask).

    tempfile.mkstemp creates files readable by their owner only. Wheels and the
    manifest must keep the usual mode, because images and other users read them.
    """
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(handle)
    os.chmod(name, 0o666 & ~umask())
    return Path(name)


def write_json_atomic(path: Path, data: object) -> None:
    """Write `data` as JSON to `path` through a temporary file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_name = make_temp_file(path.parent, ".tmp-", ".json")
    try:
        with open(temp_name, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def save_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write the manifest into `folder` atomically and return its path."""
    path = folder / MANIFEST_NAME
    write_json_atomic(path, manifest_to_json(manifest))
    return path


def check_file(path: Path, sha256: str, size: int | None = None) -> str | None:
    """Return why the file at `path` does not match (missing, size, sha256), or None when it matches."""
    try:
        actual_size = path.stat().st_size
    except OSError:
        return "missing"
    if size is not None and actual_size != size:
        return f"size {actual_size} bytes, expected {size}"
    actual = sha256_file(path)
    if actual != sha256:
        return f"sha256 {actual[:12]}..., expected {sha256[:12]}..."
    return None


def check_records(folder: Path, records: Sequence[WheelRecord], *, jobs: int = 4) -> dict[str, str]:
    """Check every record's file in `folder` in parallel; return {filename: problem} for the bad ones."""
    def check(record: WheelRecord) -> tuple[str, str | None]:
        return record.filename, check_file(folder / record.filename, record.sha256, record.size)

    # hashlib releases the GIL on large buffers, so threads hash files in parallel.
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(check, records))
    return {filename: problem for filename, problem in results if problem is not None}


def record_for_file(path: Path, source: str, seconds: float, *, sha256: str | None = None) -> WheelRecord:
    """Return the record of the wheel at `path`; `sha256` skips hashing when already checked."""
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename as error:
        raise WheelhouseError(f"invalid wheel file name {path.name}: {error}") from error
    return WheelRecord(
        name=str(name),
        version=str(version),
        filename=path.name,
        sha256=sha256 or sha256_file(path),
        size=path.stat().st_size,
        source=source,
        seconds=round(seconds, 3),
    )
