"""Build sdists into wheels, and keep each sdist and its build requirements for offline builds.

An sdist is built early, as soon as the resolving pip fetches it. pip's
resolver runs on one core and prepares each sdist's metadata in turn, so a
build on another core at that moment takes most of the build time off the
phase. The
sdist file goes to `sdists/` and the wheels of its build requirements
(PEP 518 [build-system] requires) to `build-deps/`, so a later build works
without the index. When uv resolved the wheelhouse, uv builds the sdists and
fetches their build requirements instead (uvbuild.py).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import threading
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from build_suite.errors import WheelhouseError
from build_suite.manifest import check_file, is_readable_zip
from build_suite.pipargs import binary_options, index_options
from build_suite.pipoutput import Downloading, PipEvent, UsingCached
from build_suite.resolve import Artifact, failure_hint, failure_message
from build_suite.uvbuild import uv_build_wheel, uv_download_build_deps
from build_suite.wheelfetch import TEMP_PREFIX, PipContext, download_url, single_file, temp_path

if TYPE_CHECKING:
    from build_suite.crossbuild import ContainerBuilder

BUILD_DEPS_FOLDER = "build-deps"
SDIST_FOLDER = "sdists"
# pip's build requirements for a source tree without [build-system] (PEP 518).
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
SETUPTOOLS_BACKENDS = ("setuptools.build_meta", "setuptools.build_meta:__legacy__")


def read_pyproject(sdist: Path) -> dict[str, object] | None:
    """Return the parsed top-level pyproject.toml of an sdist (.tar.gz or .zip), or None when it has none."""
    data = None
    if zipfile.is_zipfile(sdist):
        with zipfile.ZipFile(sdist) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/pyproject.toml")]
            if names:
                data = archive.read(names[0])
    else:
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/pyproject.toml"):
                    extracted = archive.extractfile(member)
                    data = extracted.read() if extracted else None
                    break
    if data is None:
        return None
    return tomllib.load(io.BytesIO(data))


def build_requires(sdist: Path) -> tuple[str, ...]:
    """Return the build requirements of an sdist as pip's build isolation would install them.

    This is [build-system] requires, or the legacy setuptools and wheel when the
    sdist declares none. Setuptools backends also get wheel, because setuptools
    releases before 70.1 ask for it at build time.
    """
    try:
        pyproject = read_pyproject(sdist)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, tomllib.TOMLDecodeError) as error:
        raise WheelhouseError(f"cannot read the source distribution {sdist.name}: {error}") from error
    system = (pyproject or {}).get("build-system")
    if not isinstance(system, dict) or "requires" not in system:
        return LEGACY_BUILD_REQUIRES
    requires = tuple(str(r) for r in system.get("requires", ()))
    backend = str(system.get("build-backend", "setuptools.build_meta:__legacy__"))
    if backend in SETUPTOOLS_BACKENDS and not any(r.strip().lower().startswith("wheel") for r in requires):
        requires += ("wheel",)
    return requires


def has_build_deps(requires: Sequence[str], folder: Path) -> bool:
    """Tell whether `folder` has a wheel for every requirement in `requires` that applies here.

    Only the named requirements are checked, not their own dependencies,
    because download_build_deps always stores a requirement together with them.
    """
    available: dict[str, list[Version]] = {}
    for wheel in folder.glob("*.whl") if folder.is_dir() else ():
        try:
            name, version, _, _ = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        available.setdefault(name, []).append(version)
    for text in requires:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return False
        # NOTE: markers are evaluated for the running interpreter, also in a
        # cross-target build, where the builder container's Python may differ.
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        versions = available.get(canonicalize_name(requirement.name), [])
        if not any(requirement.specifier.contains(v, prereleases=True) for v in versions):
            return False
    return True


def download_build_deps(requires: Sequence[str], folder: Path, context: PipContext, label: str) -> list[str]:
    """Download wheels of `requires` and their dependencies into `folder`; return the new file names.

    The files go to a temporary folder first and are moved in one by one, so
    `folder` never contains a partial wheel.
    """
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))
    try:
        options = ["--only-binary", ":all:", *context.target_options, "--dest", str(work)]
        options += [*index_options(context.config), *requires]
        result = context.run(label, "download", *options)
        if not result.ok:
            raise WheelhouseError(
                failure_message(f"downloading the build requirements of {label}", result), failure_hint(result)
            )
        added = []
        for wheel in sorted(work.iterdir()):
            if wheel.suffix == ".whl" and is_readable_zip(wheel) and not (folder / wheel.name).exists():
                os.replace(wheel, folder / wheel.name)
                added.append(wheel.name)
        return added
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_wheel(
    source: str,
    folder: Path,
    context: PipContext,
    label: str,
    *,
    build_deps: Path | None,
    options: Sequence[str] = (),
    watch: Callable[[str], None] | None = None,
) -> tuple[Path, str, bool]:
    """Build a wheel from `source` (an sdist path or a URL) into a temporary path in `folder`.

    Returns the temporary path, the wheel's file name and whether the build
    ran offline. With `build_deps`, pip first builds offline, taking build
    requirements only from that folder, and builds again with the index if
    that fails. `options` replaces the config's index options, and `watch`
    replaces the context's line callback. The caller moves the wheel into place.
    """
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))
    try:
        attempts: list[list[str]] = []
        if build_deps is not None:
            attempts.append(["--no-index", "--find-links", str(build_deps)])
        online = [] if options else index_options(context.config)
        if build_deps is not None:
            online += ["--find-links", str(build_deps)]
        attempts.append(online)
        result = None
        for number, index in enumerate(attempts):
            argv = ["--no-deps", "--wheel-dir", str(work), *options, *index, source]
            result = context.run(label, "wheel", *argv, watch=watch)
            if result.ok:
                wheel = single_file(work, ".whl", label)
                if not is_readable_zip(wheel):
                    raise WheelhouseError(f"pip built an unreadable wheel {wheel.name} for {label}")
                temp = temp_path(folder, wheel.name)
                os.replace(wheel, temp)
                return temp, wheel.name, number == 0 and build_deps is not None
        assert result is not None
        raise WheelhouseError(failure_message(f"building {label}", result), failure_hint(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_wheel_identity(filename: str, artifact: Artifact) -> None:
    """Raise WheelhouseError unless the wheel `filename` has the artifact's name and version."""
    name, version, _, _ = parse_wheel_filename(filename)
    if canonicalize_name(name) != artifact.name or canonicalize_version(version) != canonicalize_version(artifact.version):
        raise WheelhouseError(
            f"building {artifact.label} produced {filename}, which is a different distribution or version",
            "check the sdist's metadata: pip resolved a different name or version than the build produced",
        )


class SdistBuilder:
    """Builds the sdists of one phase run, sharing the phase's build pool, context and callbacks.

    `emit(kind, text, package)` reports a step, `pip_line(label, line)` passes
    a pip output line on and returns its event, and `track(label)` marks a
    running task for the live status. With a `container` builder (a
    crossbuild.ContainerBuilder), sdists are built inside it, offline, and
    never on the host.
    """

    def __init__(
        self,
        *,
        output: Path,
        config: object,
        context: PipContext,
        builds: ThreadPoolExecutor,
        emit: Callable[..., None],
        pip_line: Callable[[str, str], PipEvent],
        track: Callable[[str], AbstractContextManager[None]],
        container: ContainerBuilder | None = None,
    ) -> None:
        self.output = output
        self.container = container
        self.config = config
        self.context = context
        self.builds = builds
        self.emit = emit
        self.pip_line = pip_line
        self.track = track
        # A pool of its own, so build requirement downloads do not queue behind the wheel downloads.
        self.build_deps_pool = ThreadPoolExecutor(2, thread_name_prefix="wheelhouse-build-deps")
        self.lock = threading.Lock()
        self.build_deps_done: dict[tuple[str, ...], Future] = {}
        self.early_builds: dict[str, Future] = {}
        # Set when uv resolved the wheelhouse: uv then builds the sdists and fetches their build requirements.
        self.uv_path: str | None = None

    def close(self) -> None:
        """Wait for the build requirement downloads, and delete early builds that the plan did not use.

        Call it after the phase's build pool has shut down.
        """
        self.build_deps_pool.shutdown(wait=True, cancel_futures=True)
        for future in self.early_builds.values():
            if future.done() and future.exception() is None:
                future.result()[0].unlink(missing_ok=True)

    def watch_resolve(self, event: PipEvent) -> None:
        """Start an early build for each sdist that the resolving pip fetches."""
        # An early build runs on the host, so its wheel would fit the host's Python and not the container's.
        if self.container is not None:
            return
        if not isinstance(event, (Downloading, UsingCached)) or event.filename.endswith(".whl"):
            return
        try:
            name, version = parse_sdist_filename(event.filename)
        except InvalidSdistFilename:
            return
        with self.lock:
            if event.filename in self.early_builds or self.context.cancel.is_set():
                return
            first = not self.early_builds
            self.early_builds[event.filename] = self.builds.submit(
                self._early_build, str(name), str(version), event.filename
            )
        if first:
            # Most sdists build with setuptools, so its wheels are fetched now
            # and a later has_build_deps check finds them.
            self.build_deps_pool.submit(self.ensure_build_deps, LEGACY_BUILD_REQUIRES, "sdists")

    def _early_build(self, name: str, version: str, filename: str) -> tuple[Path, str, str | None]:
        """Build `name==version` from the index while pip is still resolving.

        pip's resolver runs on one core and prepares each sdist's metadata in
        turn, so building the sdists it meets on another core takes most of
        the build time off the phase. Returns the temporary wheel, its file
        name and the sdist file name that pip built it from.
        """
        label = f"{name} {version}"
        work_label = f"building {label} early"
        sources: list[str] = []

        def watch(line: str) -> None:
            event = self.pip_line(label, line)
            if isinstance(event, (Downloading, UsingCached)):
                sources.append(event.filename)

        with self.track(work_label):
            options = [*binary_options(self.config), *index_options(self.config)]
            requirement = f"{name}=={version}"
            temp, wheel_name, _ = build_wheel(
                requirement, self.output, self.context, label, build_deps=None, options=options, watch=watch
            )
            return temp, wheel_name, (sources[0] if sources else None)

    def take_early_build(self, artifact: Artifact) -> tuple[Path, str] | None:
        """Return the early build of `artifact` when it was built from the very file pip resolved."""
        with self.lock:
            future = self.early_builds.pop(artifact.filename, None)
        if future is None:
            return None
        try:
            temp, wheel_name, source = future.result()
        except WheelhouseError as error:
            self.emit("build", f"early build of {artifact.label} failed, building again: {error.message}", artifact.name)
            return None
        # NOTE: the sdist is matched by file name only. An index never serves two
        # files under one name (PyPI rejects a re-upload), and the sdist kept in
        # sdists/ is checked against pip's sha256.
        if source != artifact.filename:
            temp.unlink(missing_ok=True)
            return None
        return temp, wheel_name

    def build(self, artifact: Artifact) -> tuple[Path, str]:
        """Keep the sdist and its build requirements for offline builds, and build it; return the temporary wheel.

        With a container builder, the kept sdist is built inside it. Without one,
        the first of these is used: the early build made while pip resolved, then a
        build from the report's URL, then an offline build from the kept file. The
        URL build lets pip's wheel cache serve an sdist it built before.
        """
        sdists = self.output / SDIST_FOLDER
        sdists.mkdir(exist_ok=True)
        sdist = sdists / artifact.filename
        if not sdist.exists() or (artifact.sha256 and check_file(sdist, artifact.sha256)):
            download_url(artifact.url, sdist, sha256=artifact.sha256, context=self.context)
        keeping = self.build_deps_pool.submit(self.ensure_build_deps, build_requires(sdist), artifact.label)
        if self.container is not None:
            keeping.result()
            return self.container.build_wheel(
                sdist, self.output / BUILD_DEPS_FOLDER, self.output, artifact.label,
                timeout=max(1.0, self.context.remaining()), cancel=self.context.cancel,
            )

        if self.uv_path is not None:
            try:
                built = uv_build_wheel(self.uv_path, sdist, self.output, self.context, artifact.label)
            except WheelhouseError as error:
                self.emit("build", f"building {artifact.label} with uv failed, building with pip: {error.message}")
            else:
                keeping.result()
                return built

        early = self.take_early_build(artifact)
        if early is not None:
            keeping.result()
            return early

        build_deps = self.output / BUILD_DEPS_FOLDER
        # A named direct reference lets pip look the URL up in its wheel cache.
        url = f"{artifact.name} @ {artifact.url}" + (f"#sha256={artifact.sha256}" if artifact.sha256 else "")
        options = [*index_options(self.config), "--find-links", str(build_deps)]
        try:
            temp, filename, _ = build_wheel(url, self.output, self.context, artifact.label, build_deps=None, options=options)
        except WheelhouseError as error:
            self.emit("build", f"building {artifact.label} from its URL failed, building the kept sdist: {error.message}")
            keeping.result()
            temp, filename, offline = build_wheel(str(sdist), self.output, self.context, artifact.label, build_deps=build_deps)
            if not offline:
                self.emit("build", f"{artifact.label}: offline build failed, built with the index", artifact.name)
        keeping.result()
        return temp, filename

    def ensure_build_deps(self, requires: tuple[str, ...], label: str) -> Path:
        """Download the build requirements once per distinct set, shared by every sdist that needs it."""
        folder = self.output / BUILD_DEPS_FOLDER
        key = tuple(sorted(requires))
        with self.lock:
            future = self.build_deps_done.get(key)
            owner = future is None
            if owner:
                future = Future()
                self.build_deps_done[key] = future
        if owner:
            try:
                if not has_build_deps(requires, folder):
                    added = self._download_build_deps(requires, folder, f"build requirements of {label}")
                    self.emit("build", f"kept {len(added)} build requirement wheels for {', '.join(requires)}")
                future.set_result(folder)
            except BaseException as error:
                future.set_exception(error)
                raise
        return future.result()

    def _download_build_deps(self, requires: tuple[str, ...], folder: Path, label: str) -> list[str]:
        if self.uv_path is not None:
            return uv_download_build_deps(self.uv_path, requires, folder, self.context, label)
        return download_build_deps(requires, folder, self.context, label)
