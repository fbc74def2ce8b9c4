"""Tests of `resolver = "uv"` against the real package index, through uv and pip with their configuration isolated.

uv's resolution of the demo stack and of the real input must be the one pip
makes. pip's offline check of the finished wheelhouse must catch a resolution
that pip would not install, and uv's failures must be reported.
"""

from __future__ import annotations

import io
import sys
import tarfile
import textwrap
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from build_suite import uvphase
from build_suite.config import Target, WheelhouseConfig
from build_suite.errors import WheelhouseError
from build_suite.manifest import is_readable_zip, load_manifest
from build_suite.pipargs import default_pip_command, pip_env
from build_suite.resolve import resolve
from build_suite.sdistbuild import build_wheel
from build_suite.uvbuild import uv_build_wheel, uv_download_build_deps
from build_suite.uvresolve import find_uv, resolve_with_uv
from build_suite.wheelfetch import PipContext
from build_suite.wheelhouse import Progress, Step, build_wheelhouse

ROOT = Path(__file__).resolve().parent.parent
DEMO_REQUIREMENTS = tuple(sorted((ROOT / "examples" / "demo-stack" / "requirements").glob("*.txt")))
REAL_INPUT_API = ROOT.parent / "shared" / "real-input" / "xnai" / "requirements-api.txt"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pip and uv caches of this module only, so the results do not depend on the machine's."""
    folder = tmp_path_factory.mktemp("caches")
    return {"PIP_CACHE_DIR": str(folder / "pip"), "UV_CACHE_DIR": str(folder / "uv")}


def build(
    config: WheelhouseConfig,
    caches: dict[str, str],
    lines: list[str] | None = None,
    reports: list[Progress] | None = None,
    timings: dict[str, float | None] | None = None,
) -> tuple[object, list[str]]:
    """Build the wheelhouse; return the result and the text of each step. `timings` gets each step's seconds."""
    steps: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, Step):
            steps.append(event.text)
            if timings is not None:
                timings[event.text] = event.seconds

    on_line = lines.append if lines is not None else None
    progress = reports.append if reports is not None else None
    result = build_wheelhouse(
        config, Target(), on_event=on_event, on_line=on_line, pip_extra_env=caches, progress=progress
    )
    return result, steps


def test_uv_demo_wheelhouse_matches_pip(tmp_path: Path, caches: dict[str, str]) -> None:
    config = WheelhouseConfig(requirements=DEMO_REQUIREMENTS, output=tmp_path / "pip", timeout=600)
    by_pip, _ = build(config, caches)
    lines: list[str] = []
    reports: list[Progress] = []
    by_uv, steps = build(replace(config, output=tmp_path / "uv", resolver="uv"), caches, lines, reports)
    # The live counts never step back, though worker threads and the heartbeat publish at once.
    done = [report.done for report in reports]
    assert done == sorted(done)
    assert done[-1] == 18

    assert "resolving the requirements with uv" in steps
    assert by_uv.resolver == "uv"
    assert by_pip.resolver == "pip"
    assert any(step.startswith("pip installs the same 18 wheels") for step in steps), steps
    assert sorted(w.filename for w in by_uv.wheels) == sorted(w.filename for w in by_pip.wheels)
    assert sorted(p.name for p in (tmp_path / "uv").glob("*.whl")) == sorted(w.filename for w in by_pip.wheels)
    # docopt has only an sdist, which uv builds when it resolved.
    assert any(name.startswith("docopt-0.6.2") for name in by_uv.built)
    assert any(line.startswith("[docopt 0.6.2]") and "Successfully built" in line for line in lines), lines[-20:]
    # on_line carries the output of pip and uv only, each line under its task's label.
    assert all(line.startswith("[") for line in lines), [line for line in lines if not line.startswith("[")][:5]
    # The manifest records the version of the pip that ran the offline check.
    assert by_uv.status == "built"
    assert load_manifest(tmp_path / "uv").pip_version


@pytest.mark.skipif(not REAL_INPUT_API.is_file(), reason=f"real input not found: {REAL_INPUT_API}")
def test_uv_real_input_matches_pip(tmp_path: Path, caches: dict[str, str]) -> None:
    config = WheelhouseConfig(requirements=(REAL_INPUT_API,), output=tmp_path, timeout=600)
    env = pip_env(isolate=True, extra=caches)
    lines: list[str] = []
    common = dict(env=env, on_line=lines.append, timeout=600, stall_timeout=120, work_dir=tmp_path)
    by_uv = resolve_with_uv(find_uv(), config, **common)
    by_pip = resolve(config, pip_command=default_pip_command(), **common)

    def files(plan: object) -> list[tuple[str, str, str]]:
        return [(a.name, a.version, a.filename) for a in plan.artifacts]

    assert len(by_pip.artifacts) > 50
    assert files(by_uv) == files(by_pip)
    assert [a.sha256 for a in by_uv.artifacts] == [a.sha256 for a in by_pip.artifacts]


def test_switching_resolver_resolves_again(tmp_path: Path, caches: dict[str, str]) -> None:
    (tmp_path / "requirements.txt").write_text("idna==3.10\nsniffio==1.3.1\n")
    config = WheelhouseConfig(
        requirements=(tmp_path / "requirements.txt",), output=tmp_path / "wheelhouse", timeout=600, resolver="uv"
    )
    first, _ = build(config, caches)
    second, steps = build(replace(config, resolver="pip"), caches)

    assert first.resolver == "uv"
    assert second.status == "updated"
    assert second.resolver == "pip"
    assert "resolving the requirements with pip" in steps
    assert second.downloaded == ()
    assert sorted(second.reused) == sorted(w.filename for w in first.wheels)


def write_dropping_uv(folder: Path, drop: str) -> Path:
    """Write an executable that runs the real uv, then removes the package `drop` from the pylock.toml it wrote."""
    script = folder / "uv-dropping"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import subprocess, sys
            argv = sys.argv[1:]
            code = subprocess.call([{find_uv()!r}, *argv])
            path = argv[argv.index("--output-file") + 1]
            blocks = open(path).read().split("\\n[[packages]]\\n")
            remaining = [b for b in blocks if not b.startswith('name = "{drop}"')]
            open(path, "w").write("\\n[[packages]]\\n".join(remaining))
            sys.exit(code)
            """
        )
    )
    script.chmod(0o755)
    return script


def test_pip_check_replaces_incomplete_resolution(
    tmp_path: Path, caches: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "requirements.txt").write_text("httpx==0.28.1\n")
    monkeypatch.setattr(uvphase, "find_uv", lambda: str(write_dropping_uv(tmp_path, "idna")))
    config = WheelhouseConfig(
        requirements=(tmp_path / "requirements.txt",), output=tmp_path / "wheelhouse", timeout=600, resolver="uv"
    )
    timings: dict[str, float | None] = {}
    result, steps = build(config, caches, timings=timings)

    disagreement = [step for step in steps if step.startswith("pip disagrees with uv")]
    assert disagreement, steps
    assert "idna" in disagreement[0]
    assert "resolving the requirements with pip" in steps
    assert result.resolver == "pip"
    # Each resolve reports its own time, not the time since the phase started.
    by_uv = next(seconds for text, seconds in timings.items() if text.startswith("uv resolved"))
    by_pip = next(seconds for text, seconds in timings.items() if text.startswith("resolved "))
    assert by_uv + by_pip <= result.duration
    names = sorted(w.name for w in result.wheels)
    assert "idna" in names
    assert "httpx" in names
    assert any(path.name.startswith("idna-") for path in (tmp_path / "wheelhouse").glob("*.whl"))


def test_uv_failure_names_package(tmp_path: Path, caches: dict[str, str]) -> None:
    (tmp_path / "requirements.txt").write_text("build-suite-no-such-distribution-7c1f==1.0\n")
    config = WheelhouseConfig(
        requirements=(tmp_path / "requirements.txt",), output=tmp_path / "wheelhouse", timeout=600, resolver="uv"
    )
    with pytest.raises(WheelhouseError) as info:
        build(config, caches)
    assert info.value.message.startswith("uv failed with exit code")
    assert "build-suite-no-such-distribution-7c1f" in info.value.message
    assert str(tmp_path / "requirements.txt") in info.value.message
    assert 'resolver = "pip"' in info.value.hint
    assert not list((tmp_path / "wheelhouse").glob(".tmp-*"))


def test_cross_target_resolves_with_pip(tmp_path: Path, caches: dict[str, str]) -> None:
    (tmp_path / "requirements.txt").write_text("idna==3.10\n")
    config = WheelhouseConfig(
        requirements=(tmp_path / "requirements.txt",), output=tmp_path / "wheelhouse", timeout=600, resolver="uv"
    )
    other = f"{sys.version_info.major}.{sys.version_info.minor + 1}"
    steps: list[str] = []
    with pytest.raises(WheelhouseError) as info:
        build_wheelhouse(
            config, Target(python=other), pip_extra_env=caches,
            on_event=lambda event: steps.append(event.text) if isinstance(event, Step) else None,
        )
    assert "no builder container" in info.value.message
    assert any("resolving with pip instead of uv: the target Python differs" in step for step in steps), steps


def write_sdist(folder: Path, name: str, version: str, setup_body: str = "") -> Path:
    """Write a setuptools sdist of one module; `setup_body` is extra code run by its setup.py."""
    prefix = f"{name}-{version}"
    files = {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n',
        "setup.py": f"{setup_body}\nfrom setuptools import setup\nsetup(name={name!r}, version={version!r}, py_modules=[{name!r}])\n",
        f"{name}.py": "VALUE = 1\n",
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    path = folder / f"{prefix}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for relative, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{prefix}/{relative}")
            info.size = len(data)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return path


def pip_context(config: WheelhouseConfig, caches: dict[str, str], lines: list[str]) -> PipContext:
    return PipContext(
        command=tuple(default_pip_command()),
        env=pip_env(isolate=True, extra=caches),
        config=config,
        deadline=time.monotonic() + 600,
        stall_timeout=120,
        on_line=lambda label, line: lines.append(f"[{label}] {line}"),
    )


def test_uv_wheel_matches_pip_wheel(tmp_path: Path, caches: dict[str, str]) -> None:
    sdist = write_sdist(tmp_path, "bsuvsame", "1.0")
    config = WheelhouseConfig(requirements=(), output=tmp_path / "wheelhouse", timeout=600)
    config.output.mkdir()
    lines: list[str] = []
    context = pip_context(config, caches, lines)

    uv_temp, uv_name = uv_build_wheel(find_uv(), sdist, config.output, context, "bsuvsame 1.0")
    pip_temp, pip_name, _ = build_wheel(str(sdist), config.output, context, "bsuvsame 1.0", build_deps=None)

    assert uv_name == pip_name == "bsuvsame-1.0-py3-none-any.whl"
    with zipfile.ZipFile(uv_temp) as by_uv, zipfile.ZipFile(pip_temp) as by_pip:
        assert sorted(by_uv.namelist()) == sorted(by_pip.namelist())
        for member in by_pip.namelist():
            assert by_uv.read(member) == by_pip.read(member), member
    assert context.runs == 2


def test_uv_build_failure_names_sdist(tmp_path: Path, caches: dict[str, str]) -> None:
    sdist = write_sdist(tmp_path, "bsuvbroken", "1.0", setup_body='raise SystemExit("bsuvbroken refuses to build")')
    config = WheelhouseConfig(requirements=(), output=tmp_path / "wheelhouse", timeout=600)
    config.output.mkdir()
    lines: list[str] = []
    with pytest.raises(WheelhouseError) as info:
        uv_build_wheel(find_uv(), sdist, config.output, pip_context(config, caches, lines), "bsuvbroken 1.0")
    assert info.value.message.startswith("uv failed with exit code")
    assert "while building bsuvbroken 1.0" in info.value.message
    assert "bsuvbroken refuses to build" in info.value.message
    assert list(config.output.iterdir()) == []


def test_uv_keeps_build_requirements_whole(tmp_path: Path, caches: dict[str, str]) -> None:
    config = WheelhouseConfig(requirements=(), output=tmp_path / "wheelhouse", timeout=600)
    folder = tmp_path / "build-deps"
    lines: list[str] = []
    context = pip_context(config, caches, lines)
    added = uv_download_build_deps(find_uv(), ["setuptools>=61", "wheel"], folder, context, "test")

    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(added)
    assert any(name.startswith("setuptools-") for name in names)
    assert any(name.startswith("wheel-") for name in names)
    assert all(name.endswith(".whl") and is_readable_zip(folder / name) for name in names)
    # A second call finds every file in place and fetches nothing.
    assert uv_download_build_deps(find_uv(), ["setuptools>=61", "wheel"], folder, context, "test") == []
