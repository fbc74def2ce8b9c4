"""Tests for build_suite.sbom: CycloneDX JSON for a wheelhouse, checked with the library's schema validator."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.utils import InvalidWheelFilename

from build_suite.sbom import render_sbom, validate_sbom, wheelhouse_bom, write_sbom


def make_wheel_file(directory: Path, filename: str) -> Path:
    """Write a small zip under a wheel filename; the SBOM reads only the name and the bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("module.py", f"# {filename}\n")
    return path


@pytest.fixture()
def wheelhouse(tmp_path: Path) -> Path:
    directory = tmp_path / "wheelhouse"
    make_wheel_file(directory, "requests-2.32.5-py3-none-any.whl")
    make_wheel_file(directory, "typing_extensions-4.12.2-py3-none-any.whl")
    make_wheel_file(directory, "orjson-3.11.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    make_wheel_file(directory, "orjson-3.11.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    (directory / "manifest.json").write_text("{}", encoding="utf-8")
    return directory


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sbom_valid_against_cyclonedx_schema(wheelhouse):
    text = render_sbom(wheelhouse_bom(wheelhouse, "demo-stack", "0.1.0"))

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)

    assert error is None, str(error)


def test_sbom_one_component_per_wheel(wheelhouse):
    document = json.loads(render_sbom(wheelhouse_bom(wheelhouse)))

    components = {component["bom-ref"]: component for component in document["components"]}
    wheels = sorted(path.name for path in wheelhouse.glob("*.whl"))
    assert sorted(components) == wheels
    typing = components["typing_extensions-4.12.2-py3-none-any.whl"]
    assert typing["name"] == "typing-extensions"
    assert typing["version"] == "4.12.2"
    assert typing["purl"] == "pkg:pypi/typing-extensions@4.12.2"
    assert typing["type"] == "library"


def test_sbom_hashes_match_files(wheelhouse):
    document = json.loads(render_sbom(wheelhouse_bom(wheelhouse)))

    for component in document["components"]:
        path = wheelhouse / component["bom-ref"]
        assert component["hashes"] == [{"alg": "SHA-256", "content": sha256(path)}]


def test_sbom_names_application(wheelhouse):
    document = json.loads(render_sbom(wheelhouse_bom(wheelhouse, "demo-stack", "0.1.0")))

    assert document["metadata"]["component"]["name"] == "demo-stack"
    assert document["metadata"]["component"]["version"] == "0.1.0"
    root = [entry for entry in document["dependencies"] if entry["ref"] == "demo-stack"]
    assert len(root[0]["dependsOn"]) == 4


def test_write_sbom_creates_file(wheelhouse, tmp_path):
    output = write_sbom(wheelhouse, tmp_path / "reports" / "sbom.cdx.json", "demo-stack", "0.1.0")

    text = output.read_text(encoding="utf-8")
    assert validate_sbom(text) is None
    assert json.loads(text)["bomFormat"] == "CycloneDX"


def test_empty_wheelhouse_valid_sbom(tmp_path):
    text = render_sbom(wheelhouse_bom(tmp_path))

    assert validate_sbom(text) is None
    assert json.loads(text).get("components", []) == []


def test_validate_sbom_reports_schema_error():
    error = validate_sbom(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": "one"}))

    assert error is not None
    assert "version" in error


def test_invalid_wheel_filename_raises(tmp_path):
    make_wheel_file(tmp_path, "not-a-wheel.whl")

    with pytest.raises(InvalidWheelFilename):
        wheelhouse_bom(tmp_path)
