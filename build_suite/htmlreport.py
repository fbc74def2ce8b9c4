"""Pure functions that render the build record as HTML fragments for the HTML report.

The fragments go at the top of pytest-html's page: the build facts, one table
per phase, and a timeline of phases and package builds drawn as inline SVG, so
the report stays one self-contained file.
"""

from __future__ import annotations

from html import escape
from typing import Any

from build_suite.benchmarks import format_value

STYLE = """
<style>
.bs-table { border-collapse: collapse; margin: 0.5em 0 1em 0; font-size: 13px; }
.bs-table th, .bs-table td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
.bs-table th { background: #f0f0f0; }
.bs-passed { color: #17702d; font-weight: bold; }
.bs-failed, .bs-error, .bs-interrupted { color: #b00020; font-weight: bold; }
.bs-skipped, .bs-not-run, .bs-reused, .bs-cached { color: #6b6b6b; }
.bs-timeline text { font: 11px sans-serif; }
</style>
"""

OUTCOME_COLOURS = {"passed": "#4caf50", "failed": "#e53935", "skipped": "#9e9e9e", "not run": "#e0e0e0",
                   "downloaded": "#42a5f5", "built": "#fb8c00", "reused": "#bdbdbd"}


def cell(value: Any) -> str:
    if value is None:
        return "<td>-</td>"
    if isinstance(value, float):
        value = f"{value:.2f}"
    text = escape(str(value))
    css = f"bs-{text.replace(' ', '-')}" if text in ("passed", "failed", "skipped", "not run", "error",
                                                     "interrupted", "reused", "cached") else ""
    return f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>"


def table(title: str, headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(cell(value) for value in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}">none</td></tr>'
    return f"<h3>{escape(title)}</h3><table class=\"bs-table\"><tr>{head}</tr>{body}</table>"


def facts_table(build: dict[str, Any]) -> str:
    environment = build.get("environment") or {}
    engine = environment.get("engine") or {}
    rows = [
        ["build id", build.get("build_id")],
        ["project", f"{build['project'].get('name')} {build['project'].get('version')}"],
        ["outcome", build.get("outcome")],
        ["started", build.get("started")],
        ["finished", build.get("finished")],
        ["duration (s)", build.get("duration")],
        ["marker expression", build.get("marker_expression") or "(none)"],
        ["configuration", build.get("config", {}).get("path")],
        ["engine", f"{engine.get('kind', '-')} {engine.get('version', '')}".strip()],
        ["host Python", environment.get("host_python")],
        ["target", environment.get("target")],
    ]
    return table("Build", ["fact", "value"], rows)


def phases_table(build: dict[str, Any]) -> str:
    rows = [[name, phase["outcome"], phase["duration"], phase["tests"], phase["failed"], phase["skipped"]]
            for name, phase in build["phases"].items()]
    return table("Phases", ["phase", "outcome", "duration (s)", "tests", "failed", "skipped"], rows)


def wheels_table(build: dict[str, Any]) -> str:
    wheelhouse = build.get("wheelhouse") or {}
    rows = [[wheel.get("name"), wheel.get("version"), wheel.get("filename"), wheel.get("source"),
             wheel.get("seconds"), wheel.get("size")] for wheel in wheelhouse.get("wheels", [])]
    return table("Wheels", ["name", "version", "file", "source", "seconds", "bytes"], rows)


def megabytes(size: int | float | None) -> str | None:
    return None if size is None else f"{size / 1e6:.1f} MB"


def images_table(build: dict[str, Any]) -> str:
    rows = [[image.get("service"), image.get("status"), image.get("tag"), megabytes(image.get("size")),
             image.get("layers"), image.get("seconds"), image.get("cache_hits")] for image in build.get("images") or []]
    return table("Images", ["service", "status", "tag", "size", "layers", "build seconds", "cache hits"], rows)


def containers_table(build: dict[str, Any]) -> str:
    rows = [[container.get("service"), container.get("status"), container.get("seconds_to_healthy"),
             container.get("exit_code"), container.get("detail")] for container in build.get("containers") or []]
    return table("Containers", ["service", "status", "seconds to healthy", "exit code", "detail"], rows)


def benchmarks_table(build: dict[str, Any]) -> str:
    benchmark = build.get("benchmark") or {}
    rows = [[figure.get("service"), figure.get("name"), figure_text(figure.get("value"), figure.get("unit")),
             figure_text(figure.get("previous"), figure.get("unit")),
             None if figure.get("ratio") is None else f"{figure['ratio']:.2f}x", figure.get("verdict")]
            for figure in benchmark.get("figures", [])]
    return table("Benchmarks", ["service", "figure", "value", "previous", "ratio", "verdict"], rows)


def figure_text(value: float | None, unit: str | None) -> str | None:
    """Format a benchmark figure with its unit; bytes read as MB, as the terminal shows them."""
    if value is None:
        return None
    return format_value(float(value), unit or "")


def security_checks_table(build: dict[str, Any]) -> str:
    """List each security check that ran or was turned off, with its finding count: per service, then the wheelhouse's."""
    security = build.get("security") or {}
    rows = []
    for check, services in sorted((security.get("service_checks") or {}).items()):
        for service, result in sorted(services.items()):
            rows.append([check, service, result.get("status"), result.get("findings"), None])
    for check, result in sorted((security.get("checks") or {}).items()):
        rows.append([check, "wheelhouse", result.get("status"), result.get("vulnerabilities"), result.get("reason")])
    return table("Security checks", ["check", "service", "status", "findings", "note"], rows)


def findings_table(build: dict[str, Any]) -> str:
    security = build.get("security") or {}
    rows = [[finding.get("check"), finding.get("where"), finding.get("kind"), finding.get("severity"),
             finding.get("message")] for finding in security.get("findings", [])]
    return table("Security findings", ["check", "where", "kind", "severity", "message"], rows)


def timeline_svg(build: dict[str, Any], width: int = 900) -> str:
    """Draw phases and package builds as horizontal bars on one time axis."""
    bars: list[tuple[str, float, float, str]] = []
    for name, phase in build["phases"].items():
        if phase.get("start") is not None:
            bars.append((name, phase["start"], phase["duration"], OUTCOME_COLOURS.get(phase["outcome"], "#90caf9")))
    wheelhouse = build.get("wheelhouse") or {}
    for wheel in wheelhouse.get("wheels", []):
        if wheel.get("start") is not None and wheel.get("seconds"):
            bars.append((f"  {wheel.get('name')}", wheel["start"], wheel["seconds"],
                         OUTCOME_COLOURS.get(wheel.get("source"), "#90caf9")))
    if not bars:
        return "<h3>Timeline</h3><p>No timed steps were recorded.</p>"
    end = max(start + length for _, start, length, _ in bars) or 1.0
    label_width, row_height = 180, 18
    scale = (width - label_width - 10) / end
    rows = []
    for index, (label, start, length, colour) in enumerate(bars):
        y = index * row_height
        rows.append(
            f'<text x="0" y="{y + 13}">{escape(label)}</text>'
            f'<rect x="{label_width + start * scale:.1f}" y="{y + 2}" width="{max(length * scale, 1):.1f}" '
            f'height="{row_height - 4}" fill="{colour}"><title>{escape(label.strip())}: {length:.1f} s</title></rect>')
    height = len(bars) * row_height + 20
    axis = f'<text x="{label_width}" y="{height - 4}">0 s</text><text x="{width - 60}" y="{height - 4}">{end:.0f} s</text>'
    return (f'<h3>Timeline</h3><svg class="bs-timeline" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}{axis}</svg>')


def summary_html(build: dict[str, Any]) -> list[str]:
    return [STYLE, facts_table(build), phases_table(build), timeline_svg(build), wheels_table(build),
            images_table(build), containers_table(build), benchmarks_table(build), security_checks_table(build),
            findings_table(build)]
