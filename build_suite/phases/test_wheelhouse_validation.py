"""Wheelhouse validation: every wheel installs in the image for the target, offline."""

import pytest

from build_suite.manifest import load_manifest
from build_suite.offline import check_offline_resolution
from build_suite.sbom import write_sbom
from build_suite.validation import check_duplicates, check_integrity, check_requires_python, check_wheel_tags
from plugins.fixtures import problems_text, target_spec


@pytest.fixture(scope="module")
def validation(build_state):
    section = {"checks": {}}
    build_state.record.set_section("validation", section)
    return section


def record(validation, name, problems):
    validation["checks"][name] = {"passed": not problems,
                                  "problems": [{"file": p.file, "message": p.message, "hint": p.hint}
                                               for p in problems]}


def test_wheel_tags_match_target(wheelhouse, build_config, validation):
    problems = check_wheel_tags(wheelhouse.output, target_spec(build_config))
    record(validation, "tags", problems)
    assert not problems, problems_text("wheels that do not fit the target", problems)


def test_requires_python_matches_target(wheelhouse, build_config, validation):
    problems = check_requires_python(wheelhouse.output, target_spec(build_config))
    record(validation, "requires_python", problems)
    assert not problems, problems_text("wheels whose Requires-Python excludes the target", problems)


def test_no_duplicate_projects(wheelhouse, build_config, validation):
    problems = check_duplicates(wheelhouse.output, build_config.wheelhouse.requirements, target_spec(build_config))
    record(validation, "duplicates", problems)
    assert not problems, problems_text("projects with more than one version", problems)


def test_wheels_intact(wheelhouse, validation):
    manifest = load_manifest(wheelhouse.output)
    hashes = {wheel.filename: wheel.sha256 for wheel in manifest.wheels} if manifest else None
    problems = check_integrity(wheelhouse.output, hashes)
    record(validation, "integrity", problems)
    assert not problems, problems_text("damaged wheels", problems)


def test_resolves_offline_for_target(wheelhouse, build_config, validation):
    problems = check_offline_resolution(wheelhouse.output, build_config.wheelhouse.requirements,
                                        target_spec(build_config))
    record(validation, "offline_resolution", problems)
    assert not problems, problems_text("requirements that do not resolve from the wheelhouse alone", problems)


def test_sbom_written(wheelhouse, build_state, validation):
    path = write_sbom(wheelhouse.output, build_state.report_dir / "sbom.cdx.json",
                      build_state.config.project.name, build_state.config.project.version)
    validation["sbom"] = str(path)
    build_state.record.artifacts["sbom"] = str(path)
    assert path.is_file()
