"""Tests of cross-target wheelhouse builds: a Python 3.13 wheelhouse built on a host of another Python.

The slow tests use the package index through pip with an isolated pip
configuration, and the engine with the trixie base image (Python 3.13). They
skip with the reason when either is missing. Every container and image they
make carries the label build-suite.test=crossbuild and is removed afterwards.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from build_suite.config import Target, WheelhouseConfig, load_config
from build_suite.crossbuild import (
    CONTAINER_BUILT,
    ContainerBuilder,
    builder_image_name,
    check_image_resolution,
    host_architecture,
    is_cross_target,
    target_options,
    target_pip_command,
    target_pip_env,
)
from build_suite.errors import WheelhouseError
from build_suite.images import build_image
from build_suite.manifest import load_manifest
from build_suite.offline import check_offline_resolution
from build_suite.pipargs import pip_env
from build_suite.resolve import resolve, resolve_argv
from build_suite.sdistbuild import BUILD_DEPS_FOLDER, SDIST_FOLDER
from build_suite.target import TargetSpec
from build_suite.validation import check_wheelhouse_files
from build_suite.wheelhouse import build_wheelhouse

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo-stack"
ENGINE_URL = "unix:///run/podman/podman.sock"
TRIXIE_IMAGE = "localhost/build-suite/python:3.13-trixie"
TEST_LABEL = {"build-suite.test": "crossbuild"}
# Python and glibc of Debian trixie's python3 package in the base image.
TARGET_PYTHON = "3.13.5"
TARGET_GLIBC = "2.41"
OTHER_PYTHON = "3.13" if sys.version_info[:2] != (3, 13) else "3.12"


def host_python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


# -- pip options and target checks -------------------------------------------


def test_target_options_choose_target_wheels() -> None:
    options = target_options(Target(python="3.13.5", glibc="2.41"))
    pairs = list(zip(options, options[1:]))
    # The full version: pip reads "3.13" as 3.13.0 when it checks Requires-Python.
    assert ("--python-version", "3.13.5") in pairs
    assert ("--implementation", "cp") in pairs
    assert ("--abi", "cp313") in pairs
    assert ("--abi", "abi3") in pairs
    assert ("--platform", "manylinux_2_41_x86_64") in pairs
    assert ("--platform", "manylinux2014_x86_64") in pairs
    assert ("--platform", "linux_x86_64") in pairs
    assert ("--only-binary", ":all:") in pairs


def test_target_options_portable_drops_linux_tag() -> None:
    options = target_options(Target(python="3.13", portable=True))
    assert "linux_x86_64" not in options
    assert "manylinux_2_36_x86_64" in options


def test_cross_target_detection() -> None:
    host = ".".join(str(part) for part in sys.version_info[:3])
    assert not is_cross_target(Target(python=host_python()))
    assert not is_cross_target(Target(python=host))
    # Another patch release is another target: Requires-Python and python_full_version markers differ.
    assert is_cross_target(TargetSpec(python=f"{host_python()}.99"))
    assert is_cross_target(Target(python=OTHER_PYTHON))


def test_cross_target_rejects_other_architecture() -> None:
    other = "aarch64" if host_architecture() != "aarch64" else "x86_64"
    with pytest.raises(WheelhouseError, match="architecture"):
        is_cross_target(Target(python=OTHER_PYTHON, arch=other))


def test_builder_image_needs_one_base_image() -> None:
    assert builder_image_name(["a:1", "a:1", ""]) == "a:1"
    with pytest.raises(WheelhouseError, match="exactly one base image"):
        builder_image_name(["a:1", "b:2"])
    with pytest.raises(WheelhouseError, match="found: none"):
        builder_image_name([])


def test_image_resolution_must_match_plan() -> None:
    check_image_resolution("image", {("Typing_Extensions", "4.16.0")}, {("typing-extensions", "4.16")})
    with pytest.raises(WheelhouseError, match="only in the image's resolution: six 1.17.0; only in the plan: none"):
        check_image_resolution("image", {("idna", "3.10")}, {("idna", "3.10"), ("six", "1.17.0")})
    with pytest.raises(WheelhouseError, match="only in the plan: idna 3.10"):
        check_image_resolution("image", {("idna", "3.10")}, set())


def test_resolve_argv_target_options(tmp_path: Path) -> None:
    config = WheelhouseConfig(
        requirements=(tmp_path / "r.txt",), constraints=(), output=tmp_path, no_binary=("docopt",)
    )
    options = target_options(Target(python=OTHER_PYTHON))
    argv = resolve_argv(config, tmp_path / "report.json", pip_command=("pip",), target_options=options,
                        target_dir=tmp_path / "t")
    assert "--target" in argv
    assert argv[argv.index("--target") + 1] == str(tmp_path / "t")
    assert "--no-binary" not in argv
    host_argv = resolve_argv(config, tmp_path / "report.json", pip_command=("pip",))
    assert "--no-binary" in host_argv
    assert "--target" not in host_argv
    with pytest.raises(ValueError, match="target_dir"):
        resolve_argv(config, tmp_path / "report.json", pip_command=("pip",), target_options=options)


@pytest.mark.slow
def test_cross_build_without_builder_fails(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("idna==3.10\n")
    config = WheelhouseConfig(requirements=(tmp_path / "requirements.txt",), constraints=(),
                              output=tmp_path / "wheelhouse")
    with pytest.raises(WheelhouseError, match="no builder container"):
        build_wheelhouse(config, Target(python=OTHER_PYTHON))
    assert list((tmp_path / "wheelhouse").glob("*.whl")) == []


# -- markers for the target (package index, no engine) -----------------------

MARKER_REQUIREMENTS = f"""\
six==1.17.0 ; python_version == "{host_python()}"
idna==3.10 ; python_version == "{OTHER_PYTHON}"
"""


def resolve_names(tmp_path: Path, pip_command, extra_env) -> set[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(MARKER_REQUIREMENTS)
    config = WheelhouseConfig(requirements=(requirements,), constraints=(), output=tmp_path)
    plan = resolve(
        config, pip_command=pip_command, env=pip_env(isolate=True, extra=extra_env), on_line=lambda line: None,
        timeout=300, stall_timeout=120, work_dir=tmp_path, target_options=target_options(Target(python=OTHER_PYTHON)),
    )
    return {artifact.name for artifact in plan.artifacts}


@pytest.mark.slow
def test_target_markers_decide_requirements(tmp_path: Path) -> None:
    names = resolve_names(tmp_path, target_pip_command(), target_pip_env(Target(python=OTHER_PYTHON)))
    assert "idna" in names
    assert "six" not in names


@pytest.mark.slow
def test_host_pip_uses_host_markers(tmp_path: Path) -> None:
    # The reason for targetpip.py: pip's --python-version leaves markers at the host's values.
    names = resolve_names(tmp_path, (sys.executable, "-m", "pip"), {})
    assert "six" in names
    assert "idna" not in names


# -- the demo stack for Python 3.13 (package index and engine) ---------------


@pytest.fixture(scope="module")
def engine_client():
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=ENGINE_URL)
    try:
        client.ping()
    except Exception as error:  # any failure to reach the engine means: skip
        pytest.skip(f"no container engine at {ENGINE_URL}: {error}")
    try:
        client.images.get(TRIXIE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"base image {TRIXIE_IMAGE} is missing: make it with "
                    f"`python -m build_suite.baseimage {TRIXIE_IMAGE} --suite trixie --package passwd`")
    yield client
    labelled = {"label": "build-suite.test=crossbuild"}
    for container in client.containers.list(all=True, filters=labelled):
        container.remove(force=True)
    # The image builds leave labelled intermediate images of their stages behind.
    for image in client.images.list(all=True, filters=labelled):
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.NotFound:
            continue
    client.close()


def write_cross_config(folder: Path) -> Path:
    """Copy the demo stack into `folder` without its wheelhouse and make its config target the trixie image."""
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("wheelhouse", "__pycache__"))
    path = folder / "buildsuite.toml"
    text = path.read_text()
    for old, new in (
        ('python = "3.11.2"', f'python = "{TARGET_PYTHON}"'),
        ('glibc = "2.36"', f'glibc = "{TARGET_GLIBC}"'),
        ('suite = "bookworm"', 'suite = "trixie"'),
        # Debian trixie moved useradd out of the required packages, and the demo's images run useradd.
        ('packages = ["python3", "python3-venv"]', 'packages = ["python3", "python3-venv", "passwd"]'),
        ("localhost/build-suite/python:3.11-bookworm", TRIXIE_IMAGE),
    ):
        assert old in text, f"the demo's buildsuite.toml no longer contains {old!r}"
        text = text.replace(old, new)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cross_build(engine_client, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("cross") / "demo-stack"
    config = load_config(write_cross_config(folder))
    lines: list[str] = []
    builder = ContainerBuilder(engine_client, builder_image_name(config.base_image_names()),
                               labels={**TEST_LABEL, "build-suite.project": config.project.name},
                               on_line=lambda label, line: lines.append(f"[{label}] {line}"))
    result = build_wheelhouse(config.wheelhouse, config.target, builder=builder, on_line=lines.append,
                              pip_extra_env={"PIP_CACHE_DIR": str(folder.parent / "pip-cache")})
    return config, builder, result, lines


@pytest.mark.slow
def test_demo_cross_wheelhouse_validates(cross_build) -> None:
    config, _, result, _ = cross_build
    target = TargetSpec(python=TARGET_PYTHON, glibc=TARGET_GLIBC)
    assert result.status == "built"
    assert check_wheelhouse_files(result.output, config.wheelhouse.requirements, target) == []
    assert check_offline_resolution(result.output, config.wheelhouse.requirements, target) == []


@pytest.mark.slow
def test_demo_cross_wheels_fit_target(cross_build) -> None:
    _, _, result, _ = cross_build
    binary = [w for w in result.wheels if w.name.replace("-", "_") == "pydantic_core"]
    assert len(binary) == 1
    tags = parse_wheel_filename(binary[0].filename)[3]
    assert {tag.interpreter for tag in tags} == {"cp313"}


@pytest.mark.slow
def test_demo_cross_docopt_built_in_container(cross_build) -> None:
    _, builder, result, lines = cross_build
    docopt = [w for w in result.wheels if w.name == "docopt"]
    assert len(docopt) == 1
    assert docopt[0].source == CONTAINER_BUILT
    assert (result.output / SDIST_FOLDER / "docopt-0.6.2.tar.gz").is_file()
    build_requirements = {path.name.split("-")[0] for path in (result.output / BUILD_DEPS_FOLDER).glob("*.whl")}
    assert "setuptools" in build_requirements
    assert any(line.startswith(f"[building docopt 0.6.2 in {builder.image}]") for line in lines)


@pytest.mark.slow
def test_demo_cross_manifest_records_target(cross_build) -> None:
    _, builder, result, _ = cross_build
    manifest = load_manifest(result.output)
    assert manifest is not None
    assert manifest.target["python"] == TARGET_PYTHON
    assert manifest.target["builder_image"] == builder.image


@pytest.mark.slow
def test_demo_cross_leaves_no_containers(cross_build, engine_client) -> None:
    _, builder, _, _ = cross_build
    project = f"build-suite.project={builder.labels['build-suite.project']}"
    assert engine_client.containers.list(all=True, filters={"label": project}) == []


@pytest.mark.slow
def test_demo_cross_rebuild_is_reused(cross_build) -> None:
    config, builder, _, _ = cross_build
    again = build_wheelhouse(config.wheelhouse, config.target, builder=builder)
    assert again.status == "reused"
    assert again.pip_runs == 0


@pytest.mark.slow
def test_image_check_catches_missing_wheel(cross_build, tmp_path: Path) -> None:
    config, builder, result, _ = cross_build
    copy = tmp_path / "wheelhouse"
    shutil.copytree(result.output, copy)
    (copy / next(w.filename for w in result.wheels if w.name == "docopt")).unlink()
    with pytest.raises(WheelhouseError, match="offline"):
        builder.resolve_offline(copy, config.wheelhouse.requirements, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("service_name", "module"), [("api", "pydantic_core"), ("worker", "docopt")])
def test_demo_cross_image_installs_offline(cross_build, engine_client, service_name: str, module: str) -> None:
    config, _, _, _ = cross_build
    service = dataclasses.replace(config.service(service_name),
                                  tag=f"localhost/build-suite-test/crossbuild-{service_name}:test")
    result = build_image(engine_client, service, build_id="crossbuild-test", labels=TEST_LABEL,
                         on_progress=lambda line: None)
    try:
        assert result.status == "built", result.error
        assert service.build_args.get("BASE_IMAGE", service.base_image) == TRIXIE_IMAGE
        output = engine_client.containers.run(
            result.image_id, ["/opt/venv/bin/python", "-c", f"import sys, {module}; print(sys.version)"],
            remove=True, network_mode="none", labels=TEST_LABEL,
        )
        assert output.decode().startswith(TARGET_PYTHON)
    finally:
        if result.image_id:
            engine_client.images.remove(result.image_id, force=True)
