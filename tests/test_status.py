"""Tests of the pure status text of the wheelhouse phase."""

from __future__ import annotations

import pytest

from build_suite.monitors import ProcessSample, WheelFolderSample
from build_suite.piprunner import RunResult
from build_suite.status import (
    ProgressSnapshot,
    format_activity,
    format_duration,
    format_packages,
    format_processes,
    format_rate,
    format_run_stop,
    format_size,
    format_status,
    looks_like_prompt,
    notable_process_names,
)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (41, "41s"),
        (59.6, "1m00s"),
        (70, "1m10s"),
        (605, "10m05s"),
        (3600, "1h00m"),
        (7530, "2h05m"),
        (-3, "0s"),
        (None, "0s"),
        (float("nan"), "0s"),
    ],
)
def test_format_duration(seconds: float | None, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (25_000, "25 kB"),
        (3_100_000, "3.1 MB"),
        (31_000_000, "31 MB"),
        (999_999_999, "1000 MB"),
        (2_500_000_000, "2.5 GB"),
        (5 * 10**15, "5000 TB"),
        (None, "0 B"),
        (-5, "0 B"),
    ],
)
def test_format_size(size: int | None, expected: str) -> None:
    assert format_size(size) == expected


def test_format_rate() -> None:
    assert format_rate(3_100_000) == "3.1 MB/s"
    assert format_rate(None) == "0 B/s"


def test_notable_process_names_prefers_compilers() -> None:
    assert notable_process_names(["python", "sh", "gcc", "cc1"]) == ["cc1", "gcc"]
    assert notable_process_names(["python", "sh"]) == ["python", "sh"]
    assert notable_process_names(["python", "python", "cmake"], limit=3) == ["cmake", "python"]
    assert notable_process_names([]) == []


def test_format_processes() -> None:
    sample = ProcessSample(count=3, names=("python", "gcc", "cc1"), cpu_percent=180.4, rss_bytes=10**8)
    assert format_processes(sample) == "3 processes (cc1, gcc), 180% CPU"
    assert format_processes(ProcessSample(count=1, names=("python",), cpu_percent=3)) == "1 process (python), 3% CPU"
    assert format_processes(ProcessSample()) == ""
    assert format_processes(None) == ""


def test_format_status_building_example() -> None:
    progress = ProgressSnapshot(
        activity="building", package="pyyaml", activity_seconds=41, packages_done=23, packages_total=77,
        downloaded_bytes=12_000_000,
    )
    sample = ProcessSample(count=3, names=("gcc",), cpu_percent=180, rss_bytes=1)
    wheels = WheelFolderSample(count=23, total_bytes=31_000_000)
    text = format_status(progress, sample, network_rate=None, wheels=wheels, eta_seconds=70)
    assert text == (
        "building pyyaml from source: 3 processes (gcc), 180% CPU, 41s · 23/77 packages"
        " · 31 MB in 23 wheels · about 1m10s left"
    )


def test_format_status_downloading_shows_rate() -> None:
    progress = ProgressSnapshot(activity="downloading", package="numpy", activity_seconds=4, packages_seen=5,
                                packages_done=2, downloaded_bytes=18_500_000)
    text = format_status(progress, ProcessSample(count=1, names=("python",), cpu_percent=20), 2_400_000)
    assert text == "downloading numpy: 2.4 MB/s, 4s · 2 done, 5 found · 18 MB downloaded"


def test_format_status_without_samples() -> None:
    assert format_status(ProgressSnapshot()) == "starting pip"


def test_format_status_leaves_out_unknown_eta() -> None:
    progress = ProgressSnapshot(activity="collecting", package="six", activity_seconds=1)
    assert "left" not in format_status(progress, eta_seconds=None)
    assert format_status(progress, eta_seconds=5).endswith("about 5s left")


def test_format_status_reports_failed_builds() -> None:
    progress = ProgressSnapshot(activity="failed", package="broken", failed=("broken",), errors=2)
    assert format_status(progress) == "build of broken failed · 1 failed (broken)"


def test_format_status_counts_errors_without_failed_build() -> None:
    progress = ProgressSnapshot(activity="finished", errors=2)
    assert format_status(progress) == "finishing · 2 errors"


def test_format_activity_preparing_step() -> None:
    progress = ProgressSnapshot(activity="preparing", package="docopt", step="Installing build dependencies")
    assert format_activity(progress) == "installing build dependencies for docopt"


def test_format_packages_without_any_package() -> None:
    assert format_packages(ProgressSnapshot()) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [("User for 127.0.0.1:", True), ("Password: ", True), ("Proceed (Y/n)?", True), ("Collecting six", False), ("", False)],
)
def test_looks_like_prompt(text: str, expected: bool) -> None:
    assert looks_like_prompt(text) is expected


def _result(**changes: object) -> RunResult:
    fields = dict(argv=["pip", "wheel"], returncode=-15, duration=125.0, tail=["Collecting six", "  Downloading six"])
    fields.update(changes)
    return RunResult(**fields)  # type: ignore[arg-type]


def test_format_run_stop_timeout() -> None:
    result = _result(timed_out=True, running=["gcc -c yaml.c (pid 42)"])
    text = format_run_stop(result, timeout=120)
    lines = text.splitlines()
    assert lines[0] == "pip timed out after 2m05s (limit 2m00s)"
    assert "    gcc -c yaml.c (pid 42)" in lines
    assert "  last 2 lines of output:" in lines
    assert lines[-1] == "      Downloading six"


def test_format_run_stop_stall_at_prompt() -> None:
    result = _result(stalled=True, last_partial="User for 127.0.0.1:")
    text = format_run_stop(result, stall_timeout=60)
    assert text.splitlines()[0] == "pip stalled after 2m05s: no output, CPU use or network traffic for 1m00s"
    assert "it waits for input: 'User for 127.0.0.1:'" in text
    assert "--no-input" in text


def test_format_run_stop_stall_without_prompt() -> None:
    text = format_run_stop(_result(stalled=True, last_partial="Building wheel"), stall_timeout=60)
    assert "unfinished line: 'Building wheel'" in text
    assert "waits for input" not in text


def test_format_run_stop_interrupted() -> None:
    assert format_run_stop(_result(interrupted=True)).startswith("pip was interrupted after 2m05s")


def test_format_run_stop_cancelled() -> None:
    assert format_run_stop(_result(cancelled=True)).startswith("pip was cancelled after 2m05s")


def test_format_run_stop_normal_end_is_empty() -> None:
    assert format_run_stop(_result(returncode=1)) == ""
