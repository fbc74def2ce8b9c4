"""CycloneDX software bill of materials (SBOM) for a wheelhouse.

Each wheel becomes one library component with its name, version, PyPI package
URL and sha256. The JSON is written by cyclonedx-python-lib in CycloneDX 1.6.
"""

from __future__ import annotations

from pathlib import Path

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from build_suite.manifest import sha256_file

SCHEMA_VERSION = SchemaVersion.V1_6


def wheel_component(path: Path) -> Component:
    """Describe one wheel file as a CycloneDX library component.

    Raises InvalidWheelFilename when the file name does not follow the wheel format.
    """
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidVersion as error:
        raise InvalidWheelFilename(f"invalid version in wheel filename {path.name!r}: {error}") from error
    # Several wheels of one release (one per tag) share a purl, so the file name is the bom-ref.
    return Component(
        type=ComponentType.LIBRARY,
        name=name,
        version=str(version),
        purl=PackageURL(type="pypi", name=name, version=str(version)),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256_file(path))],
        bom_ref=path.name,
    )


def wheelhouse_bom(wheelhouse: Path, project_name: str | None = None, project_version: str | None = None) -> Bom:
    """Build a Bom with one component per *.whl file in `wheelhouse`, sorted by file name.

    With `project_name`, the Bom's metadata names the application, which depends on every wheel.
    Raises InvalidWheelFilename for a wheel whose file name is invalid.
    """
    wheels = sorted(path for path in Path(wheelhouse).iterdir() if path.is_file() and path.name.endswith(".whl"))
    components = [wheel_component(path) for path in wheels]
    bom = Bom(components=components)
    if project_name is not None:
        application = Component(
            type=ComponentType.APPLICATION, name=project_name, version=project_version, bom_ref=project_name
        )
        bom.metadata.component = application
        bom.register_dependency(application, components)
    return bom


def render_sbom(bom: Bom) -> str:
    """Serialize the Bom as CycloneDX 1.6 JSON."""
    return JsonV1Dot6(bom).output_as_string(indent=2)


def validate_sbom(text: str) -> str | None:
    """Validate SBOM JSON against the CycloneDX 1.6 schema; return the first error, or None when valid."""
    error = JsonStrictValidator(SCHEMA_VERSION).validate_str(text)
    return None if error is None else str(error)


def write_sbom(
    wheelhouse: Path, output: Path, project_name: str | None = None, project_version: str | None = None
) -> Path:
    """Write the wheelhouse's SBOM to `output` and return the path.

    Raises ValueError when the generated document fails schema validation, which
    would be a defect in this module or in cyclonedx-python-lib.
    """
    text = render_sbom(wheelhouse_bom(wheelhouse, project_name, project_version))
    error = validate_sbom(text)
    if error is not None:
        raise ValueError(f"generated SBOM is invalid against CycloneDX {SCHEMA_VERSION.to_version()}: {error}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return output

