"""Tests of reports/BUILD.md, rendered from a report's `build` object."""

from __future__ import annotations

from build_suite.buildmd import build_markdown

BUILD = {
    "project": {"name": "shop", "version": "1.2.3"},
    "build_id": "20261205-003014-1fb3",
    "outcome": "passed",
    "started": "2026-12-05T00:30:14+00:00",
    "duration": 46.2,
    "marker_expression": "full",
    "phases": {"security": {"outcome": "passed", "tests": 7, "failed": 0, "skipped": 0}},
    "wheelhouse": {
        "summary": "wheelhouse built: 1 wheels (1 downloaded, 0 built, 0 reused); took 2s, estimated 3s",
        "resolver": "uv",
        "wheels": [{"name": "idna", "version": "3.10", "source": "downloaded"}],
    },
    "security": {
        "findings": [],
        "checks": {"vulnerabilities": {"status": "unavailable", "reason": "no OSV database configured"}},
        "service_checks": {
            "secrets": {"worker": {"status": "checked", "findings": 1}, "api": {"status": "off", "findings": 0}},
            "hadolint": {"api": {"status": "checked", "findings": 0}},
        },
    },
}


def test_build_md_names_resolver() -> None:
    text = build_markdown(BUILD)
    assert "took 2s, estimated 3s, resolved with uv" in text


def test_build_md_lists_service_checks() -> None:
    lines = build_markdown(BUILD).splitlines()
    assert "Vulnerabilities not checked: no OSV database configured." in lines
    assert "hadolint: api checked (0 findings)." in lines
    assert "secrets: api off (0 findings), worker checked (1 findings)." in lines
