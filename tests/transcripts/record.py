"""Record pip transcripts for the parser tests.

Usage: python tests/transcripts/record.py [--case NAME ...] PIP_EXECUTABLE [PIP_EXECUTABLE ...]

Each PIP_EXECUTABLE is the pip of a throwaway virtual environment that has the
pip release to record. Each case runs in a fresh temporary folder with a fresh
cache, so "Downloading" lines appear, and with the pip configuration of this
machine ignored. The merged stdout and stderr are stored byte for byte after a
one-line header that names the pip version and the command.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# docopt 0.6.2 exists only as an sdist, python-dateutil pulls six as a
# dependency (a "from X->-r file" line), and markupsafe is a small C extension.
REQUIREMENTS = "docopt==0.6.2\npython-dateutil==2.9.0.post0\n"

# A local project whose build fails after writing a line that is not valid
# UTF-8, as a compiler in a Latin-1 locale would.
BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "broken-package"
version = "1.0"
"""
BROKEN_SETUP = """\
import sys
from setuptools import setup

if "bdist_wheel" in sys.argv:
    sys.stderr.buffer.write(b"broken.c:1:1: error: caf\\xe9 is not a type\\n")
    sys.stderr.flush()
    raise SystemExit(1)
setup()
"""

CASES = {
    "wheel": ["wheel", "--no-input", "-w", "./wheelhouse", "--cache-dir", "./cache", "-r", "requirements.txt"],
    "download": ["download", "--no-input", "-d", "./downloads", "--cache-dir", "./cache", "-r", "requirements.txt"],
    "no-binary": [
        "wheel", "--no-input", "--no-binary", "markupsafe", "-w", "./wheelhouse", "--cache-dir", "./cache",
        "markupsafe==2.1.5",
    ],
    # No release 99.0 exists, so pip lists the versions it found and fails.
    "not-found": ["download", "--no-input", "--no-deps", "-d", "./downloads", "--cache-dir", "./cache", "docopt==99.0"],
    "build-error": ["wheel", "--no-input", "-w", "./wheelhouse", "--cache-dir", "./cache", "./broken-package"],
    # Offline: two hand-made wheels in a --find-links folder, one depending on the other.
    "find-links": [
        "wheel", "--no-input", "--no-index", "--find-links", "./links", "-w", "./wheelhouse", "--cache-dir", "./cache",
        "-r", "local-requirements.txt",
    ],
}


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """Write a minimal pure-Python wheel that pip accepts, and return its path."""
    distribution = name.replace("-", "_")
    info = f"{distribution}-{version}.dist-info"
    requires_lines = "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    files = {
        f"{distribution}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires_lines}",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: build-suite-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    records = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        records.append(f"{path},sha256={digest},{len(text.encode())}")
    records.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(records) + "\n"
    target = folder / f"{distribution}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return target


def isolated_environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def pip_version(pip: str) -> str:
    output = subprocess.run([pip, "--version"], capture_output=True, text=True, check=True, env=isolated_environment())
    return output.stdout.split()[1]


def record(pip: str, case: str, arguments: list[str]) -> Path:
    version = pip_version(pip)
    with tempfile.TemporaryDirectory(prefix="pip-transcript-") as folder:
        Path(folder, "requirements.txt").write_text(REQUIREMENTS)
        Path(folder, "broken-package").mkdir()
        Path(folder, "broken-package", "pyproject.toml").write_text(BROKEN_PYPROJECT)
        Path(folder, "broken-package", "setup.py").write_text(BROKEN_SETUP)
        links = Path(folder, "links")
        links.mkdir()
        make_wheel(links, "demo-app", "1.0", ("demo-lib>=2",))
        make_wheel(links, "demo-lib", "2.1")
        Path(folder, "local-requirements.txt").write_text("demo-app==1.0\n")
        completed = subprocess.run(
            [pip, *arguments],
            cwd=folder,
            env=isolated_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    header = f"# pip {version} | exit {completed.returncode} | pip {' '.join(arguments)}\n"
    target = HERE / f"pip-{version}-{case}.txt"
    target.write_bytes(header.encode() + completed.stdout)
    return target


def main(arguments: list[str]) -> None:
    """Record every case, or only the cases named with --case NAME, for each pip given."""
    selected = [arguments[i + 1] for i, value in enumerate(arguments) if value == "--case"]
    pips = [value for i, value in enumerate(arguments) if value != "--case" and (i == 0 or arguments[i - 1] != "--case")]
    for pip in pips:
        for case, pip_arguments in CASES.items():
            if not selected or case in selected:
                print(record(pip, case, pip_arguments))


if __name__ == "__main__":
    main(sys.argv[1:])
