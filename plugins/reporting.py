"""Reports of a build session: JSON (pytest-json-report), HTML (pytest-html) and JUnit XML.

The plugin turns the three report writers on for a build session only, so the
project's own `pytest tests` writes none of them. The `build` object of the
JSON report and the summary table of the HTML report both come from the one
BuildRecord that the phases fill in.
"""

from __future__ import annotations

import pytest

from build_suite.buildmd import build_markdown
from build_suite.htmlreport import summary_html
from plugins.harness import build_session, finish_record

REPORT_FILES = {
    "json": "build-report.json",
    "html": "build-report.html",
    "junit": "junit.xml",
    "log": "build.log",
    "summary": "BUILD.md",
}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    state = build_session(config)
    if state is None:
        return
    state.report_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: str(state.report_dir / file) for name, file in REPORT_FILES.items()}
    state.record.artifacts.update(paths)

    config.option.json_report = True
    config.option.json_report_file = paths["json"]
    config.option.json_report_indent = 2
    config.option.htmlpath = paths["html"]
    config.option.self_contained_html = True
    config.option.xmlpath = paths["junit"]
    config.pluginmanager.register(BuildReports(state), "build-suite-reports")


class BuildReports:
    """Adds the build record to the JSON report and the HTML report's title and summary."""

    def __init__(self, state) -> None:
        self.state = state

    @pytest.hookimpl(optionalhook=True)
    def pytest_json_modifyreport(self, json_report: dict) -> None:
        finish_record(self.state, json_report.get("exitcode", 1))
        build = self.state.record.to_json()
        json_report["build"] = build
        # BUILD.md is rewritten here so that it carries the final outcome, also after a failure.
        summary = self.state.report_dir / "BUILD.md"
        summary.write_text(build_markdown(build), encoding="utf-8")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report) -> None:
        record = self.state.record
        report.title = f"build {record.build_id}: {record.project['name']} {record.project['version']}"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list, summary: list, postfix: list, session) -> None:
        finish_record(self.state, session.exitstatus)
        prefix.extend(summary_html(self.state.record.to_json()))
