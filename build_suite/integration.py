"""Run a project's own integration tests against the running containers, in a separate pytest process.

The tests run in their own process with an empty pytest configuration, so the
harness's plugins and markers never apply to them. Each service's URL is
passed as BUILD_SUITE_<SERVICE>_URL, with the name upper-cased and dashes
turned into underscores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from build_suite.piprunner import RunResult, run_streaming


def url_variable(service: str) -> str:
    return "BUILD_SUITE_" + re.sub(r"[^A-Z0-9]", "_", service.upper()) + "_URL"


def base_argv(tests: Path, ini: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", str(tests), "-c", str(ini), "--rootdir", str(tests),
            "-p", "no:cacheprovider"]


def collect_tests(tests: Path, timeout: float = 120) -> list[str]:
    """Return the node ids of the integration tests, or raise RuntimeError with pytest's output."""
    with tempfile.TemporaryDirectory(prefix="build-suite-integration-") as folder:
        ini = Path(folder, "pytest.ini")
        ini.write_text("[pytest]\n")
        completed = subprocess.run(base_argv(tests, ini) + ["--collect-only", "-q"], capture_output=True,
                                   text=True, timeout=timeout, cwd=tests, check=False)
    ids = [line.strip() for line in completed.stdout.splitlines() if "::" in line]
    if completed.returncode not in (0, 5) or (completed.returncode == 0 and not ids):
        raise RuntimeError(f"collecting the integration tests in {tests} failed with exit code "
                           f"{completed.returncode}:\n{completed.stdout[-3000:]}{completed.stderr[-2000:]}")
    return ids


def run_tests(tests: Path, urls: Mapping[str, str], on_line: Callable[[str], None],
              timeout: float) -> tuple[RunResult, dict[str, dict[str, Any]]]:
    """Run the integration tests; return the run and each test's outcome and message by node id."""
    with tempfile.TemporaryDirectory(prefix="build-suite-integration-") as folder:
        ini = Path(folder, "pytest.ini")
        ini.write_text("[pytest]\n")
        report = Path(folder, "report.json")
        env = dict(os.environ)
        env.update({url_variable(service): url for service, url in urls.items()})
        argv = base_argv(tests, ini) + ["-v", "--json-report", f"--json-report-file={report}"]
        result = run_streaming(argv, env=env, cwd=tests, on_line=on_line, timeout=timeout, stall_timeout=None)
        outcomes = read_outcomes(report) if report.is_file() else {}
    return result, outcomes


def read_outcomes(report: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(report.read_text(encoding="utf-8"))
    outcomes = {}
    for test in data.get("tests", []):
        message = ""
        for stage in ("setup", "call", "teardown"):
            details = test.get(stage) or {}
            if details.get("outcome") in ("failed", "skipped") and details.get("longrepr"):
                message = str(details["longrepr"])
                break
        outcomes[test["nodeid"]] = {"outcome": test["outcome"], "duration": sum(
            (test.get(stage) or {}).get("duration", 0.0) for stage in ("setup", "call", "teardown")),
            "message": message[-4000:]}
    return outcomes
