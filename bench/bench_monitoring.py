"""Measure the live monitoring's CPU and memory against the build it watches.

The workload imitates a wheelhouse build: a process tree that burns CPU
(two children, as two source builds would) and writes wheel-sized files into a
folder. It runs twice in one process: once alone, as the baseline, and once
with the wheelhouse phase's monitors (process tree, network, wheel folder and
the status text) sampling every `--interval` seconds. The monitoring thread's
own CPU time comes from time.thread_time(), its memory from tracemalloc's peak.

Goals: the monitoring costs at most 2 % of the build's CPU and 10 MB.

    python bench/bench_monitoring.py [--seconds 20] [--interval 3.0]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from build_suite.wheelhouselive import WheelhouseLive  # noqa: E402
from build_suite.wheelstatus import Progress  # noqa: E402

BURN = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    sum(i * i for i in range(10000))
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_workload(seconds: float, folder: Path) -> float:
    """Run two CPU-bound children and write a 1 MB file every 0.5 s; return their CPU seconds."""
    before = children_cpu()
    workers = [subprocess.Popen([sys.executable, "-c", BURN, str(seconds)]) for _ in range(2)]
    index = 0
    while any(worker.poll() is None for worker in workers):
        (folder / f"pkg{index}-1.0-py3-none-any.whl").write_bytes(b"\0" * 1_000_000)
        index += 1
        time.sleep(0.5)
    return children_cpu() - before


def monitored(seconds: float, folder: Path, interval: float) -> tuple[float, float, float, int]:
    """Run the workload with the monitors sampling; return build CPU, monitor CPU, monitor peak bytes, samples."""
    stop = threading.Event()
    result: dict[str, float] = {}

    def monitor() -> None:
        tracemalloc.start()
        live = WheelhouseLive(lambda text: None, folder)
        started = time.monotonic()
        cpu_start = time.thread_time()
        samples = 0
        while not stop.wait(interval):
            progress = Progress("building", samples, 77, (("pyyaml", time.monotonic() - started),),
                                time.monotonic() - started, 120.0)
            live(progress)
            samples += 1
        result["cpu"] = time.thread_time() - cpu_start
        result["peak"] = tracemalloc.get_traced_memory()[1]
        result["samples"] = samples
        tracemalloc.stop()

    thread = threading.Thread(target=monitor)
    thread.start()
    try:
        build_cpu = run_workload(seconds, folder)
    finally:
        stop.set()
        thread.join()
    return build_cpu, result["cpu"], result["peak"], int(result["samples"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each workload run, in seconds")
    parser.add_argument("--interval", type=float, default=3.0,
                        help="seconds between monitor samples (default: 3.0, the phase's heartbeat; smaller is harsher)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as baseline_folder, tempfile.TemporaryDirectory() as monitored_folder:
        baseline_cpu = run_workload(args.seconds, Path(baseline_folder))
        build_cpu, monitor_cpu, peak, samples = monitored(args.seconds, Path(monitored_folder), args.interval)

    share = monitor_cpu / build_cpu * 100 if build_cpu else float("inf")
    print(f"machine: {os.cpu_count()} cores, workload {args.seconds:g} s twice, sample every {args.interval:g} s")
    print(f"baseline build CPU: {baseline_cpu:.2f} s")
    print(f"monitored build CPU: {build_cpu:.2f} s ({build_cpu / baseline_cpu:.3f}x the baseline)")
    print(f"monitoring CPU: {monitor_cpu:.3f} s over {samples} samples = {share:.2f} % of the build's CPU "
          f"(goal at most 2 %)")
    print(f"monitoring memory peak: {peak / 1e6:.2f} MB (goal at most 10 MB)")
    return 0 if share <= 2.0 and peak <= 10e6 else 1


if __name__ == "__main__":
    sys.exit(main())
