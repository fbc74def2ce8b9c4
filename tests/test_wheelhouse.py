"""Tests of the wheelhouse phase against the real package index through pip.

Every pip run here has its configuration isolated (PIP_CONFIG_FILE is the null
device and no PIP_* variable of the machine is passed on), either by
build_wheelhouse itself or by `isolated_env` for the reference runs.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from build_suite.config import Target, WheelhouseConfig
from build_suite.errors import WheelhouseError
from build_suite.manifest import MANIFEST_NAME, is_readable_zip, load_manifest, sha256_file, umask
from build_suite.pipargs import pip_env
from build_suite.wheelhouse import RUN_MARKER, Progress, Step, build_wheelhouse, progress_text

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

REQUIREMENTS = """\
# docopt 0.6.2 exists only as an sdist, so it is built.
docopt==0.6.2
anyio==4.6.0
# Excluded by its marker on every Python 3.
six==1.17.0 ; python_version < "3"
-r included.txt
"""
INCLUDED = "idna==3.10\n"
CONSTRAINTS = "sniffio==1.3.0\n"


def isolated_env() -> dict[str, str]:
    return pip_env(isolate=True)


def write_inputs(folder: Path) -> WheelhouseConfig:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text(REQUIREMENTS)
    (folder / "included.txt").write_text(INCLUDED)
    (folder / "constraints.txt").write_text(CONSTRAINTS)
    return WheelhouseConfig(
        requirements=(folder / "requirements.txt",),
        constraints=(folder / "constraints.txt",),
        output=folder / "wheelhouse",
        timeout=300,
        stall_timeout=120,
    )


def pip_resolution(config: WheelhouseConfig, tmp: Path) -> set[tuple[str, str]]:
    """Resolve with pip directly and return its (name, version) set."""
    report = tmp / "reference-report.json"
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report)]
    for path in config.requirements:
        argv += ["-r", str(path)]
    for path in config.constraints:
        argv += ["-c", str(path)]
    subprocess.run(argv, env=isolated_env(), check=True, capture_output=True, timeout=300)
    data = json.loads(report.read_text())
    return {(item["metadata"]["name"].lower().replace("_", "-"), item["metadata"]["version"]) for item in data["install"]}


def wheel_keys(folder: Path) -> set[tuple[str, str]]:
    keys = set()
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        keys.add((name.lower().replace("_", "-"), version))
    return keys


def failing_pip(folder: Path) -> Path:
    """Write a pip stand-in that records its call and fails."""
    marker = folder / "pip-was-run"
    script = folder / "failing-pip"
    script.write_text(f"#!/bin/sh\ntouch {marker}\necho 'pip must not run' >&2\nexit 3\n")
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[WheelhouseConfig, object, list]:
    folder = tmp_path_factory.mktemp("built")
    config = write_inputs(folder)
    events: list = []
    # An empty pip cache makes pip build docopt instead of taking an earlier build from its cache.
    result = build_wheelhouse(
        config,
        Target(),
        on_event=events.append,
        history_path=folder / "history.json",
        pip_extra_env={"PIP_CACHE_DIR": str(folder / "pip-cache")},
    )
    return config, result, events


@pytest.fixture
def copy_of_built(built, tmp_path: Path) -> WheelhouseConfig:
    """A private copy of the built wheelhouse and its inputs, for tests that change it."""
    config, _, _ = built
    source = Path(config.output).parent
    target = tmp_path / "copy"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("pip-cache"))
    return replace(
        config,
        requirements=(target / "requirements.txt",),
        constraints=(target / "constraints.txt",),
        output=target / "wheelhouse",
    )


def test_build_equals_pip_resolution(built, tmp_path: Path) -> None:
    config, result, _ = built
    expected = pip_resolution(config, tmp_path)
    assert wheel_keys(Path(config.output)) == expected
    assert ("sniffio", "1.3.0") in expected
    assert ("idna", "3.10") in expected
    assert not any(name == "six" for name, _ in expected)
    assert result.status == "built"


def test_build_builds_sdist_offline_ready(built) -> None:
    config, result, _ = built
    output = Path(config.output)
    assert [name for name in result.built if name.startswith("docopt-0.6.2-")]
    assert (output / "sdists" / "docopt-0.6.2.tar.gz").is_file()
    build_deps = {p.name.split("-")[0].lower() for p in (output / "build-deps").glob("*.whl")}
    assert "setuptools" in build_deps
    assert "wheel" in build_deps


def test_build_writes_verified_manifest(built) -> None:
    config, result, _ = built
    output = Path(config.output)
    manifest = load_manifest(output)
    assert manifest is not None
    assert {r.filename for r in manifest.wheels} == {p.name for p in output.glob("*.whl")}
    for record in manifest.wheels:
        assert sha256_file(output / record.filename) == record.sha256
        assert record.source in ("downloaded", "built")
    assert result.manifest_path == output / MANIFEST_NAME


def test_build_reports_steps_and_pip_events(built) -> None:
    _, _, events = built
    steps = [e for e in events if isinstance(e, Step)]
    kinds = {step.kind for step in steps}
    assert {"estimate", "resolve", "download", "build", "done"} <= kinds
    assert any(step.text.startswith("estimated ") for step in steps)
    assert any(type(e).__name__ == "CreatedWheel" for e in events)


def test_build_writes_history(built) -> None:
    config, _, _ = built
    history = json.loads((Path(config.output).parent / "history.json").read_text())
    assert history["packages"]["docopt"]["build_seconds"] > 0
    assert history["packages"]["idna"]["download_seconds"] >= 0


def test_reuse_runs_no_pip(copy_of_built, tmp_path: Path) -> None:
    script = failing_pip(tmp_path)
    result = build_wheelhouse(copy_of_built, Target(), pip_command=(str(script),))
    assert result.status == "reused"
    assert result.pip_runs == 0
    assert not (tmp_path / "pip-was-run").exists()
    assert len(result.reused) == len(list(Path(copy_of_built.output).glob("*.whl")))


def test_reuse_rejected_for_other_target(copy_of_built, tmp_path: Path) -> None:
    script = failing_pip(tmp_path)
    with pytest.raises(WheelhouseError):
        build_wheelhouse(copy_of_built, Target(python="3.12"), pip_command=(str(script),))
    assert (tmp_path / "pip-was-run").exists()


def test_changed_requirements_fetch_only_missing(copy_of_built, tmp_path: Path) -> None:
    requirements = Path(copy_of_built.requirements[0])
    requirements.write_text(requirements.read_text() + "certifi==2024.8.30\n")
    result = build_wheelhouse(copy_of_built, Target())
    assert result.status == "updated"
    assert result.downloaded == ("certifi-2024.8.30-py3-none-any.whl",)
    assert result.built == ()
    assert wheel_keys(Path(copy_of_built.output)) == pip_resolution(copy_of_built, tmp_path)


def test_removed_requirement_prunes_wheel(copy_of_built) -> None:
    requirements = Path(copy_of_built.requirements[0])
    requirements.write_text(requirements.read_text().replace("anyio==4.6.0\n", ""))
    result = build_wheelhouse(copy_of_built, Target())
    names = {key[0] for key in wheel_keys(Path(copy_of_built.output))}
    assert "anyio" not in names
    assert "sniffio" not in names
    assert any(name.startswith("anyio-") for name in result.removed)
    assert result.downloaded == ()


def test_truncated_wheel_rebuilt(copy_of_built) -> None:
    output = Path(copy_of_built.output)
    wheel = next(output.glob("docopt-*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:2000])
    result = build_wheelhouse(copy_of_built, Target())
    assert wheel.name in result.removed
    assert wheel.name in result.built
    assert is_readable_zip(wheel)


def test_corrupt_downloaded_wheel_fetched_again(copy_of_built) -> None:
    output = Path(copy_of_built.output)
    wheel = next(output.glob("idna-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[100] ^= 0xFF
    wheel.write_bytes(bytes(data))
    result = build_wheelhouse(copy_of_built, Target())
    assert result.downloaded == (wheel.name,)
    manifest = load_manifest(output)
    assert manifest is not None
    recorded = {r.filename: r.sha256 for r in manifest.wheels}
    assert sha256_file(wheel) == recorded[wheel.name]


def test_corrupt_build_requirement_fetched_again(copy_of_built) -> None:
    output = Path(copy_of_built.output)
    build_dep = next((output / "build-deps").glob("wheel-*.whl"))
    size = build_dep.stat().st_size
    build_dep.write_bytes(build_dep.read_bytes()[:500])
    result = build_wheelhouse(copy_of_built, Target())

    assert f"build-deps/{build_dep.name}" in result.removed
    assert build_dep.stat().st_size == size
    assert is_readable_zip(build_dep)
    recorded = {r.filename: r for r in result.build_deps}
    assert recorded[build_dep.name].size == size
    assert recorded[build_dep.name].sha256 == sha256_file(build_dep)
    assert build_wheelhouse(copy_of_built, Target()).status == "reused"


def test_files_keep_the_usual_mode(built) -> None:
    config, result, _ = built
    expected = 0o666 & ~umask()
    modes = {path.name: path.stat().st_mode & 0o777 for path in Path(config.output).glob("*.whl")}
    modes[MANIFEST_NAME] = (Path(config.output) / MANIFEST_NAME).stat().st_mode & 0o777
    assert modes
    assert {name: mode for name, mode in modes.items() if mode != expected} == {}


def test_stray_temp_files_removed(copy_of_built) -> None:
    output = Path(copy_of_built.output)
    stray = output / ".tmp-idna-3.10-py3-none-any.whl.abc123"
    stray.write_bytes(b"partial")
    result = build_wheelhouse(copy_of_built, Target())
    assert not stray.exists()
    assert result.status == "reused"


def test_timeout_names_running_step(tmp_path: Path) -> None:
    config = replace(write_inputs(tmp_path), timeout=1.5)
    # An empty pip cache makes pip build docopt's metadata, which takes longer than the timeout.
    with pytest.raises(WheelhouseError) as caught:
        build_wheelhouse(config, Target(), pip_extra_env={"PIP_CACHE_DIR": str(tmp_path / "cache")})
    message = str(caught.value)
    assert "timed out" in message
    assert "resolving" in message
    assert not [p for p in Path(config.output).rglob(".tmp-*")]


def test_progress_published_while_pip_silent(tmp_path: Path) -> None:
    config = replace(write_inputs(tmp_path), heartbeat=10.0)
    # A pip that prints nothing for 7 s: only the heartbeat can publish then.
    slow_pip = tmp_path / "slow-pip"
    slow_pip.write_text(f'#!/bin/sh\nsleep 7\nexec {sys.executable} -m pip "$@"\n')
    slow_pip.chmod(0o755)
    times: list[float] = []

    result = build_wheelhouse(
        config,
        Target(),
        progress=lambda snapshot: times.append(time.monotonic()),
        pip_command=(str(slow_pip),),
    )

    gaps = [b - a for a, b in zip(times, times[1:])]
    assert result.duration > 7
    assert max(gaps) <= 3.5


INTERRUPTED_BUILD = """
import sys
from pathlib import Path
from build_suite.config import Target, WheelhouseConfig
from build_suite.wheelhouse import build_wheelhouse
config = WheelhouseConfig(requirements=(Path(sys.argv[1]),), output=Path(sys.argv[2]), timeout=300)
build_wheelhouse(
    config,
    Target(),
    on_line=lambda line: print(line, flush=True),
    pip_extra_env={"PIP_CACHE_DIR": sys.argv[3]},
)
"""


def test_interrupted_build_leaves_no_partial_wheel(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("docopt==0.6.2\n")
    output = tmp_path / "wheelhouse"
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_BUILD, str(requirements), str(output), str(tmp_path / "pip-cache")],
        cwd=ROOT,
        env={**isolated_env(), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if line.startswith("[docopt 0.6.2]") and "Installing build dependencies: started" in line:
            break
    else:
        pytest.fail("the build never started:\n" + "".join(seen[-20:]))
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)

    assert process.returncode != 0
    assert not list(output.rglob(".tmp-*"))
    assert not list(output.glob("docopt-*.whl"))
    for wheel in output.glob("*.whl"):
        assert is_readable_zip(wheel)
    leftovers = []
    for candidate in psutil.process_iter():
        try:
            if candidate.environ().get(RUN_MARKER, "").startswith(f"{process.pid}-"):
                leftovers.append(candidate)
        except psutil.Error:
            continue
    assert leftovers == []


def test_isolation_hides_machine_find_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    links = tmp_path / "links"
    links.mkdir()
    fake = links / "idna-99.0-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("idna-99.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: idna\nVersion: 99.0\n")
        archive.writestr("idna-99.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr("idna-99.0.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    (tmp_path / "requirements.txt").write_text("idna\n")
    config = WheelhouseConfig(requirements=(tmp_path / "requirements.txt",), output=tmp_path / "wheelhouse", timeout=300)

    isolated = build_wheelhouse(config, Target())
    leaking = build_wheelhouse(replace(config, isolate_pip_config=False, output=tmp_path / "leaking"), Target())

    assert [r.version for r in isolated.wheels if r.name == "idna"] != ["99.0"]
    assert [r.version for r in leaking.wheels if r.name == "idna"] == ["99.0"]


def test_progress_text_names_longest_task() -> None:
    snapshot = Progress("fetching", 3, 10, (("downloading idna 3.10", 1.0), ("building docopt 0.6.2", 14.0)), 20.0, 80.0)
    text = progress_text(snapshot)
    assert "3/10" in text
    assert "building docopt 0.6.2 (14s) and 1 more" in text
    assert "about 1m00s left" in text


def test_hashed_requirements_checked(built, tmp_path: Path) -> None:
    config, _, _ = built
    manifest = load_manifest(Path(config.output))
    assert manifest is not None
    idna = next(r for r in manifest.wheels if r.name == "idna")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"idna==3.10 --hash=sha256:{idna.sha256}\n")
    hashed = WheelhouseConfig(requirements=(requirements,), output=tmp_path / "wheelhouse", timeout=300)

    result = build_wheelhouse(hashed, Target())
    assert [r.filename for r in result.wheels] == [idna.filename]
    assert result.wheels[0].sha256 == idna.sha256

    requirements.write_text("idna==3.10 --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(WheelhouseError) as caught:
        build_wheelhouse(replace(hashed, output=tmp_path / "other"), Target())
    assert "hash" in str(caught.value).lower()
