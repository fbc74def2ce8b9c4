"""Live output of a real wheelhouse build, timestamped as a user's terminal receives it.

The requirements hold one local source distribution whose setup.py sleeps in
silence while pip builds its wheel, which is the case where only the harness's
heartbeat can keep the output moving. The build runs once on a pseudo-terminal
(`--progress tty`) and once on a pipe (`--progress plain`, as in CI).
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tarfile
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SDIST_SECONDS = 15
MAX_GAP = 3.0
# Heartbeats arrived 3.00 to 3.07 s apart on a busy 2-core machine, so scheduling gets a small allowance.
GAP_TOLERANCE = 0.25
# Silence is measured from the harness's header (after collection, which imports the phase modules)
# to the build summary.
FIRST_LINE = "phases: "
LAST_LINE = "build summary"

pytestmark = pytest.mark.slow

SETUP_PY = f"""\
import sys
import time

from setuptools import setup

# Only the wheel build is slow: resolving the metadata stays quick.
if "bdist_wheel" in sys.argv:
    time.sleep({SDIST_SECONDS})

setup(name="bs-slow-sdist", version="0.1", py_modules=["bs_slow_sdist"])
"""

PKG_INFO = "Metadata-Version: 2.1\nName: bs-slow-sdist\nVersion: 0.1\n"

CONFIG = """\
[project]
name = "{project}"
version = "0.1.0"

[target]
# The host's minor version, so that source distributions build on the host.
python = "3.11"
glibc = "2.36"
arch = "x86_64"

[wheelhouse]
requirements = ["requirements.txt"]
output = "wheelhouse"
find_links = ["{dist}"]

[[base_images]]
name = "localhost/build-suite/python:3.11-bookworm"
suite = "bookworm"
packages = ["python3", "python3-venv"]

[[services]]
name = "web"
dockerfile = "Dockerfile"
base_image = "localhost/build-suite/python:3.11-bookworm"
[services.probe]
kind = "tcp"
port = 8000
"""


def write_slow_sdist(dist: Path) -> Path:
    """Write bs-slow-sdist 0.1 as a source distribution, served to pip from `dist` through find_links."""
    dist.mkdir(parents=True)
    path = dist / "bs_slow_sdist-0.1.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in {"setup.py": SETUP_PY, "PKG-INFO": PKG_INFO, "bs_slow_sdist.py": ""}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"bs_slow_sdist-0.1/{name}")
            info.size = len(data)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return path


def write_stack(folder: Path, project: str) -> Path:
    write_slow_sdist(folder / "dist")
    (folder / "requirements.txt").write_text("bs-slow-sdist==0.1\n")
    (folder / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    config = folder / "buildsuite.toml"
    config.write_text(CONFIG.format(project=project, dist=folder / "dist"))
    return config


def build_command(config: Path, report_dir: Path, progress: str) -> list[str]:
    return [sys.executable, "-m", "pytest", str(ROOT / "build_suite"), "-c", str(ROOT / "pytest.ini"),
            "--rootdir", str(ROOT), "--build-config", str(config), "--report-dir", str(report_dir),
            "--progress", progress, "-m", "wheelhouse"]


def build_environment() -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    environment["PIP_CONFIG_FILE"] = os.devnull
    return environment


def read_with_times(fd: int, process: subprocess.Popen, timeout: float) -> list[tuple[float, bytes]]:
    """Read `fd` until the process ends and return each chunk with the time it arrived."""
    chunks: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the pty's other end closed
                data = b""
            if data:
                chunks.append((time.monotonic(), data))
                continue
            if process.poll() is not None:
                break
        elif process.poll() is not None:
            break
    else:
        process.kill()
        pytest.fail(f"the build did not finish within {timeout} s")
    process.wait()
    return chunks


def run_in_pty(command: list[str], columns: int = 160) -> tuple[int, list[tuple[float, bytes]]]:
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT,
                               env=build_environment(), close_fds=True)
    os.close(terminal)
    try:
        chunks = read_with_times(controller, process, timeout=600)
    finally:
        os.close(controller)
    return process.returncode, chunks


def run_on_pipe(command: list[str]) -> tuple[int, list[tuple[float, bytes]]]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                               env=build_environment())
    assert process.stdout is not None
    chunks = read_with_times(process.stdout.fileno(), process, timeout=600)
    return process.returncode, chunks


def timed_lines(chunks: list[tuple[float, bytes]]) -> list[tuple[float, str]]:
    """Split the output into lines and carriage-return updates, each stamped with its chunk's time."""
    lines: list[tuple[float, str]] = []
    for moment, data in chunks:
        for piece in re.split(r"[\r\n]+", data.decode("utf-8", errors="replace")):
            text = piece.replace("\x1b[K", "").strip()
            if text:
                lines.append((moment, text))
    return lines


def largest_gap(lines: list[tuple[float, str]], first: str, last: str) -> tuple[float, str]:
    """Return the longest silence between the line containing `first` and the one containing `last`."""
    start = next(index for index, (_, text) in enumerate(lines) if first in text)
    end = next(index for index, (_, text) in enumerate(lines) if last in text)
    assert start < end, (first, last)
    gap, after = 0.0, ""
    for (before_time, _), (moment, text) in zip(lines[start:end], lines[start + 1:end + 1]):
        if moment - before_time > gap:
            gap, after = moment - before_time, text
    return gap, after


def check_build_story(lines: list[tuple[float, str]]) -> None:
    """Check the order: an estimate first, then the slow sdist build, then 'took X, estimated Y'."""
    texts = [text for _, text in lines]
    estimate = next(i for i, text in enumerate(texts) if re.search(r"wheelhouse: estimated \d", text))
    building = next(i for i, text in enumerate(texts) if "building bs-slow-sdist 0.1" in text)
    took = next(i for i, text in enumerate(texts) if re.search(r"took \S+, estimated \S+", text))
    assert estimate < building < took, (texts[estimate], texts[building], texts[took])
    built_at = lines[building][0]
    took_at = lines[took][0]
    assert took_at - built_at >= SDIST_SECONDS - 1, "the sdist build was not slow: the test checks nothing"


def test_tty_progress_keeps_moving(tmp_path: Path) -> None:
    config = write_stack(tmp_path / "stack", "live-tty")
    returncode, chunks = run_in_pty(build_command(config, tmp_path / "reports", "tty"))
    output = b"".join(data for _, data in chunks).decode("utf-8", errors="replace")
    assert returncode == 0, output[-5000:]

    lines = timed_lines(chunks)
    check_build_story(lines)
    gap, after = largest_gap(lines, FIRST_LINE, LAST_LINE)
    assert gap <= MAX_GAP + GAP_TOLERANCE, f"{gap:.2f} s of silence before {after!r}"

    updates = re.findall(r"\r(?!\n)", output)
    assert len(updates) >= SDIST_SECONDS // MAX_GAP, "no carriage-return updates on the terminal"
    assert "\x1b[K" in output
    sdist_updates = re.findall(r"\r[^\r\n]*bs-slow-sdist[^\r\n]*", output)
    assert len(sdist_updates) >= SDIST_SECONDS // MAX_GAP, "the status line did not name the sdist being built"


def test_plain_progress_keeps_moving(tmp_path: Path) -> None:
    config = write_stack(tmp_path / "stack", "live-plain")
    returncode, chunks = run_on_pipe(build_command(config, tmp_path / "reports", "plain"))
    output = b"".join(data for _, data in chunks).decode("utf-8", errors="replace")
    assert returncode == 0, output[-5000:]

    assert "\r" not in output, "plain mode must write whole lines only"
    lines = timed_lines(chunks)
    check_build_story(lines)
    gap, after = largest_gap(lines, FIRST_LINE, LAST_LINE)
    assert gap <= MAX_GAP + GAP_TOLERANCE, f"{gap:.2f} s of silence before {after!r}"
