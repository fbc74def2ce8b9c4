"""Render reports/BUILD.md: what a build made and which checks passed, for people to read."""

from __future__ import annotations

from typing import Any


def megabytes(size: Any) -> str:
    return f"{size / 1e6:.1f} MB" if isinstance(size, (int, float)) else "-"


def build_markdown(build: dict[str, Any]) -> str:
    """Return the Markdown summary of one build from its report's `build` object."""
    project = build["project"]
    lines = [f"# {project['name']} {project['version']}: build {build['build_id']}", "",
             f"Outcome: **{build['outcome']}**, started {build['started']}, took {build['duration']:.0f} s.",
             f"Selected with `-m {build['marker_expression'] or '(none)'}`.", "", "## Phases", "",
             "| phase | outcome | tests | failed | skipped |", "| --- | --- | --- | --- | --- |"]
    for name, phase in build["phases"].items():
        lines.append(f"| {name} | {phase['outcome']} | {phase['tests']} | {phase['failed']} | {phase['skipped']} |")

    wheelhouse = build.get("wheelhouse")
    if wheelhouse and "wheels" in wheelhouse:
        lines += ["", "## Wheelhouse", "", f"{wheelhouse['summary']}, resolved with {wheelhouse.get('resolver', 'pip')}", "",
                  "| package | version | source |", "| --- | --- | --- |"]
        lines += [f"| {wheel['name']} | {wheel['version']} | {wheel['source']} |" for wheel in wheelhouse["wheels"]]

    images = build.get("images")
    if images:
        lines += ["", "## Images", "", "| service | tag | status | size |", "| --- | --- | --- | --- |"]
        lines += [f"| {image['service']} | {image['tag']} | {image['status']} | {megabytes(image.get('size'))} |"
                  for image in images]

    containers = build.get("containers")
    if containers:
        lines += ["", "## Containers", "", "| service | status | seconds to healthy |", "| --- | --- | --- |"]
        lines += [f"| {item['service']} | {item['status']} | {item.get('seconds_to_healthy') or '-'} |"
                  for item in containers]

    security = build.get("security")
    if security:
        findings = security.get("findings", [])
        vulnerabilities = (security.get("checks") or {}).get("vulnerabilities") or {}
        lines += ["", "## Security", "", f"{len(findings)} findings."]
        if vulnerabilities.get("status") == "checked":
            lines.append(f"Vulnerabilities checked against a database of {vulnerabilities.get('snapshot')}: "
                         f"{vulnerabilities.get('vulnerabilities')} found.")
        elif vulnerabilities:
            lines.append(f"Vulnerabilities not checked: {vulnerabilities.get('reason')}.")
        for check, services in sorted((security.get("service_checks") or {}).items()):
            results = ", ".join(f"{service} {result.get('status')} ({result.get('findings')} findings)"
                                for service, result in sorted(services.items()))
            lines.append(f"{check}: {results}.")
    return "\n".join(lines) + "\n"
