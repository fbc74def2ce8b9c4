"""Tests of the harness as a user runs it: marker selection, bad input, and the three reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import jsonschema
import pytest

from build_suite.engine import connect_engine
from build_suite.errors import BuildSuiteError

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo-stack"
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
PHASE_MARKERS = ["validate", "wheelhouse", "images", "containers", "integration", "benchmark", "security", "docs"]


def engine_reachable() -> str:
    try:
        connect_engine().close()
    except BuildSuiteError as error:
        return error.message
    return ""


def run_build(pytester: pytest.Pytester, report_dir: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        str(ROOT / "build_suite"), "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT),
        "--report-dir", str(report_dir), "--progress", "plain", *args)


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line.strip() for line in result.outlines if "::" in line and line.strip().startswith("build_suite/")]


def read_reports(report_dir: Path) -> tuple[dict, str, ElementTree.Element]:
    report = json.loads((report_dir / "build-report.json").read_text())
    html = (report_dir / "build-report.html").read_text()
    junit = ElementTree.parse(report_dir / "junit.xml").getroot()
    return report, html, junit


@pytest.mark.parametrize("marker", PHASE_MARKERS)
def test_marker_selects_only_its_phase(pytester: pytest.Pytester, tmp_path: Path, marker: str) -> None:
    result = run_build(pytester, tmp_path / "reports", "--collect-only", "-q", "-m", marker)
    ids = collected_ids(result)
    phase = "environment" if marker == "validate" else marker
    assert ids, f"-m {marker} selected nothing:\n{result.stdout.str()}"
    for nodeid in ids:
        module = nodeid.split("::")[0]
        assert Path(module).stem.split("_")[1] == phase, nodeid


def test_full_selects_every_phase(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = run_build(pytester, tmp_path / "reports", "--collect-only", "-q", "-m", "full")
    phases = {Path(nodeid.split("::")[0]).stem.split("_")[1] for nodeid in collected_ids(result)}
    assert {"environment", "wheelhouse", "images", "containers"} <= phases


def test_unknown_marker_is_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = run_build(pytester, tmp_path / "reports", "--collect-only", "-m", "wheelhous")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*unknown marker 'wheelhous'*"])


@pytest.mark.parametrize("text, fragment", [
    ("[project\n", "invalid TOML"),
    ('[project]\nname = "x"\nversion = "1"\nflavour = 1\n', "project.flavour: unknown key"),
    ('[project]\nname = 5\n', "project.name: expected a string"),
])
def test_broken_config_exits_4_without_traceback(pytester: pytest.Pytester, tmp_path: Path, text: str,
                                                 fragment: str) -> None:
    config = tmp_path / "buildsuite.toml"
    config.write_text(text)
    result = run_build(pytester, tmp_path / "reports", "-m", "validate", "--build-config", str(config))
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 4
    assert fragment in output
    assert str(config) in output
    assert "Traceback" not in output
    assert not (tmp_path / "reports" / "build-report.json").exists()


def demo_config_with(tmp_path: Path, replace: tuple[str, str] | None = None) -> Path:
    """Write a copy of the demo stack's configuration whose paths point into the demo stack."""
    text = (DEMO / "buildsuite.toml").read_text()
    if replace:
        text = text.replace(*replace) if replace[0] in text else text + replace[1]
    folder = tmp_path / "stack"
    folder.mkdir()
    config = folder / "buildsuite.toml"
    config.write_text(text)
    for entry in DEMO.iterdir():
        if entry.name != "buildsuite.toml" and entry.name != "wheelhouse":
            (folder / entry.name).symlink_to(entry)
    return config


@pytest.mark.skipif(bool(engine_reachable()), reason=f"no container engine: {engine_reachable()}")
def test_validate_writes_three_reports(pytester: pytest.Pytester, tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    result = run_build(pytester, report_dir, "-m", "validate")
    assert result.ret == 0, result.stdout.str()
    report, html, junit = read_reports(report_dir)
    build = report["build"]
    jsonschema.validate(build, SCHEMA)
    assert build["outcome"] == "passed"
    assert build["marker_expression"] == "validate"
    assert build["phases"]["environment"]["outcome"] == "passed"
    assert build["phases"]["environment"]["tests"] == 7
    assert build["phases"]["wheelhouse"]["outcome"] == "not run"
    assert build["environment"]["engine"]["kind"] in ("podman", "docker")
    assert build["wheelhouse"] is None
    assert build["build_id"] in html
    assert "Phases" in html
    assert int(junit.get("tests") or junit[0].get("tests")) == 7
    result.stdout.fnmatch_lines(["build id: *", "engine: *", "phases: environment", "*build summary*"])


def test_failing_check_still_writes_reports(pytester: pytest.Pytester, tmp_path: Path) -> None:
    config = demo_config_with(tmp_path, ("[environment]", "\n[environment]\nmin_memory_gb = 100000\n"))
    report_dir = tmp_path / "reports"
    result = run_build(pytester, report_dir, "-m", "validate", "--build-config", str(config))
    assert result.ret == 1
    report, html, junit = read_reports(report_dir)
    build = report["build"]
    jsonschema.validate(build, SCHEMA)
    assert build["outcome"] == "failed"
    assert build["phases"]["environment"]["outcome"] == "failed"
    assert "memory" in result.stdout.str()
    assert "min_memory_gb" in result.stdout.str()
    failures = junit.findall(".//failure")
    assert failures
    result.stdout.fnmatch_lines(["*failed phases: environment*"])


def test_project_tests_write_no_reports(pytester: pytest.Pytester, tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    result = pytester.runpytest_subprocess(
        str(ROOT / "tests" / "test_config.py"), "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT),
        "--report-dir", str(report_dir), "-k", "find_cycle")
    assert result.ret == 0
    assert not report_dir.exists()
