"""Tests of the output helper, the build record, the summary text and the build lock."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from build_suite.errors import LockBusyError
from build_suite.htmlreport import summary_html, timeline_svg
from build_suite.lock import BuildLock
from build_suite.output import NullOutput, Output, choose_mode, fit_to_width
from build_suite.record import BuildRecord, PhaseResult, build_outcome, new_build_id
from build_suite.summary import format_duration, next_steps, summary_lines


def make_output(mode: str, tees=None) -> tuple[Output, list[str]]:
    written: list[str] = []
    return Output(written.append, mode, width=30, tees=tees, plain_interval=0.0), written


def test_tty_status_updates_one_line() -> None:
    output, written = make_output("tty")
    output.status("downloading requests")
    output.status("building docopt")
    assert written == ["\rdownloading requests\x1b[K", "\rbuilding docopt\x1b[K"]


def test_tty_line_clears_status_first() -> None:
    output, written = make_output("tty")
    output.status("building")
    output.line("created docopt-0.6.2-py3-none-any.whl")
    assert written[1] == "\r\x1b[K"
    assert written[2] == "created docopt-0.6.2-py3-none-any.whl\n"


def test_plain_mode_prints_every_status() -> None:
    output, written = make_output("plain")
    output.status("one")
    output.status("two")
    assert written == ["one\n", "two\n"]


def test_plain_mode_limits_status_rate() -> None:
    written: list[str] = []
    output = Output(written.append, "plain", plain_interval=60.0)
    output.status("first")
    output.status("second, too soon")
    output.line("a permanent line always shows")
    assert written == ["first\n", "a permanent line always shows\n"]


def test_plain_mode_writes_held_status_later() -> None:
    written: list[str] = []
    output = Output(written.append, "plain", plain_interval=0.2)
    output.status("first")
    output.status("second, held back")
    output.status("third, replaces the second")
    assert written == ["first\n"]
    deadline = time.monotonic() + 5
    while len(written) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert written == ["first\n", "third, replaces the second\n"]


def test_plain_status_after_line_not_held() -> None:
    written: list[str] = []
    output = Output(written.append, "plain", plain_interval=60.0)
    output.line("a permanent line")
    output.status("a status right after it")
    assert written == ["a permanent line\n", "a status right after it\n"]


def test_quiet_mode_drops_status_only() -> None:
    output, written = make_output("quiet")
    output.status("busy")
    output.line("done")
    assert written == ["done\n"]


def test_output_redacts_and_tees() -> None:
    copies: list[str] = []
    output, written = make_output("plain", tees=[copies.append])
    output.status("GET https://alice:s3cret@index.example/simple")
    assert "s3cret" not in written[0]
    assert "s3cret" not in copies[0]
    assert "****@index.example" in written[0]
    # Each copy starts with an HH:MM:SS timestamp.
    assert copies[0][2] == ":"
    assert copies[0][5] == ":"


def test_tty_status_fits_width() -> None:
    output, written = make_output("tty")
    output.status("x" * 100)
    assert len(written[0]) == len("\r") + 30 + len("\x1b[K")
    assert fit_to_width("a\nb", 10) == "a b"
    assert fit_to_width("abcdef", 4) == "abc…"


def test_invalid_mode_rejected() -> None:
    with pytest.raises(ValueError, match="invalid output mode"):
        Output(print, "loud")


def test_choose_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    assert choose_mode("auto", Terminal()) == "tty"
    assert choose_mode("auto", None) == "plain"
    assert choose_mode("quiet", Terminal()) == "quiet"
    monkeypatch.setenv("CI", "true")
    assert choose_mode("auto", Terminal()) == "plain"


def test_null_output_writes_nothing() -> None:
    output = NullOutput()
    output.status("x")
    output.line("y")
    assert output.mode == "quiet"


def test_phase_outcomes_combine() -> None:
    result = PhaseResult()
    assert result.outcome == "not run"
    result.add("passed", 1.0)
    result.add("skipped", 0.0)
    assert result.outcome == "passed"
    result.add("failed", 2.0)
    assert result.outcome == "failed"
    assert result.duration == 3.0
    skipped = PhaseResult()
    skipped.add("skipped", 0.0)
    assert skipped.outcome == "skipped"


def test_build_outcome_from_exit_status() -> None:
    phases = {"environment": PhaseResult()}
    assert build_outcome(0, phases) == "passed"
    assert build_outcome(1, phases) == "failed"
    assert build_outcome(2, phases) == "interrupted"
    assert build_outcome(4, phases) == "error"
    phases["environment"].add("failed", 0.1)
    assert build_outcome(0, phases) == "failed"


def make_record() -> BuildRecord:
    return BuildRecord(build_id=new_build_id(), project={"name": "shop", "version": "1"}, config_path="/x.toml",
                       config_digest="0" * 64, marker_expression="full")


def test_summary_lists_phases_and_next_steps() -> None:
    record = make_record()
    record.phases["wheelhouse"].add("failed", 12.0)
    record.outcome = "failed"
    lines = summary_lines(record, {"log": "reports/build.log"})
    text = "\n".join(lines)
    assert "wheelhouse   failed" in text
    assert "failed phases: wheelhouse" in text
    assert "pytest build_suite -m wheelhouse" in text
    assert "reports/build.log" in text


def test_interrupted_summary_names_phase() -> None:
    record = make_record()
    record.outcome = "interrupted"
    record.running_phase = "images"
    assert "during the images phase" in next_steps(record, "log")[0]


def test_format_duration() -> None:
    assert format_duration(0.42) == "0.4s"
    assert format_duration(41) == "41s"
    assert format_duration(130) == "2m10s"
    assert format_duration(3720) == "1h02m"


def test_html_summary_escapes_and_draws_timeline() -> None:
    record = make_record()
    record.project["name"] = "<script>"
    record.phases["environment"].add("passed", 1.5)
    record.phases["environment"].start = 0.0
    build = record.to_json()
    html = "".join(summary_html(build))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<svg" in timeline_svg(build)
    assert "environment" in timeline_svg(build)


def hold_lock(folder: str, seconds: float, ready) -> None:
    lock = BuildLock(Path(folder), "holder")
    lock.acquire(wait=False, on_wait=print)
    ready.set()
    time.sleep(seconds)
    lock.release()


def test_lock_fails_or_waits(tmp_path: Path) -> None:
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=hold_lock, args=(str(tmp_path), 2.0, ready))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockBusyError, match="build holder"):
            BuildLock(tmp_path, "second").acquire(wait=False, on_wait=print)
        waits: list[str] = []
        lock = BuildLock(tmp_path, "third")
        lock.acquire(wait=True, on_wait=waits.append, interval=0.2, timeout=30)
        lock.release()
        assert waits
        assert "waiting for the build lock" in waits[0]
    finally:
        holder.join(10)
