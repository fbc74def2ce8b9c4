"""Cross-target wheelhouse builds: pip options for the target and a builder container of the target's base image.

When the target Python differs from the host's, the wheelhouse phase
resolves on the host, because a container may have no route to the package
index. pip gets the target's options (`--python-version`, `--implementation`,
`--abi`, `--platform`, `--only-binary :all:`) and the target's marker values
(targetpip.py). Source distributions are built inside a container of
the target's base image with the network off, as cibuildwheel does, from
the kept sdist and the build requirement wheels in `build-deps/`. A last
offline dry run of the target's own pip inside that container checks that the
wheelhouse resolves for the image exactly as planned.

Every container carries the caller's labels and is removed when its run ends,
also on errors and timeouts.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
from packaging.utils import canonicalize_name, canonicalize_version

from build_suite.errors import WheelhouseError
from build_suite.manifest import make_temp_file
from build_suite.target import ARCHITECTURE_ALIASES, TargetSpec, marker_environment, platform_tags
from build_suite.targetpip import MARKER_VARIABLE

TARGET_PIP_SCRIPT = Path(__file__).with_name("targetpip.py")
# Source of wheels that were built inside the builder container, as the manifest records it.
CONTAINER_BUILT = "built in container"
# Paths inside the builder container.
SDIST_MOUNT = "/sdists"
BUILD_DEPS_MOUNT = "/build-deps"
OUTPUT_MOUNT = "/out"
WHEELHOUSE_MOUNT = "/wheelhouse"
REQUIREMENTS_MOUNT = "/requirements"
# Seconds between two status checks of a running container.
POLL_INTERVAL = 0.5
# The image's pip must neither prompt nor look for its own upgrade, and no
# pip configuration of the image may add package sources.
CONTAINER_PIP_ENV = {
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_CONFIG_FILE": "/dev/null",
    "PYTHONUNBUFFERED": "1",
}


def target_spec(target: object) -> TargetSpec:
    """Return the TargetSpec of a config Target (or of a TargetSpec, unchanged)."""
    if isinstance(target, TargetSpec):
        return target
    return TargetSpec(
        python=str(getattr(target, "python", "3.11")),
        implementation=str(getattr(target, "implementation", "cpython")),
        platform=str(getattr(target, "platform", "linux")),
        libc=str(getattr(target, "libc", "glibc")),
        glibc=str(getattr(target, "glibc", "2.36")),
        arch=str(getattr(target, "arch", "x86_64")),
        portable=bool(getattr(target, "portable", False)),
    )


def host_architecture() -> str:
    machine = platform.machine()
    return ARCHITECTURE_ALIASES.get(machine.lower(), machine)


def is_cross_target(target: object) -> bool:
    """Tell whether the target's Python differs from the running interpreter's, to the precision given.

    Raises WheelhouseError for a target architecture other than the host's,
    because building sdists for it would need an emulator in the engine.
    """
    spec = target_spec(target)
    if spec.normalized_arch != host_architecture():
        raise WheelhouseError(
            f"the target architecture {spec.normalized_arch} differs from the host's {host_architecture()}",
            "build the wheelhouse on a host of the target architecture; cross-architecture builds are not supported",
        )
    parts = tuple(int(part) for part in spec.python.split("."))
    # A target that names a patch release (3.11.2, as in Debian bookworm) differs from a host 3.11.7 too:
    # Requires-Python and python_full_version markers can pick other packages for it.
    return parts != sys.version_info[:len(parts)]


def target_pip_command() -> tuple[str, ...]:
    """Return the command that runs the host's pip with the target's marker values (see targetpip.py)."""
    return (sys.executable, str(TARGET_PIP_SCRIPT))


def target_pip_env(target: object) -> dict[str, str]:
    """Return the variables that give targetpip.py the target's PEP 508 marker values."""
    return {MARKER_VARIABLE: json.dumps(marker_environment(target_spec(target)), sort_keys=True)}


def target_options(target: object) -> list[str]:
    """Return pip's options that choose binary wheels for the target interpreter and platform.

    pip accepts these options only together with `--only-binary :all:` (or
    --no-deps), and `pip install` also wants `--target`, which the caller adds.
    """
    spec = target_spec(target)
    # The full version, when given: pip reads "3.11" as 3.11.0 for Requires-Python.
    options = ["--python-version", spec.python, "--implementation", "cp", "--abi", spec.abi]
    if not spec.free_threaded:
        options += ["--abi", "abi3"]
    options += ["--abi", "none"]
    # linux_<arch> tags accept the wheels that the builder container made.
    for tag in platform_tags(spec, include_local=not spec.portable):
        options += ["--platform", tag]
    options += ["--only-binary", ":all:"]
    return options


def builder_image_name(base_images: Sequence[str]) -> str:
    """Return the one base image that the services share, which builds the sdists.

    Raises WheelhouseError when the services have no base image or several,
    because one wheelhouse can only match one Python of one image.
    """
    names = list(dict.fromkeys(name for name in base_images if name))
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise WheelhouseError(
            f"a cross-target wheelhouse needs exactly one base image for the builder container, found: {found}",
            "give every service the same base_image, or set [target] python to the host's Python",
        )
    return names[0]


def check_image_resolution(
    image: str, planned: Iterable[tuple[str, str]], installed: Iterable[tuple[str, str]]
) -> None:
    """Raise WheelhouseError unless the image's pip installs exactly the planned (name, version) pairs."""
    def by_key(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        return {(canonicalize_name(name), canonicalize_version(version)): f"{name} {version}" for name, version in pairs}

    expected = by_key(planned)
    found = by_key(installed)
    if found.keys() == expected.keys():
        return
    extra = ", ".join(sorted(found[key] for key in found.keys() - expected.keys())) or "none"
    missing = ", ".join(sorted(expected[key] for key in expected.keys() - found.keys())) or "none"
    raise WheelhouseError(
        f"the pip of {image} resolves a different set from the wheelhouse than the host planned for the target: "
        f"only in the image's resolution: {extra}; only in the plan: {missing}",
        "check the environment markers in the requirements, and that [target] python matches the image's Python",
    )


@dataclass(frozen=True)
class ContainerRun:
    """The outcome of one builder container run: exit status, output lines and seconds."""

    exit_code: int | None
    lines: tuple[str, ...]
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def tail(self, count: int = 15) -> str:
        return "\n".join(self.lines[-count:])


@dataclass
class ContainerBuilder:
    """Runs build steps in throwaway containers of `image`, with the network off.

    `labels` go on every container (for example build-suite.project=<name>),
    and `on_line(label, line)` receives the containers' output lines.
    """

    client: docker.DockerClient
    image: str
    labels: Mapping[str, str] = field(default_factory=dict)
    on_line: Callable[[str, str], None] = lambda label, line: None

    def run(
        self,
        label: str,
        script: str,
        volumes: Mapping[str, Mapping[str, str]],
        *,
        timeout: float,
        cancel: threading.Event | None = None,
    ) -> ContainerRun:
        """Run `script` with sh in a new container; the container is removed before this returns.

        Raises WheelhouseError when the engine rejects the container, and
        stops the container when `timeout` passes or `cancel` is set.
        """
        started = time.monotonic()
        name = f"build-suite-builder-{uuid.uuid4().hex[:12]}"
        lines: list[str] = []
        container = None
        try:
            container = self.client.containers.run(
                self.image, ["sh", "-c", script], name=name, detach=True, network_mode="none",
                volumes={host: dict(spec) for host, spec in volumes.items()}, labels=dict(self.labels),
                environment=CONTAINER_PIP_ENV, working_dir="/tmp",
            )
            reader = threading.Thread(target=self._read_logs, args=(container, label, lines), daemon=True)
            reader.start()
            timed_out = self._wait(container, started + timeout, cancel)
            reader.join(timeout=5)
            exit_code = None if timed_out else int(container.wait().get("StatusCode", -1))
            return ContainerRun(exit_code, tuple(lines), time.monotonic() - started, timed_out)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise WheelhouseError(
                f"the builder container of {self.image} for {label} failed: {error}",
                "check that the engine is running and the image exists",
            ) from error
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except (docker.errors.DockerException, requests.exceptions.RequestException):
                    # NOTE: a container that the engine could not remove keeps its labels, so it can be found later.
                    pass

    def _read_logs(self, container, label: str, lines: list[str]) -> None:
        pending = b""
        try:
            for chunk in container.logs(stream=True, follow=True):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", errors="replace").rstrip("\r")
                    lines.append(line)
                    self.on_line(label, line)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return
        if pending:
            line = pending.decode("utf-8", errors="replace")
            lines.append(line)
            self.on_line(label, line)

    @staticmethod
    def _wait(container, deadline: float, cancel: threading.Event | None) -> bool:
        """Wait until the container exits; return True when it was stopped for the deadline or `cancel`."""
        while True:
            container.reload()
            if container.status in ("exited", "stopped", "dead"):
                return False
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                container.kill()
                return True
            time.sleep(POLL_INTERVAL)

    def python_version(self, timeout: float = 120) -> str:
        """Return the full version of the image's python3, such as 3.13.5."""
        script = 'python3 -c "import platform; print(platform.python_version())"'
        run = self.run("python version", script, {}, timeout=timeout)
        if not run.ok or not run.lines:
            raise WheelhouseError(
                f"cannot run python3 in {self.image}: exit code {run.exit_code}\n{run.tail()}",
                "the builder image needs python3 and python3-venv",
            )
        return run.lines[-1].strip()

    def check_python(self, target: object, timeout: float = 120) -> str:
        """Raise WheelhouseError unless the image's python3 has the target's MAJOR.MINOR; return its version."""
        spec = target_spec(target)
        version = self.python_version(timeout)
        if tuple(int(part) for part in version.split(".")[:2]) != spec.python_version:
            raise WheelhouseError(
                f"the builder image {self.image} has Python {version}, but [target] python is {spec.python}",
                f'set [target] python = "{version}", or use a base image with Python {spec.python}',
            )
        return version

    def build_wheel(
        self,
        sdist: Path,
        build_deps: Path,
        folder: Path,
        label: str,
        *,
        timeout: float,
        cancel: threading.Event | None = None,
    ) -> tuple[Path, str]:
        """Build `sdist` into a wheel inside the container, offline, with build requirements from `build_deps`.

        The wheel is written to a temporary folder inside `folder` and moved to a
        temporary name there. Returns that path and the wheel's file name; the
        caller moves it into place.
        """
        work = Path(tempfile.mkdtemp(prefix=".tmp-container-", dir=folder))
        try:
            build_deps.mkdir(parents=True, exist_ok=True)
            script = (
                # --use-pep517: an older pip (23.0 in bookworm) would otherwise run the legacy
                # `setup.py bdist_wheel`, which fails where the venv has no `wheel` package.
                "set -e; python3 -m venv /tmp/b && /tmp/b/bin/pip wheel --use-pep517 --no-deps --no-index "
                f"--find-links {BUILD_DEPS_MOUNT} {SDIST_MOUNT}/{shlex.quote(sdist.name)} -w {OUTPUT_MOUNT}"
            )
            volumes = {
                str(sdist.parent.resolve()): {"bind": SDIST_MOUNT, "mode": "ro"},
                str(build_deps.resolve()): {"bind": BUILD_DEPS_MOUNT, "mode": "ro"},
                str(work.resolve()): {"bind": OUTPUT_MOUNT, "mode": "rw"},
            }
            run = self.run(f"building {label} in {self.image}", script, volumes, timeout=timeout, cancel=cancel)
            if not run.ok:
                reason = "timed out" if run.timed_out else f"failed with exit code {run.exit_code}"
                raise WheelhouseError(
                    f"building {label} in the builder container {self.image} {reason} after {run.seconds:.0f} s; "
                    f"last output:\n{run.tail()}",
                    "the build runs offline: check that build-deps/ has every build requirement of the sdist",
                )
            wheels = sorted(work.glob("*.whl"))
            if len(wheels) != 1:
                raise WheelhouseError(f"building {label} in the builder container made {len(wheels)} wheels, expected 1")
            name = make_temp_file(folder, f".tmp-{wheels[0].name}.")
            # Copy, then rename: the wheel appears in `folder` complete or not at all.
            shutil.copyfile(wheels[0], name)
            return Path(name), wheels[0].name
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def resolve_offline(
        self,
        wheelhouse: Path,
        requirements: Sequence[Path],
        constraints: Sequence[Path] = (),
        *,
        timeout: float,
    ) -> set[tuple[str, str]]:
        """Return the (name, version) pairs that the image's own pip installs from `wheelhouse` alone.

        pip runs inside the container with the network off, so markers and
        tags are the target's. Raises WheelhouseError when pip cannot resolve.
        """
        files = [Path(p).resolve() for p in (*requirements, *constraints)]
        if not files:
            return set()
        root = Path(os.path.commonpath([str(p.parent) for p in files]))
        options = [f"-r {REQUIREMENTS_MOUNT}/{shlex.quote(p.relative_to(root).as_posix())}" for p in files[: len(requirements)]]
        options += [f"-c {REQUIREMENTS_MOUNT}/{shlex.quote(p.relative_to(root).as_posix())}" for p in files[len(requirements):]]
        script = (
            "set -e; python3 -m venv /tmp/v && /tmp/v/bin/pip install --dry-run --ignore-installed --quiet "
            f"--no-index --find-links {WHEELHOUSE_MOUNT} --only-binary :all: --report {OUTPUT_MOUNT}/report.json "
            + " ".join(options)
        )
        work = Path(tempfile.mkdtemp(prefix="build-suite-check-"))
        try:
            volumes = {
                str(Path(wheelhouse).resolve()): {"bind": WHEELHOUSE_MOUNT, "mode": "ro"},
                str(root): {"bind": REQUIREMENTS_MOUNT, "mode": "ro"},
                str(work): {"bind": OUTPUT_MOUNT, "mode": "rw"},
            }
            run = self.run(f"checking the wheelhouse in {self.image}", script, volumes, timeout=timeout)
            report = work / "report.json"
            if not run.ok or not report.is_file():
                raise WheelhouseError(
                    f"the image's pip cannot install the requirements from the wheelhouse offline "
                    f"(exit code {run.exit_code}); last output:\n{run.tail()}",
                    "the wheelhouse lacks a wheel that the target needs: read pip's output above",
                )
            data = json.loads(report.read_text(encoding="utf-8"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return {
            (canonicalize_name(item["metadata"]["name"]), str(item["metadata"]["version"]))
            for item in data.get("install", [])
        }
