"""The HTML report of a real full build, rendered by headless Chromium.

The build is the demo stack's, with a made-up access key planted in one build
context, so that every table of the report has rows: wheels, images,
containers, benchmark figures and a security finding.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_phases import ENGINE_PROBLEM, copy_demo_stack, remove_project, run_build  # noqa: E402

CHROMIUM = shutil.which("chromium")
FAKE_KEY = "AKIA" + "HTMLFAKE7EXAMPLE"  # access-key-shaped, made up for this test
TABLES = ["Build", "Phases", "Wheels", "Images", "Containers", "Benchmarks", "Security checks", "Security findings"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: install Debian's chromium package"),
    pytest.mark.skipif(bool(ENGINE_PROBLEM), reason=f"no container engine: {ENGINE_PROBLEM}"),
]


class TableReader(HTMLParser):
    """Parser of the rendered DOM: each bs-table under the h3 title before it, and the timeline's labels."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.title = ""
        self.in_title = False
        self.current: list[list[str]] | None = None
        self.cell: list[str] | None = None
        self.svg_rects = 0
        self.svg_labels: list[str] = []
        self.in_svg_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "h3":
            self.in_title, self.title = True, ""
        elif tag == "table" and "bs-table" in classes:
            self.current = self.tables.setdefault(self.title, [])
        elif tag == "tr" and self.current is not None:
            self.current.append([])
        elif tag in ("td", "th") and self.current is not None:
            self.cell = []
        elif tag == "rect":
            self.svg_rects += 1
        elif tag == "text":
            self.in_svg_text = True
            self.svg_labels.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3":
            self.in_title = False
        elif tag == "table":
            self.current = None
        elif tag in ("td", "th") and self.current is not None and self.cell is not None:
            self.current[-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "text":
            self.in_svg_text = False

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        if self.cell is not None:
            self.cell.append(data)
        if self.in_svg_text:
            self.svg_labels[-1] += data


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    project = "html-demo"
    folder = tmp_path_factory.mktemp("html")
    config = copy_demo_stack(folder / "stack", project)
    (folder / "stack" / "services" / "worker" / "worker" / "keys.py").write_text(f'ACCESS_KEY_ID = "{FAKE_KEY}"\n')
    try:
        run = run_build(config, folder / "reports", "-m", "full")
    finally:
        remove_project(project)
    assert run.returncode == 1, run.output[-6000:]
    assert run.build["outcome"] == "failed"
    return folder / "reports" / "build-report.html"


@pytest.fixture(scope="module")
def dom(report: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    completed = chromium("--dump-dom", report.as_uri(), profile=tmp_path_factory.mktemp("profile"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "<html" in completed.stdout
    return completed.stdout


@pytest.fixture(scope="module")
def tables(dom: str) -> TableReader:
    reader = TableReader()
    reader.feed(dom)
    return reader


def rows_of(tables: TableReader, title: str) -> list[dict[str, str]]:
    header, *rows = tables.tables[title]
    return [dict(zip(header, row)) for row in rows]


def test_report_has_every_table(tables: TableReader) -> None:
    for title in TABLES:
        assert title in tables.tables, f"no {title} table in {sorted(tables.tables)}"
        assert len(tables.tables[title]) >= 2, f"the {title} table has no rows"
        assert tables.tables[title][1] != ["none"], f"the {title} table is empty"


def test_report_draws_timeline(dom: str, tables: TableReader) -> None:
    assert re.search(r'<svg[^>]*class="bs-timeline"', dom)
    labels = [label.strip() for label in tables.svg_labels]
    for phase in ("environment", "wheelhouse", "images", "containers", "integration", "security"):
        assert phase in labels, labels
    assert "docopt" in labels, "the sdist build is missing from the timeline"
    assert tables.svg_rects >= 8


def test_report_rows_match_build(tables: TableReader) -> None:
    images = {row["service"]: row for row in rows_of(tables, "Images")}
    assert set(images) == {"api", "worker"}
    for row in images.values():
        assert re.fullmatch(r"\d+\.\d MB", row["size"]), row
    containers = {row["service"]: row for row in rows_of(tables, "Containers")}
    assert containers["api"]["status"] == "healthy"
    assert float(containers["api"]["seconds to healthy"]) > 0
    wheels = {row["name"]: row for row in rows_of(tables, "Wheels")}
    assert wheels["docopt"]["source"].startswith("built"), wheels["docopt"]
    figures = {(row["service"], row["figure"]): row for row in rows_of(tables, "Benchmarks")}
    assert re.fullmatch(r"\d+\.\d MB", figures[("api", "image size")]["value"])
    findings = rows_of(tables, "Security findings")
    # Both services build from the demo stack's folder, so each reports the planted file.
    secrets = [row for row in findings if row["check"] == "secrets"]
    assert {row["where"] for row in secrets} == {"services/worker/worker/keys.py:1"}
    assert sorted(row["message"] for row in secrets) == ["service api: possible secret in the build context",
                                                         "service worker: possible secret in the build context"]
    checks = {(row["check"], row["service"]): row for row in rows_of(tables, "Security checks")}
    for check in ("secrets", "hadolint", "image"):
        for service in ("api", "worker"):
            assert checks[(check, service)]["status"] == "checked", checks
    assert checks[("secrets", "worker")]["findings"] == "1"
    assert checks[("vulnerabilities", "wheelhouse")]["status"] in ("checked", "unavailable")
    phases = {row["phase"]: row for row in rows_of(tables, "Phases")}
    assert phases["security"]["outcome"] == "failed"
    assert phases["images"]["outcome"] == "passed"


def test_report_hides_planted_key(dom: str, report: Path) -> None:
    assert FAKE_KEY not in dom
    assert FAKE_KEY not in report.read_text()


def test_report_screenshot(report: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    completed = chromium(f"--screenshot={screenshot}", "--window-size=1400,2400", report.as_uri(),
                         profile=tmp_path / "profile")
    assert completed.returncode == 0, completed.stderr[-3000:]
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 2400)
    assert len(data) > 50_000, "the screenshot is nearly blank"
