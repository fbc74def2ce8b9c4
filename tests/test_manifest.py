"""Tests of the wheelhouse manifest: round trip, fingerprint and corruption detection."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from build_suite.manifest import (
    MANIFEST_NAME,
    Manifest,
    WheelRecord,
    check_file,
    check_records,
    fingerprint,
    is_readable_zip,
    load_manifest,
    manifest_from_json,
    save_manifest,
    sha256_file,
)


def make_wheel(folder: Path, name: str = "demo", version: str = "1.0", payload: bytes = b"x" * 5000) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", payload)
        archive.writestr(f"{name}-{version}.dist-info/METADATA", f"Name: {name}\nVersion: {version}\n")
    return path


def record_for(path: Path, source: str = "downloaded") -> WheelRecord:
    name, version = path.name.split("-")[:2]
    return WheelRecord(name, version, path.name, sha256_file(path), path.stat().st_size, source, 1.5)


def test_manifest_round_trip(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    manifest = Manifest(
        fingerprint="abc",
        wheels=(record_for(wheel),),
        target={"python": "3.11", "arch": "x86_64"},
        build_deps=(record_for(wheel, "downloaded"),),
        pip_version="23.2.1",
    )
    path = save_manifest(tmp_path, manifest)
    assert path == tmp_path / MANIFEST_NAME
    assert load_manifest(tmp_path) == manifest
    assert not list(tmp_path.glob(".tmp-*"))


def test_manifest_missing_is_none(tmp_path: Path) -> None:
    assert load_manifest(tmp_path) is None


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"format": 99, "fingerprint": "a", "wheels": []}),
        json.dumps({"format": 1, "wheels": []}),
        json.dumps({"format": 1, "fingerprint": "a", "wheels": [{"name": "x"}]}),
        json.dumps({"format": 1, "fingerprint": "a", "wheels": "nope"}),
        json.dumps([1, 2]),
    ],
)
def test_manifest_invalid_is_none(tmp_path: Path, content: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(content)
    assert load_manifest(tmp_path) is None


def test_manifest_rejects_path_in_filename() -> None:
    data = {
        "format": 1,
        "fingerprint": "a",
        "wheels": [{"name": "x", "version": "1", "filename": "../x-1-py3-none-any.whl", "sha256": "0", "size": 1, "source": "built"}],
    }
    with pytest.raises(ValueError):
        manifest_from_json(data)


def test_check_file_detects_changes(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    record = record_for(wheel)
    assert check_file(wheel, record.sha256, record.size) is None

    data = bytearray(wheel.read_bytes())
    data[10] ^= 0xFF
    wheel.write_bytes(bytes(data))
    problem = check_file(wheel, record.sha256, record.size)
    assert problem is not None and problem.startswith("sha256")

    wheel.write_bytes(bytes(data[:100]))
    problem = check_file(wheel, record.sha256, record.size)
    assert problem is not None and problem.startswith("size")

    wheel.unlink()
    assert check_file(wheel, record.sha256, record.size) == "missing"


def test_check_records_lists_only_bad(tmp_path: Path) -> None:
    good = make_wheel(tmp_path, "good")
    bad = make_wheel(tmp_path, "bad")
    records = [record_for(good), record_for(bad)]
    bad.write_bytes(bad.read_bytes()[:-10])
    problems = check_records(tmp_path, records, jobs=2)
    assert list(problems) == [bad.name]


def test_truncated_wheel_is_unreadable_zip(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    assert is_readable_zip(wheel)
    wheel.write_bytes(wheel.read_bytes()[:1000])
    assert not is_readable_zip(wheel)


def test_fingerprint_follows_inputs(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("idna==3.10\n")
    target = {"python": "3.11"}
    options = {"index_url": ""}
    first = fingerprint([requirements], target=target, options=options, pip_version="")
    assert fingerprint([requirements], target=target, options=options, pip_version="") == first

    requirements.write_text("idna==3.9\n")
    assert fingerprint([requirements], target=target, options=options, pip_version="") != first
    requirements.write_text("idna==3.10\n")
    assert fingerprint([requirements], target={"python": "3.12"}, options=options, pip_version="") != first
    assert fingerprint([requirements], target=target, options={"index_url": "x"}, pip_version="") != first
    assert fingerprint([requirements, tmp_path / "missing.txt"], target=target, options=options, pip_version="") != first
