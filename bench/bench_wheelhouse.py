"""Measure the wheelhouse phase against `pip wheel -r` in the same run.

For each requirements set, three cases run side by side, pip first:

- cold: empty output folder and an empty pip cache for each tool;
- warm: empty output folder, each tool's pip cache kept from the cold run;
- nothing to do: the same output folder again, inputs unchanged.

Both tools run with the pip configuration isolated (PIP_CONFIG_FILE is the null
device, no PIP_* variables) and the same pip. Goals: cold at most 0.5 times
pip's time, nothing to do at most 0.05 times.

The phase runs once with each resolver: `pip` (pip's own resolve, `pip
install --dry-run --report`, which takes about as long as a whole cold `pip
wheel -r` of these sets) and `uv` (uv resolves, pip checks the finished
wheelhouse offline). Each has its own empty pip and uv caches when cold.

Usage: python bench/bench_wheelhouse.py [-r FILE ...] [--jobs N] [--resolver pip|uv ...]
Without -r it measures the demo stack's requirements and, when present,
../shared/real-input/xnai/requirements-api.txt beside the repository.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from build_suite.config import Target, WheelhouseConfig  # noqa: E402
from build_suite.pipargs import pip_env  # noqa: E402
from build_suite.wheelhouse import build_wheelhouse  # noqa: E402

GOALS = {"cold": 0.5, "warm": None, "nothing to do": 0.05}


@dataclass
class Row:
    resolver: str
    case: str
    pip_seconds: float
    suite_seconds: float
    detail: str

    @property
    def ratio(self) -> float:
        return self.suite_seconds / self.pip_seconds if self.pip_seconds else float("inf")


def default_sets() -> list[tuple[str, list[Path]]]:
    sets = []
    demo = ROOT / "examples" / "demo-stack" / "requirements"
    demo_files = sorted(demo.glob("*.txt")) if demo.is_dir() else []
    if demo_files:
        sets.append(("demo-stack", demo_files))
    real = ROOT.parent / "shared" / "real-input" / "xnai" / "requirements-api.txt"
    if real.is_file():
        sets.append(("real-input xnai api", [real]))
    return sets


def run_pip_wheel(requirements: list[Path], output: Path, cache: Path) -> float:
    argv = [sys.executable, "-m", "pip", "wheel", "--no-input", "--disable-pip-version-check", "--progress-bar", "off"]
    argv += ["--wheel-dir", str(output)]
    for path in requirements:
        argv += ["-r", str(path)]
    started = time.monotonic()
    completed = subprocess.run(argv, env=pip_env(isolate=True, extra={"PIP_CACHE_DIR": str(cache)}), capture_output=True, text=True)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        raise SystemExit(f"pip wheel failed:\n{completed.stdout[-3000:]}")
    return seconds


def run_suite(
    requirements: list[Path], output: Path, cache: Path, jobs: int, history: Path, resolver: str
) -> tuple[float, str]:
    config = WheelhouseConfig(requirements=tuple(requirements), output=output, timeout=1800, jobs=jobs, resolver=resolver)
    caches = {"PIP_CACHE_DIR": str(cache / "pip"), "UV_CACHE_DIR": str(cache / "uv")}
    started = time.monotonic()
    result = build_wheelhouse(config, Target(), pip_extra_env=caches, history_path=history)
    return time.monotonic() - started, result.summary


def measure(requirements: list[Path], jobs: int, work: Path, resolvers: list[str]) -> list[Row]:
    """Time each case with pip first, then the phase once per resolver, so all share the machine's state."""
    pip_cache = work / "pip-cache"
    rows = []
    cases = [("cold", "cold"), ("warm", "warm"), ("nothing to do", "warm")]
    for case, folder in cases:
        pip_seconds = run_pip_wheel(requirements, work / f"pip-{folder}", pip_cache)
        for resolver in resolvers:
            suite_seconds, detail = run_suite(
                requirements, work / f"suite-{resolver}-{folder}", work / f"suite-cache-{resolver}", jobs,
                work / f"history-{resolver}.json", resolver,
            )
            rows.append(Row(resolver, case, pip_seconds, suite_seconds, detail))
    return rows


def format_rows(name: str, rows: list[Row]) -> str:
    lines = [f"\n{name}", f"{'resolver':<9} {'case':<14} {'pip wheel':>10} {'build-suite':>12} {'ratio':>7} {'goal':>7}"]
    for row in rows:
        goal = GOALS.get(row.case)
        verdict = ""
        goal_text = "-"
        if goal is not None:
            goal_text = f"<={goal}"
            verdict = " met" if row.ratio <= goal else " MISSED"
        lines.append(
            f"{row.resolver:<9} {row.case:<14} {row.pip_seconds:>9.2f}s {row.suite_seconds:>11.2f}s {row.ratio:>7.3f} {goal_text:>7}{verdict}"
        )
        lines.append(f"{'':<24} {row.detail}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--requirements", action="append", type=Path, help="requirements file (repeatable)")
    parser.add_argument("--jobs", type=int, default=4, help="parallel downloads of build-suite (default 4)")
    parser.add_argument(
        "--resolver", action="append", choices=("pip", "uv"), help="resolver of the phase (repeatable; default: both)"
    )
    args = parser.parse_args()

    sets = [("given requirements", args.requirements)] if args.requirements else default_sets()
    if not sets:
        print("no requirements set found; pass -r FILE", file=sys.stderr)
        return 2
    pip_version = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout.split()[1]
    print(f"pip {pip_version}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, jobs {args.jobs}")
    for name, requirements in sets:
        with tempfile.TemporaryDirectory(prefix="bench-wheelhouse-") as work:
            rows = measure(requirements, args.jobs, Path(work), args.resolver or ["pip", "uv"])
        print(format_rows(name, rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
