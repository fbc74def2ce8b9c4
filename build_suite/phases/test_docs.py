"""Docs phase: the project's docs build, when configured, and reports/BUILD.md, always."""

import shutil

import pytest

from build_suite.buildmd import build_markdown
from build_suite.heartbeat import Heartbeat
from build_suite.piprunner import run_streaming
from build_suite.status import format_run_stop

DOCS_TIMEOUT = 600.0


def docs_command(docs):
    if docs.builder == "mkdocs":
        return ["mkdocs", "build", "--strict", "-f", str(docs.source / "mkdocs.yml"), "-d", str(docs.output)]
    return ["sphinx-build", "-b", "html", str(docs.source), str(docs.output)]


def test_docs_built(build_config, build_state, build_output):
    docs = build_config.docs
    if docs.builder == "none":
        build_state.record.set_section("docs", {"built": False, "reason": "no docs builder configured"})
        pytest.skip("no docs builder configured: set [docs] builder to mkdocs or sphinx")
    assert docs.source is not None, "[docs] source is required when a builder is set"
    output = docs.output or build_state.report_dir / "docs"
    command = docs_command(type(docs)(builder=docs.builder, source=docs.source, output=output))
    assert shutil.which(command[0]), f"{command[0]} not found on PATH: install it, or set [docs] builder = \"none\""
    with Heartbeat("docs", build_output.status) as beat:
        def on_line(line):
            beat.update(line[:120])
            build_output.log(line)

        result = run_streaming(command, cwd=build_config.root, on_line=on_line, timeout=DOCS_TIMEOUT,
                               stall_timeout=None)
    build_state.record.set_section("docs", {"built": result.ok, "builder": docs.builder, "output": str(output)})
    build_state.record.artifacts["docs"] = str(output)
    stop = format_run_stop(result, timeout=DOCS_TIMEOUT, program=docs.builder)
    assert not stop, stop
    assert result.returncode == 0, f"{docs.builder} failed with exit code {result.returncode}:\n" + "\n".join(result.tail)


def test_build_summary_written(build_state):
    path = build_state.report_dir / "BUILD.md"
    path.write_text(build_markdown(build_state.record.to_json()), encoding="utf-8")
    build_state.record.artifacts["summary"] = str(path)
    text = path.read_text(encoding="utf-8")
    assert build_state.record.build_id in text
    assert "## Phases" in text
