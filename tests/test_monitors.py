"""Tests of the live monitors: process tree, network, wheel folder, progress and the publishing thread."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest

from build_suite import monitors
from build_suite.monitors import (
    BuildProgress,
    LiveMonitor,
    NetworkMonitor,
    ProcessTreeMonitor,
    WheelFolderMonitor,
    short_process_name,
)
from build_suite.pipoutput import parse_line
from build_suite.piprunner import LineSplitter

TRANSCRIPTS = Path(__file__).resolve().parent / "transcripts"

BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def process_tree():
    """Start a python process with a CPU-burning python child and a sleeping child."""
    code = (
        "import subprocess, sys, time\n"
        f"burner = subprocess.Popen([sys.executable, '-c', {BURN.format(seconds=30)!r}])\n"
        "sleeper = subprocess.Popen(['sleep', '30'])\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    assert process.stdout.readline().strip() == "ready"
    yield process
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_process_tree_sample(process_tree: subprocess.Popen) -> None:
    monitor = ProcessTreeMonitor(process_tree.pid)
    first = monitor.sample()
    assert first.cpu_percent == 0.0  # The first sample only sets the baseline.
    time.sleep(1.0)
    sample = monitor.sample()
    assert sample.count == 3
    assert sample.names == ("python", "sleep")
    # One busy core gives 100; other work on a shared machine can take part of it.
    assert 20 <= sample.cpu_percent <= 100 * (os.cpu_count() or 1) + 20
    assert sample.rss_bytes > 1_000_000


def test_process_tree_idle_sample() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        monitor = ProcessTreeMonitor(sleeper.pid)
        monitor.sample()
        time.sleep(1.0)
        sample = monitor.sample()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sample.count == 1
    assert sample.names == ("sleep",)
    assert sample.cpu_percent < 5


def test_process_tree_counts_short_lived_children() -> None:
    # Each child burns 0.1 s and is reaped before the next sample, so only the
    # parent's children CPU times can show the work.
    code = (
        "import subprocess, sys, time\n"
        "print('ready', flush=True)\n"
        "end = time.monotonic() + 2.5\n"
        f"while time.monotonic() < end: subprocess.run([sys.executable, '-c', {BURN.format(seconds=0.1)!r}])\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        monitor = ProcessTreeMonitor(process.pid)
        monitor.sample()
        time.sleep(1.5)
        sample = monitor.sample()
    finally:
        process.kill()
        process.wait()
    # Close to 100 on an idle machine; the margin allows for other work on a shared one.
    assert sample.cpu_percent > 20


def test_process_tree_of_exited_process() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    sample = ProcessTreeMonitor(process.pid).sample()
    assert sample.count == 0
    assert sample.names == ()
    assert sample.cpu_percent == 0.0
    assert sample.rss_bytes == 0


def test_short_process_name() -> None:
    assert short_process_name("python3.11") == "python"
    assert short_process_name("python") == "python"
    assert short_process_name("cc1") == "cc1"


Counters = namedtuple("Counters", "bytes_recv bytes_sent")


def test_network_monitor_rate_leaves_out_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = {"lo": Counters(0, 0), "eth0": Counters(1_000, 0)}
    monkeypatch.setattr(monitors.psutil, "net_io_counters", lambda pernic: dict(counters))
    clock = FakeClock()
    monitor = NetworkMonitor(clock=clock)

    counters["lo"] = Counters(50_000_000, 0)
    counters["eth0"] = Counters(3_001_000, 0)
    clock.now += 2.0
    assert monitor.sample() == 1_500_000.0

    clock.now += 1.0
    assert monitor.sample() == 0.0


def test_network_monitor_with_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = {"lo": Counters(0, 0), "eth0": Counters(0, 0)}
    monkeypatch.setattr(monitors.psutil, "net_io_counters", lambda pernic: dict(counters))
    clock = FakeClock()
    monitor = NetworkMonitor(include_loopback=True, clock=clock)
    counters["lo"] = Counters(4_000, 0)
    clock.now += 1.0
    assert monitor.sample() == 4_000.0


def test_network_monitor_counter_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = {"eth0": Counters(10_000, 0)}
    monkeypatch.setattr(monitors.psutil, "net_io_counters", lambda pernic: dict(counters))
    clock = FakeClock()
    monitor = NetworkMonitor(clock=clock)
    counters["eth0"] = Counters(0, 0)  # An interface that went away and came back.
    clock.now += 1.0
    assert monitor.sample() == 0.0


def test_network_monitor_real_counters() -> None:
    rate = NetworkMonitor(include_loopback=True).sample()
    assert rate >= 0.0


def test_wheel_folder_monitor(tmp_path: Path) -> None:
    monitor = WheelFolderMonitor(tmp_path)
    assert monitor.sample() == monitors.WheelFolderSample(count=0, total_bytes=0, new=())

    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"x" * 1000)
    (tmp_path / "docopt-0.6.2.tar.gz").write_bytes(b"x" * 5000)
    (tmp_path / "unpacked.whl").mkdir()
    first = monitor.sample()
    assert first.count == 1
    assert first.total_bytes == 1000
    assert first.new == ("six-1.17.0-py2.py3-none-any.whl",)

    (tmp_path / "docopt-0.6.2-py2.py3-none-any.whl").write_bytes(b"x" * 200)
    second = monitor.sample()
    assert second.count == 2
    assert second.total_bytes == 1200
    assert second.new == ("docopt-0.6.2-py2.py3-none-any.whl",)

    assert monitor.sample().new == ()


def test_wheel_folder_monitor_missing_folder(tmp_path: Path) -> None:
    sample = WheelFolderMonitor(tmp_path / "not-yet").sample()
    assert sample.count == 0
    assert sample.total_bytes == 0


def transcript_lines(name: str) -> list[str]:
    body = (TRANSCRIPTS / name).read_bytes().partition(b"\n")[2]
    splitter = LineSplitter()
    return [*splitter.feed(body), *splitter.close()]


def test_build_progress_from_wheel_transcript() -> None:
    progress = BuildProgress()
    for line in transcript_lines("pip-26.3-wheel.txt"):
        progress.feed_line(line)
    snapshot = progress.snapshot()
    assert snapshot.packages_done == 3
    assert snapshot.packages_seen == 3
    assert snapshot.packages_total is None
    assert snapshot.downloaded_bytes == 25_000 + 229_000 + 11_000
    assert snapshot.activity == "finished"
    assert snapshot.errors == 0
    assert snapshot.failed == ()


def test_build_progress_from_build_error_transcript() -> None:
    progress = BuildProgress()
    for line in transcript_lines("pip-26.3-build-error.txt"):
        progress.feed_line(line)
    snapshot = progress.snapshot()
    assert snapshot.failed == ("broken-package",)
    assert snapshot.errors == 2
    assert snapshot.packages_done == 0


def test_build_progress_activity_and_times() -> None:
    clock = FakeClock()
    progress = BuildProgress(packages_total=2, clock=clock)
    assert progress.snapshot().activity == "starting"

    clock.now += 1
    progress.apply(parse_line("Collecting docopt==0.6.2 (from -r requirements.txt (line 1))"))
    clock.now += 2
    snapshot = progress.snapshot()
    assert (snapshot.activity, snapshot.package) == ("collecting", "docopt")
    assert snapshot.activity_seconds == 2
    assert snapshot.elapsed_seconds == 3

    progress.feed_line("  Building wheel for docopt (pyproject.toml): started")
    clock.now += 5
    progress.feed_line("  Building wheel for docopt (pyproject.toml): started")  # Same activity: time keeps running.
    snapshot = progress.snapshot()
    assert (snapshot.activity, snapshot.package) == ("building", "docopt")
    assert snapshot.activity_seconds == 5

    progress.feed_line("  Created wheel for docopt: filename=docopt-0.6.2-py2.py3-none-any.whl size=13781 sha256=ab")
    snapshot = progress.snapshot()
    assert snapshot.activity == "built"
    assert snapshot.packages_done == 1
    assert snapshot.packages_total == 2

    progress.set_total(5)
    assert progress.snapshot().packages_total == 5


def test_build_progress_counts_each_file_once() -> None:
    progress = BuildProgress()
    progress.feed_line("Saved ./wheelhouse/six-1.17.0-py2.py3-none-any.whl")
    progress.feed_line("File was already downloaded /srv/wheelhouse/six-1.17.0-py2.py3-none-any.whl")
    assert progress.snapshot().packages_done == 1


def test_build_progress_preparing_step_uses_package() -> None:
    progress = BuildProgress()
    progress.feed_line("Collecting docopt==0.6.2")
    progress.feed_line("  Installing build dependencies: started")
    snapshot = progress.snapshot()
    assert snapshot.activity == "preparing"
    assert snapshot.package == "docopt"
    assert snapshot.step == "Installing build dependencies"


def test_live_monitor_publishes_and_stops(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    published: list[str] = []
    progress = BuildProgress(packages_total=4)
    progress.feed_line("  Building wheel for docopt (pyproject.toml): started")
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"x" * 2000)
    try:
        with LiveMonitor(published.append, progress, wheel_dir=tmp_path, interval=0.05, network=False,
                         eta=lambda snapshot: 12.0) as live:
            live.attach(sleeper.pid)
            deadline = time.monotonic() + 5
            while len(published) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert len(published) >= 3
    assert published[-1].startswith("building docopt from source: 1 process (sleep), 0% CPU, ")
    assert "0/4 packages" in published[-1]
    assert "2.0 kB in 1 wheels" in published[-1]
    assert published[-1].endswith("about 12s left")
    assert not any(thread.name == "build-suite-live-monitor" for thread in threading.enumerate())
    count = len(published)
    time.sleep(0.2)
    assert len(published) == count


def test_live_monitor_without_process() -> None:
    published: list[str] = []
    with LiveMonitor(published.append, BuildProgress(), interval=0.05, network=False):
        deadline = time.monotonic() + 5
        while not published and time.monotonic() < deadline:
            time.sleep(0.02)
    assert published[0] == "starting pip"


def test_live_monitor_logs_publish_failure_once(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def publish(text: str) -> None:
        calls.append(1)
        raise OSError("terminal closed")

    caplog.set_level(logging.ERROR, logger="build_suite.monitors")
    with LiveMonitor(publish, BuildProgress(), interval=0.02, network=False):
        deadline = time.monotonic() + 5
        while len(calls) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(calls) >= 5
    records = [record for record in caplog.records if record.name == "build_suite.monitors"]
    assert len(records) == 1
    assert "live status update failed" in records[0].getMessage()


def test_live_monitor_stops_on_exception() -> None:
    live = LiveMonitor(lambda text: None, BuildProgress(), interval=0.05, network=False)
    with pytest.raises(RuntimeError):
        with live:
            raise RuntimeError("build failed")
    assert not any(thread.name == "build-suite-live-monitor" for thread in threading.enumerate())
    live.stop()  # A second stop is harmless.


def test_live_monitor_rejects_bad_interval() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        LiveMonitor(lambda text: None, BuildProgress(), interval=0)
