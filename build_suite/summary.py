"""Pure functions that build the terminal header and the completion summary."""

from __future__ import annotations

from build_suite import status
from build_suite.record import PHASES, BuildRecord


def format_duration(seconds: float) -> str:
    """Format seconds as 0.4s, 41s, 2m10s or 1h02m: tenths below 10 s, where phases often end."""
    if 0 <= seconds < 10:
        return f"{seconds:.1f}s"
    return status.format_duration(seconds)


def header_lines(build_id: str, config_path: str, engine: str, phases: list[str]) -> list[str]:
    return [
        f"build id: {build_id}",
        f"configuration: {config_path}",
        f"engine: {engine}",
        f"phases: {', '.join(phases) if phases else 'none selected'}",
    ]


def phase_table(record: BuildRecord) -> list[str]:
    """Return one row per phase with its outcome, duration and test counts."""
    rows = [f"{'phase':<12} {'outcome':<10} {'duration':>9}  tests"]
    for name in PHASES:
        result = record.phases[name]
        counts = f"{result.tests}" if result.tests else "-"
        if result.failed:
            counts += f" ({result.failed} failed)"
        elif result.skipped:
            counts += f" ({result.skipped} skipped)"
        duration = format_duration(result.duration) if result.tests else "-"
        rows.append(f"{name:<12} {result.outcome:<10} {duration:>9}  {counts}")
    return rows


def next_steps(record: BuildRecord, log_path: str) -> list[str]:
    """Say what to do after a build that did not pass."""
    if record.outcome == "passed":
        return []
    if record.outcome == "interrupted":
        phase = record.running_phase or "unknown"
        return [f"the build was interrupted during the {phase} phase; run the same command again to resume,",
                "finished artifacts are reused"]
    failed = [name for name in PHASES if record.phases[name].outcome == "failed"]
    if not failed:
        return [f"the build ended with outcome {record.outcome}; read {log_path} for details"]
    steps = [f"failed phases: {', '.join(failed)}",
             "each failure above names the service, file or package and what to do;",
             f"the full live log is in {log_path}",
             f"rerun one phase with: pytest build_suite -m {failed[0]}"]
    return steps


def summary_lines(record: BuildRecord, artifacts: dict[str, str]) -> list[str]:
    lines = [f"build {record.build_id}: {record.outcome} in {format_duration(record.duration)}"]
    lines += phase_table(record)
    lines.append("artifacts:")
    lines += [f"  {name}: {path}" for name, path in artifacts.items()]
    lines += next_steps(record, artifacts.get("log", "reports/build.log"))
    return lines
