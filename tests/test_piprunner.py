"""Tests of the process runner: line splitting, redaction, timeouts, stalls and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from build_suite.piprunner import (
    KILL_GRACE,
    LineSplitter,
    clean_line,
    run_streaming,
    strip_ansi,
)
from build_suite.redact import Redactor

ROOT = Path(__file__).resolve().parent.parent


def write_script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def is_gone(pid: int, wait: float = 5.0) -> bool:
    """Return True once `pid` no longer runs; a zombie waiting for its reaper counts as gone."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def pids_from(lines: list[str]) -> list[int]:
    """Return the pids a fake script printed on its "PIDS ..." line."""
    for line in lines:
        if line.startswith("PIDS "):
            return [int(value) for value in line.split()[1:]]
    raise AssertionError(f"no PIDS line in {lines}")


# A fake pip that starts a child in its group and a grandchild that left the
# group with setsid, prints their pids and then waits forever.
TREE_SCRIPT = """\
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "300"])
escaped = subprocess.Popen(["sleep", "300"], start_new_session=True)
print("PIDS", os.getpid(), child.pid, escaped.pid, flush=True)
while True:
    time.sleep(1)
"""


def test_lines_and_returncode(tmp_path: Path) -> None:
    script = write_script(tmp_path, "fake_pip.py", """\
        import sys
        print("Collecting six")
        print("  Downloading six-1.17.0-py2.py3-none-any.whl (11 kB)", file=sys.stderr)
        print("Successfully downloaded six")
        sys.exit(3)
    """)
    lines: list[str] = []
    result = run_streaming([sys.executable, str(script)], on_line=lines.append, timeout=30, stall_timeout=None)
    assert result.returncode == 3
    assert not result.ok
    assert not result.timed_out
    assert not result.stalled
    assert lines == [
        "Collecting six",
        "  Downloading six-1.17.0-py2.py3-none-any.whl (11 kB)",
        "Successfully downloaded six",
    ]
    assert result.tail == lines


def test_success_is_ok() -> None:
    result = run_streaming([sys.executable, "-c", "print('done')"], on_line=lambda line: None, timeout=30,
                           stall_timeout=5)
    assert result.ok
    assert result.returncode == 0
    assert result.tail == ["done"]


def test_stdin_is_devnull() -> None:
    lines: list[str] = []
    code = "import sys; data = sys.stdin.read(); print('read', len(data))"
    run_streaming([sys.executable, "-c", code], on_line=lines.append, timeout=30, stall_timeout=None)
    assert lines == ["read 0"]


def test_carriage_returns_ansi_and_bad_bytes(tmp_path: Path) -> None:
    script = write_script(tmp_path, "fake_pip.py", r"""
        import sys
        out = sys.stdout.buffer
        out.write(b"\x1b[32mframe 1\x1b[0m\rframe 2\rframe 3\r\n")
        out.write(b"cc1: warning: caf\xe9 \xff\n")
        out.write(b"no newline at the end")
    """)
    lines: list[str] = []
    result = run_streaming([sys.executable, str(script)], on_line=lines.append, timeout=30, stall_timeout=None)
    assert lines == ["frame 1", "frame 2", "frame 3", "cc1: warning: caf\ufffd \ufffd", "no newline at the end"]
    assert result.last_partial == "no newline at the end"
    assert result.returncode == 0


def test_credentials_are_redacted(tmp_path: Path) -> None:
    script = write_script(tmp_path, "fake_pip.py", """\
        import sys
        print("Looking in indexes: https://builder:pa55word@127.0.0.1:9/simple")
        print("using token " + sys.argv[1])
    """)
    lines: list[str] = []
    redactor = Redactor(["tok-123456"])
    result = run_streaming(
        [sys.executable, str(script), "tok-123456", "--index-url", "https://builder:pa55word@127.0.0.1:9/simple"],
        on_line=lines.append, timeout=30, stall_timeout=None, redactor=redactor,
    )
    assert lines == ["Looking in indexes: https://****@127.0.0.1:9/simple", "using token ****"]
    assert "https://****@127.0.0.1:9/simple" in result.argv
    assert "****" in result.argv
    assert not any("pa55word" in arg or "tok-123456" in arg for arg in result.argv)


def test_environment_secrets_are_redacted_by_default() -> None:
    env = dict(os.environ, PIP_INDEX_URL="https://builder:s3cret-value@127.0.0.1:9/simple")
    lines: list[str] = []
    code = "import os; print('password is', os.environ['PIP_INDEX_URL'].split(':')[2].split('@')[0])"
    run_streaming([sys.executable, "-c", code], env=env, on_line=lines.append, timeout=30, stall_timeout=None)
    assert lines == ["password is ****"]


def test_tail_keeps_last_lines() -> None:
    code = "for i in range(200): print('line', i)"
    result = run_streaming([sys.executable, "-c", code], on_line=lambda line: None, timeout=30, stall_timeout=None,
                           tail_lines=50)
    assert len(result.tail) == 50
    assert result.tail[0] == "line 150"
    assert result.tail[-1] == "line 199"


def test_on_start_receives_child_pid() -> None:
    started: list[int] = []
    lines: list[str] = []
    run_streaming([sys.executable, "-c", "import os; print(os.getpid())"], on_line=lines.append,
                  on_start=started.append, timeout=30, stall_timeout=None)
    assert started == [int(lines[0])]


def test_timeout_leaves_no_process(tmp_path: Path) -> None:
    script = write_script(tmp_path, "fake_pip.py", TREE_SCRIPT)
    lines: list[str] = []
    started = time.monotonic()
    result = run_streaming([sys.executable, str(script)], on_line=lines.append, timeout=2, stall_timeout=None)
    elapsed = time.monotonic() - started

    assert result.timed_out
    assert not result.stalled
    assert not result.ok
    assert result.returncode == -signal.SIGTERM
    assert 2 <= result.duration < 2 + KILL_GRACE + 2
    assert elapsed < 2 + KILL_GRACE + 2
    root, child, escaped = pids_from(lines)
    for pid in (root, child, escaped):
        assert is_gone(pid), f"pid {pid} survived the timeout"
    assert any("fake_pip.py" in command for command in result.running)
    assert sum("sleep 300" in command for command in result.running) == 2


def test_timeout_kills_child_that_ignores_sigterm() -> None:
    lines: list[str] = []
    command = ["sh", "-c", "trap '' TERM; sleep 300 & echo PIDS $$ $!; wait"]
    result = run_streaming(command, on_line=lines.append, timeout=1, stall_timeout=None)
    assert result.timed_out
    assert result.returncode == -signal.SIGKILL
    assert result.duration >= 1 + KILL_GRACE - 0.5
    for pid in pids_from(lines):
        assert is_gone(pid), f"pid {pid} survived SIGKILL"


def test_stall_at_prompt(tmp_path: Path) -> None:
    # Waits on a pipe that no process writes to, like a prompt waiting on a terminal.
    script = write_script(tmp_path, "fake_pip.py", """\
        import os, sys
        print("Collecting private-package", flush=True)
        sys.stdout.write("User for 127.0.0.1: ")
        sys.stdout.flush()
        read_end, write_end = os.pipe()
        os.read(read_end, 1)
    """)
    lines: list[str] = []
    result = run_streaming([sys.executable, str(script)], on_line=lines.append, timeout=60, stall_timeout=1.5,
                           network=False)
    assert result.stalled
    assert not result.timed_out
    assert result.last_partial == "User for 127.0.0.1:"
    assert 1.5 <= result.duration < 10
    assert lines[0] == "Collecting private-package"
    assert any("fake_pip.py" in command for command in result.running)


def test_busy_cpu_is_not_a_stall() -> None:
    code = "import time\nend = time.monotonic() + 3\nwhile time.monotonic() < end: pass\nprint('built')"
    result = run_streaming([sys.executable, "-c", code], on_line=lambda line: None, timeout=30, stall_timeout=1.5,
                           network=False)
    assert not result.stalled
    assert result.ok
    assert result.tail == ["built"]


def test_activity_callback_prevents_stall() -> None:
    calls: list[float] = []

    def activity() -> bool:
        calls.append(time.monotonic())
        return True

    code = "import time; time.sleep(3); print('done')"
    result = run_streaming([sys.executable, "-c", code], on_line=lambda line: None, timeout=30, stall_timeout=1.0,
                           network=False, activity=activity)
    assert not result.stalled
    assert result.ok
    assert calls


def test_quiet_sleep_without_activity_stalls() -> None:
    code = "import time; time.sleep(30)"
    result = run_streaming([sys.executable, "-c", code], on_line=lambda line: None, timeout=60, stall_timeout=1.0,
                           network=False, activity=lambda: False)
    assert result.stalled
    assert result.duration < 10


def test_cancel_event_stops_tree(tmp_path: Path) -> None:
    import threading

    script = write_script(tmp_path, "fake_pip.py", TREE_SCRIPT)
    cancel = threading.Event()
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line.startswith("PIDS "):
            threading.Timer(0.3, cancel.set).start()

    result = run_streaming([sys.executable, str(script)], on_line=on_line, timeout=60, stall_timeout=None,
                           cancel=cancel)
    assert result.cancelled
    assert not result.timed_out
    assert not result.interrupted
    assert not result.ok
    assert result.duration < 10
    for pid in pids_from(lines):
        assert is_gone(pid), f"pid {pid} survived the cancel"


def test_leftover_background_process_is_stopped() -> None:
    lines: list[str] = []
    result = run_streaming(["sh", "-c", "sleep 300 & echo PIDS $!"], on_line=lines.append, timeout=30,
                           stall_timeout=None)
    assert result.returncode == 0
    assert result.ok
    (background,) = pids_from(lines)
    assert is_gone(background)


def test_child_killed_by_sigint_is_interrupted() -> None:
    code = "import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(5)"
    result = run_streaming([sys.executable, "-c", code], on_line=lambda line: None, timeout=30, stall_timeout=None)
    assert result.returncode == -signal.SIGINT
    assert result.interrupted
    assert not result.ok


def test_on_line_error_stops_tree(tmp_path: Path) -> None:
    script = write_script(tmp_path, "fake_pip.py", TREE_SCRIPT)
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        raise RuntimeError("consumer failed")

    with pytest.raises(RuntimeError, match="consumer failed"):
        run_streaming([sys.executable, str(script)], on_line=on_line, timeout=30, stall_timeout=None)
    for pid in pids_from(seen):
        assert is_gone(pid), f"pid {pid} survived the failed consumer"


def test_sigint_to_runner_leaves_no_process(tmp_path: Path) -> None:
    fake = write_script(tmp_path, "fake_pip.py", TREE_SCRIPT)
    runner = write_script(tmp_path, "runner.py", f"""\
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from build_suite.piprunner import run_streaming

        run_streaming([sys.executable, {str(fake)!r}], on_line=lambda line: print(line, flush=True),
                      timeout=120, stall_timeout=None)
    """)
    process = subprocess.Popen([sys.executable, str(runner)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        pids = pids_from([first])
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0
    assert "KeyboardInterrupt" in stderr
    for pid in pids:
        assert is_gone(pid), f"pid {pid} survived Ctrl-C of the runner"


def test_line_splitter_handles_split_crlf_and_multibyte() -> None:
    data = "Saved ./wheelhouse/caf\u00e9-1.0-py3-none-any.whl\r\nnext\r".encode()
    splitter = LineSplitter()
    lines: list[str] = []
    for index in range(len(data)):
        lines.extend(splitter.feed(data[index:index + 1]))
    assert lines == ["Saved ./wheelhouse/caf\u00e9-1.0-py3-none-any.whl"]
    assert splitter.partial == "next\r"
    assert splitter.close() == ["next"]
    assert splitter.partial == ""


def test_line_splitter_truncated_multibyte_at_close() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"end \xc3") == []
    assert splitter.close() == ["end \ufffd"]


def test_line_splitter_keeps_empty_lines() -> None:
    assert LineSplitter().feed(b"a\n\nb\n") == ["a", "", "b"]


def test_strip_ansi() -> None:
    assert strip_ansi("\x1b[1;31mERROR:\x1b[0m bad") == "ERROR: bad"
    assert strip_ansi("\x1b]8;;https://example.org\x07link\x1b]8;;\x07") == "link"
    assert strip_ansi("\x1b[?25lhidden cursor\x1b[?25h") == "hidden cursor"
    assert strip_ansi("\x1b7saved\x1b8") == "saved"
    assert strip_ansi("\x1b(Bplain") == "plain"


def test_clean_line_strips_and_redacts() -> None:
    assert clean_line("\x1b[33mhttps://a:b@h.example/x\x1b[0m   ") == "https://****@h.example/x"


def load_recorder():
    """Import tests/transcripts/record.py, which also makes the wheels of the find-links case."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("transcript_recorder", Path(__file__).parent / "transcripts" / "record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def isolated_pip_environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def test_real_pip_download_offline(tmp_path: Path) -> None:
    from build_suite.monitors import BuildProgress
    from build_suite.pipoutput import Processing, Saved

    recorder = load_recorder()
    links = tmp_path / "links"
    links.mkdir()
    recorder.make_wheel(links, "demo-app", "1.0", ("demo-lib>=2",))
    recorder.make_wheel(links, "demo-lib", "2.1")
    progress = BuildProgress()
    events = []
    result = run_streaming(
        [sys.executable, "-m", "pip", "download", "--no-input", "--no-index", "--find-links", str(links),
         "-d", "./out", "demo-app==1.0"],
        env=isolated_pip_environment(), cwd=tmp_path, on_line=lambda line: events.append(progress.feed_line(line)),
        timeout=120, stall_timeout=60,
    )
    assert result.ok, result.tail
    processing = [event for event in events if isinstance(event, Processing)]
    assert [event.name for event in processing] == ["demo-app", "demo-lib"]
    assert processing[1].parent == "demo-app==1.0"
    saved = sorted(event.filename for event in events if isinstance(event, Saved))
    assert saved == ["demo_app-1.0-py3-none-any.whl", "demo_lib-2.1-py3-none-any.whl"]
    snapshot = progress.snapshot()
    assert snapshot.packages_done == 2
    assert snapshot.activity == "finished"
