"""Wheelhouse phase: build the wheelhouse with live progress, or reuse it when it still matches."""

from pathlib import Path

import pytest

from build_suite.manifest import load_manifest, sha256_file
from build_suite.validation import check_pin_conflicts
from plugins.fixtures import REQUIREMENTS_TITLE, problems_text, target_spec


def test_requirement_pins_agree(build_config):
    problems = check_pin_conflicts(build_config.wheelhouse.requirements, target_spec(build_config))
    if problems:
        pytest.fail(problems_text(REQUIREMENTS_TITLE, problems), pytrace=False)


def test_wheelhouse_built(wheelhouse):
    assert wheelhouse.wheels, "the wheelhouse holds no wheels"
    print(wheelhouse.summary)


def test_manifest_matches_files(wheelhouse):
    manifest = load_manifest(wheelhouse.output)
    assert manifest is not None, f"no manifest in {wheelhouse.output}: rebuild with --clean"
    for record in manifest.wheels:
        path = Path(wheelhouse.output) / record.filename
        assert path.is_file(), f"{record.filename} is in the manifest but not in {wheelhouse.output}"
        assert sha256_file(path) == record.sha256, f"{record.filename}: sha256 differs from the manifest"
