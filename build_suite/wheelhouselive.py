"""The wheelhouse phase's live status: the phase's own progress joined with the three system monitors.

The orchestrator reports its progress (what runs, how many are done, the
estimate) at least every 3 s. Each report is joined with a sample of the
build's process tree, the network rate and the wheel folder, so the status
shows what is happening now and how far the build has come:

    wheelhouse: building 3/22, docopt (12s), 8s elapsed, about 40s left · 3 processes (python, gcc), 96% CPU · 1.2 MB/s · 4 MB in 19 wheels
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import psutil

from build_suite.monitors import NetworkMonitor, ProcessSample, ProcessTreeMonitor, WheelFolderMonitor, WheelFolderSample
from build_suite.status import format_processes, format_rate, format_size
from build_suite.wheelstatus import Progress, progress_text


def live_status(progress: Progress, sample: ProcessSample | None, network_rate: float | None,
                wheels: WheelFolderSample | None) -> str:
    """Build the one-line status from one progress report and one sample of each monitor."""
    parts = [progress_text(progress)]
    processes = format_processes(sample)
    if processes:
        parts.append(processes)
    if network_rate and network_rate >= 1024:
        parts.append(format_rate(network_rate))
    if wheels is not None and wheels.count:
        parts.append(f"{format_size(wheels.total_bytes)} in {wheels.count} wheels")
    return " · ".join(parts)


class ChildProcessMonitor(ProcessTreeMonitor):
    """Samples the children of this process only: the pip runs and the compilers under them."""

    def _tree(self) -> list[psutil.Process]:
        return [process for process in super()._tree() if process.pid != self.pid]


class WheelhouseLive:
    """Turns each progress report into a status line and publishes it."""

    def __init__(self, publish: Callable[[str], None], wheel_folder: Path) -> None:
        self.publish = publish
        self.processes = ChildProcessMonitor(os.getpid())
        self.network = NetworkMonitor()
        self.wheels = WheelFolderMonitor(wheel_folder)
        self.last_text = ""

    def __call__(self, progress: Progress) -> None:
        sample = self.processes.sample()
        # CPU time of reaped build processes can land in one sample, so cap the share at what the machine has.
        sample = dataclasses.replace(sample, cpu_percent=min(sample.cpu_percent, 100.0 * (os.cpu_count() or 1)))
        self.last_text = live_status(progress, sample, self.network.sample(), self.wheels.sample())
        self.publish(self.last_text)
