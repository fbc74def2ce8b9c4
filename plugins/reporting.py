"""Reports of a build session: JSON (pytest-json-report), HTML (pytest-html) and JUnit XML.

The plugin turns the three report writers on for a build session only, so the
project's own `pytest tests` writes none of them. The `build` object of the
JSON report and the summary table of the HTML report both come from the one
BuildRecord that the phases fill in.
"""

from __future__ import annotations

import shutil

import pytest

from build_suite.buildmd import build_markdown
from build_suite.htmlreport import summary_html
from plugins.harness import build_session, finish_record

# Free bytes the reports folder needs before a build starts. The JSON, HTML and JUnit reports and the
# log of the demo stack's full build take about 100 KB together, so this leaves room for a larger stack.
REPORT_SPACE_NEEDED = 1_000_000

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
    free = shutil.disk_usage(state.report_dir).free
    if free < REPORT_SPACE_NEEDED:
        raise pytest.UsageError(report_space_message(str(state.report_dir), free))
    paths = {name: str(state.report_dir / file) for name, file in REPORT_FILES.items()}
    state.record.artifacts.update(paths)

    config.option.json_report = True
    config.option.json_report_file = paths["json"]
    config.option.json_report_indent = 2
    config.option.htmlpath = paths["html"]
    config.option.self_contained_html = True
    config.option.xmlpath = paths["junit"]
    config.pluginmanager.register(BuildReports(state), "build-suite-reports")


def report_space_message(folder: str, free: int) -> str:
    return (f"not enough free space for the reports in {folder}: {free / 1e6:.2f} MB free, "
            f"the reports need at least {REPORT_SPACE_NEEDED / 1e6:.0f} MB\n"
            f"  what to do: free space there, or pass --report-dir with a folder on another file system")


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
