"""Session fixtures that chain the phases: build_config -> environment -> wheelhouse -> images -> containers.

A phase selected alone (`-m images`) still gets every prerequisite through
these fixtures, and each fixture reuses an artifact that is still valid (a
wheelhouse whose manifest matches, an image layer cache) instead of building
it again. Test order never matters for correctness.

A fixture that cannot provide its artifact fails the tests that need it with
the library's message and no traceback (`pytest.fail(..., pytrace=False)`).
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from build_suite.baseimage import ensure_base_image
from build_suite.config import BuildConfig
from build_suite.containers import ContainerStack, ServiceOutcome
from build_suite.crossbuild import ContainerBuilder, builder_image_name, is_cross_target
from build_suite.engine import EngineConnection, connect_engine
from build_suite.environment import run_checks
from build_suite.errors import BuildSuiteError, WheelhouseError
from build_suite.heartbeat import Heartbeat
from build_suite.lock import FolderLock
from build_suite.images import CONFIG_HASH_LABEL, GIT_COMMIT_LABEL, ImageResult, build_image, dockerfile_instructions
from build_suite.output import Output
from build_suite.probes import healthcheck_from_dockerfile
from build_suite.summary import format_duration
from build_suite.target import TargetSpec
from build_suite.validation import Problem, check_pin_conflicts
from build_suite.wheelhouse import build_wheelhouse
from build_suite.wheelhouselive import WheelhouseLive
from build_suite.wheelstatus import Step, WheelhouseResult
from plugins.harness import BuildSession, build_session


PROJECT_LABEL = "build-suite.project"
HISTORY_FOLDER = "history"
REQUIREMENTS_TITLE = "invalid or conflicting requirements"
# Base images are shared between projects, so they carry no project label and --clean keeps them.
BASE_IMAGE_LABEL = "build-suite.base-image"


def fail(error: BuildSuiteError) -> None:
    pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def build_state(pytestconfig: pytest.Config) -> BuildSession:
    state = build_session(pytestconfig)
    if state is None:
        pytest.skip("not a build session: run the phases with `pytest build_suite`")
    return state


@pytest.fixture(scope="session")
def build_config(build_state: BuildSession) -> BuildConfig:
    return build_state.config


class EngineHolder:
    """Connects to the engine on first use; the error is kept so every phase reports the same cause."""

    def __init__(self) -> None:
        self.connection: EngineConnection | None = None
        self.error: BuildSuiteError | None = None

    def get(self) -> EngineConnection:
        if self.connection is None and self.error is None:
            try:
                self.connection = connect_engine()
            except BuildSuiteError as error:
                self.error = error
        if self.error is not None:
            raise self.error
        assert self.connection is not None
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


@pytest.fixture(scope="session")
def engine_holder() -> Iterator[EngineHolder]:
    holder = EngineHolder()
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture(scope="session")
def engine(engine_holder: EngineHolder) -> EngineConnection:
    try:
        return engine_holder.get()
    except BuildSuiteError as error:
        fail(error)
        raise


@pytest.fixture(scope="session")
def environment(build_state: BuildSession, engine_holder: EngineHolder, build_output: Output) -> dict[str, Any]:
    """Run every environment check once and record the facts in the build report."""
    checks = run_checks(build_state.config, engine_holder.get, build_output)
    build_state.record.environment.update(
        {name: check.facts for name, check in checks.items()} | environment_summary(checks))
    return checks


def environment_summary(checks: dict[str, Any]) -> dict[str, Any]:
    python = checks["python"].facts
    engine = checks["engine"].facts
    return {
        "host_python": python.get("host", {}).get("version"),
        "target": python.get("target"),
        "engine": engine,
    }


def git_commit(folder: Path) -> str:
    """Return the commit checked out in `folder`, or "unknown" outside a git checkout."""
    try:
        completed = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                                   text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return completed.stdout.strip() if completed.returncode == 0 else "unknown"


def project_labels(state: BuildSession) -> dict[str, str]:
    return {PROJECT_LABEL: state.config.project.name}


@pytest.fixture(scope="session")
def base_images(build_state: BuildSession, engine: EngineConnection, build_output: Output) -> dict[str, str]:
    """Make sure every base image exists; record whether it was present, pulled or made."""
    provenance: dict[str, str] = {}
    for name in build_state.config.base_image_names():
        recipe = build_state.config.recipe_for(name)
        with Heartbeat("base image", build_output.status) as beat:
            beat.update(f"looking for {name}")
            try:
                result = ensure_base_image(
                    engine.client, name, suite=recipe.suite if recipe else "bookworm",
                    packages=recipe.packages if recipe else (), make=bool(recipe and recipe.make),
                    progress=lambda line: (beat.update(line), build_output.line(line)),
                    labels={BASE_IMAGE_LABEL: "made"})
            except BuildSuiteError as error:
                fail(error)
        provenance[name] = result.outcome
        build_output.line(f"base image {name}: {result.outcome} ({format_duration(result.seconds)})")
    build_state.record.environment["base_image_sources"] = provenance
    return provenance


class ImageBuilder:
    """Builds each service's image once per session, on first request.

    Under pytest-xdist every worker has its own builder, and each builds the images
    of the tests it runs, so images build in parallel. A worker that needs an image
    another worker built gets it from the engine's layer cache within seconds.
    """

    def __init__(self, state: BuildSession, engine: EngineConnection, output: Output) -> None:
        self.state = state
        self.engine = engine
        self.output = output
        self.results: dict[str, ImageResult] = {}
        self.labels = {GIT_COMMIT_LABEL: git_commit(state.config.root), CONFIG_HASH_LABEL: state.config.digest,
                       **project_labels(state)}

    def get(self, name: str) -> ImageResult:
        if name not in self.results:
            service = self.state.config.service(name)
            # Two xdist workers building one image at once race in the engine, and one build fails. With
            # this lock the second worker waits, then builds from the layer cache within seconds.
            with FolderLock(self.state.report_dir / ".images" / name), \
                    Heartbeat("images", self.output.status) as beat:
                def progress(line: str) -> None:
                    beat.update(line)
                    self.output.status(line)

                result = build_image(self.engine.client, service, build_id=self.state.record.build_id,
                                     labels=self.labels, on_progress=progress, heartbeat=2.5)
            self.results[name] = result
            self.output.line(image_line(result))
            self.state.record.set_section("images", [image_record(r, self.state.config.service(r.service).tag)
                                                     for r in self.results.values()])
        return self.results[name]

    def all(self) -> dict[str, ImageResult]:
        return {service.name: self.get(service.name) for service in self.state.config.services}


def image_line(result: ImageResult) -> str:
    if result.status == "failed":
        return f"image {result.service}: failed after {format_duration(result.seconds)}"
    size = f"{result.size / 1e6:.0f} MB" if result.size else "size unknown"
    return (f"image {result.service}: {result.status} in {format_duration(result.seconds)}, {size}, "
            f"{result.layers} layers, {result.cache_hits} cache hits")


def image_record(result: ImageResult, tag: str) -> dict[str, Any]:
    return {"service": result.service, "status": result.status, "tag": tag, "image_id": result.image_id,
            "size": result.size, "layers": result.layers, "seconds": round(result.seconds, 3),
            "cache_hits": result.cache_hits, "error": result.error}


@pytest.fixture(scope="session")
def images(build_state: BuildSession, engine: EngineConnection, base_images: dict[str, str], wheelhouse: Any,
           build_output: Output) -> ImageBuilder:
    return ImageBuilder(build_state, engine, build_output)


@pytest.fixture(scope="session")
def containers(build_state: BuildSession, engine: EngineConnection, images: ImageBuilder,
               build_output: Output) -> Iterator[ContainerStack]:
    """Start every service in dependency order and wait until healthy; always removed at the end."""
    results = images.all()
    image_ids = {name: result.image_id for name, result in results.items() if result.image_id}
    config = build_state.config
    stack = ContainerStack(engine.client, list(config.services), image_ids, build_state.record.build_id,
                           labels=project_labels(build_state), keep=build_state.keep_containers,
                           healthchecks=image_healthchecks(config))
    try:
        with Heartbeat("containers", build_output.status) as beat:
            def progress(line: str) -> None:
                beat.update(line)
                build_output.line(f"containers: {line}")

            stack.on_progress = progress
            stack.start()
        build_state.record.set_section("containers", [container_record(outcome)
                                                      for outcome in stack.outcomes.values()])
        yield stack
    finally:
        stack.close()


def image_healthchecks(config: BuildConfig) -> dict[str, tuple[str, ...]]:
    """Read each service's HEALTHCHECK from its Dockerfile, since the built image may have dropped it."""
    checks = {}
    for service in config.services:
        command = healthcheck_from_dockerfile(dockerfile_instructions(service.dockerfile.read_text(encoding="utf-8")))
        if command:
            checks[service.name] = command
    return checks


def container_record(outcome: ServiceOutcome) -> dict[str, Any]:
    return {"service": outcome.service, "status": outcome.status,
            "seconds_to_healthy": None if outcome.seconds_to_healthy is None else round(outcome.seconds_to_healthy, 3),
            "probes": outcome.probes, "exit_code": outcome.exit_code, "detail": outcome.error,
            "log_tail": list(outcome.log_tail)}


def target_spec(build_config: BuildConfig) -> TargetSpec:
    target = build_config.target
    return TargetSpec(python=target.python, implementation=target.implementation, platform=target.platform,
                      libc=target.libc, glibc=target.glibc, arch=target.arch, portable=target.portable)


def problems_text(title: str, problems: list[Problem]) -> str:
    lines = [f"{title}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"]
    for problem in problems:
        lines.append(f"- {problem.file}: {problem.message}")
        if problem.hint:
            lines.append(f"  what to do: {problem.hint}")
    return "\n".join(lines)


def history_path(state: BuildSession) -> Path:
    return state.report_dir / HISTORY_FOLDER / "wheel-times.json"


def wheelhouse_builder(request: pytest.FixtureRequest, state: BuildSession, engine_holder: EngineHolder,
                       output: Output) -> ContainerBuilder | None:
    """Return the builder container for a target Python other than the host's, or None for the host's.

    Only a cross-target build connects to the engine and makes sure the base image exists,
    so a same-target wheelhouse builds without an engine.
    """
    config = state.config
    if not is_cross_target(config.target):
        return None
    failure = None
    try:
        image = builder_image_name(config.base_image_names())
        request.getfixturevalue("base_images")
        builder = ContainerBuilder(engine_holder.get().client, image, labels=project_labels(state),
                                   on_line=lambda label, line: output.log(f"[{label}] {line}"))
        version = builder.check_python(config.target)
    except BuildSuiteError as error:
        failure = error
    # Failing outside the except block keeps "During handling of the above exception" out of the report.
    if failure is not None:
        fail(failure)
    output.line(f"wheelhouse: target Python {config.target.python}: sdists build in {image} (Python {version})")
    return builder


@pytest.fixture(scope="session")
def wheelhouse(request: pytest.FixtureRequest, build_state: BuildSession, environment: dict[str, Any],
               engine_holder: EngineHolder, build_output: Output) -> WheelhouseResult:
    """Build the wheelhouse, or reuse it when its manifest still matches the requirements and target."""
    config = build_state.config
    target = target_spec(config)
    builder = wheelhouse_builder(request, build_state, engine_holder, build_output)
    conflicts = check_pin_conflicts(config.wheelhouse.requirements, target)
    if conflicts:
        pytest.fail(problems_text(REQUIREMENTS_TITLE, conflicts), pytrace=False)
    disk = environment["disk"]
    if not disk.ok:
        pytest.fail(f"not enough space for the wheelhouse: {disk.detail}\n  what to do: {disk.hint}", pytrace=False)

    live = WheelhouseLive(build_output.status, config.wheelhouse.output)
    started = time.monotonic()

    def on_event(event: Any) -> None:
        if isinstance(event, Step):
            build_output.line(f"wheelhouse: {event.text}")

    failure = None
    try:
        # Under pytest-xdist each worker runs this fixture; the lock lets one build while the others wait.
        with FolderLock(config.wheelhouse.output):
            result = build_wheelhouse(config.wheelhouse, target, on_line=build_output.log, on_event=on_event,
                                      history_path=history_path(build_state), progress=live, builder=builder)
    except BuildSuiteError as error:
        failure = explain_no_space(error, config)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        failure = explain_no_space(WheelhouseError(str(error)), config)
    # Failing outside the except block keeps "During handling of the above exception" out of every report.
    if failure is not None:
        build_state.record.set_section("wheelhouse", {"status": "failed", "error": str(failure)})
        fail(failure)
    build_state.record.set_section("wheelhouse", wheelhouse_record(result, started - build_state.started))
    return result


def explain_no_space(error: BuildSuiteError, config: BuildConfig) -> BuildSuiteError:
    """Turn a failure caused by a full disk into one that names the wheelhouse folder and the space needed."""
    if "No space left on device" not in str(error) and "Errno 28" not in str(error):
        return error
    folder = config.wheelhouse.output
    existing = folder if folder.exists() else folder.parent
    free = shutil.disk_usage(existing).free
    return WheelhouseError(
        f"no space left in the wheelhouse folder {folder}: {free / 1e6:.1f} MB free, and this build asks for at "
        f"least {config.environment.min_disk_gb:g} GB ([environment] min_disk_gb)",
        f"free space on the disk of {folder}, or set [wheelhouse] output to a folder on a larger disk; "
        "the partial files were removed, so the next build starts cleanly")


def wheelhouse_record(result: WheelhouseResult, offset: float) -> dict[str, Any]:
    """Summarise the manifest for the report; `start` places each wheel on the timeline, one after another."""
    wheels = []
    position = offset
    for wheel in result.wheels:
        wheels.append({"name": wheel.name, "version": wheel.version, "filename": wheel.filename,
                       "sha256": wheel.sha256, "size": wheel.size, "source": wheel.source,
                       "seconds": round(wheel.seconds, 3), "start": round(position, 3)})
        position += wheel.seconds if wheel.source != "reused" else 0.0
    return {
        "status": result.status,
        "reused": result.status == "reused",
        "output": str(result.output),
        "manifest": str(result.manifest_path),
        "estimated_seconds": round(result.estimated_seconds, 3),
        "actual_seconds": round(result.duration, 3),
        # Runs of pip and, with the uv resolver, of uv.
        "pip_runs": result.pip_runs,
        "resolver": result.resolver,
        "counts": {"wheels": len(result.wheels), "downloaded": len(result.downloaded), "built": len(result.built),
                   "reused": len(result.reused), "removed": len(result.removed),
                   "build_dependencies": len(result.build_deps)},
        "total_bytes": sum(wheel.size for wheel in result.wheels),
        "wheels": wheels,
        "summary": result.summary,
    }
