"""Measure the images phase: serial against parallel (pytest-xdist -n 2) builds, and a fully cached rebuild.

Each run is `pytest build_suite -m images` on a stack's configuration, timed
from the outside. Before a cold run the images that the harness labelled for
the project are removed, so every layer is built again. All runs reuse one
wheelhouse, so only the image builds differ. All three runs happen in this
one invocation, so the ratios compare like with like.

    python bench/bench_images.py [--build-config PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from build_suite.config import DEFAULT_CONFIG, load_config  # noqa: E402
from build_suite.containers import remove_labelled  # noqa: E402
from build_suite.engine import connect_engine  # noqa: E402


def remove_project_images(project: str) -> None:
    connection = connect_engine()
    try:
        remove_labelled(connection.client, f"build-suite.project={project}", images=True)
    finally:
        connection.close()


def timed_build(config: Path, report_dir: Path, *extra: str) -> float:
    command = [sys.executable, "-m", "pytest", str(ROOT / "build_suite"), "-m", "images", "--build-config",
               str(config), "--report-dir", str(report_dir), "--progress", "quiet", "-q", *extra]
    started = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        sys.exit(f"build failed ({' '.join(command)}):\n{completed.stdout[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-config", type=Path, default=DEFAULT_CONFIG, help="buildsuite.toml of the stack")
    args = parser.parse_args()
    config = load_config(args.build_config)
    project = config.project.name

    with tempfile.TemporaryDirectory() as folder:
        reports = Path(folder)
        timed_build(args.build_config, reports / "warm-up")  # builds or reuses the wheelhouse
        remove_project_images(project)
        serial = timed_build(args.build_config, reports / "serial")
        remove_project_images(project)
        parallel = timed_build(args.build_config, reports / "parallel", "-n", "2")
        cached = timed_build(args.build_config, reports / "cached")

    print(f"stack: {config.path} ({len(config.services)} services)")
    print(f"serial cold build:    {serial:6.1f} s")
    print(f"parallel cold build:  {parallel:6.1f} s  ({parallel / serial:.2f}x serial)")
    print(f"fully cached rebuild: {cached:6.1f} s  ({cached / serial:.2f}x serial)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
