"""Ensure a base image exists: use the local copy, pull it, or make it with mmdebstrap.

Making builds a minimal Debian root filesystem (`mmdebstrap --variant=apt`) with python3 and
python3-venv, then imports the tarball into the engine. Debian bookworm ships Python 3.11 and
trixie ships Python 3.13. The apt mirror comes from the host's apt sources, with the host's
release name replaced by the requested suite.
`python -m build_suite.baseimage NAME --suite bookworm [--package X]` runs it from the shell.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import docker
import docker.errors
import docker.utils

from build_suite.aptsources import debian_mirror_lines, read_host_sources
from build_suite.errors import BuildSuiteError, ImageBuildError

Progress = Callable[[str], None]

REQUIRED_PACKAGES = ("python3", "python3-venv")
DEFAULT_CMD = ("/bin/bash",)
# Seconds allowed for one mmdebstrap run. A bookworm or trixie run with python3 took about 35 s on a
# 2-core machine with a fast mirror. The margin covers slow mirrors, and a hung download still ends.
MAKE_TIMEOUT = 900.0
SUITE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


class BaseImageError(ImageBuildError):
    """A base image could be neither found, pulled nor made."""


@dataclass(frozen=True)
class BaseImageResult:
    """The outcome of ensuring a base image ("present", "pulled" or "made") and the seconds it took."""

    name: str
    outcome: str
    seconds: float
    image_id: str = ""


def ensure_base_image(
    client: docker.DockerClient,
    name: str,
    *,
    suite: str = "bookworm",
    packages: Sequence[str] = (),
    pull: bool = True,
    make: bool = True,
    progress: Progress | None = None,
    mirror_lines: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    make_timeout: float = MAKE_TIMEOUT,
) -> BaseImageResult:
    """Return how `name` became available: present locally, pulled, or made with mmdebstrap.

    Raises BaseImageError naming the image when every allowed way failed.
    """
    report = progress or _ignore
    started = time.monotonic()

    image = find_local_image(client, name)
    if image is not None:
        return BaseImageResult(name, "present", time.monotonic() - started, image.id)

    pull_failure = ""
    if pull:
        report(f"{name}: not present locally, pulling")
        try:
            image = pull_image(client, name, report)
        except BaseImageError as error:
            pull_failure = error.message
            report(f"{name}: pull failed: {error.message}")
        else:
            return BaseImageResult(name, "pulled", time.monotonic() - started, image.id)

    if not make:
        reason = pull_failure or "pulling is disabled"
        raise BaseImageError(
            f"base image {name} is not present and could not be pulled: {reason}",
            f"build or load {name} into the engine, or allow making it with mmdebstrap (make = true)",
        )

    report(f"{name}: making it with mmdebstrap (suite {suite})")
    image = make_base_image(
        client, name, suite=suite, packages=packages, progress=report, mirror_lines=mirror_lines,
        labels=labels, workdir=workdir, timeout=make_timeout,
    )
    return BaseImageResult(name, "made", time.monotonic() - started, image.id)


def find_local_image(client: docker.DockerClient, name: str):
    """Return the local image called `name`, or None when the engine has no such image."""
    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


def pull_image(client: docker.DockerClient, name: str, progress: Progress):
    """Pull `name`, reporting each layer's status change, and return the image."""
    repository, tag = docker.utils.parse_repository_tag(name)
    last_line_by_layer: dict[str, str] = {}
    try:
        for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise BaseImageError(f"pulling {name} failed: {event['error']}")
            line = format_pull_event(name, event)
            layer = str(event.get("id", ""))
            if line is not None and last_line_by_layer.get(layer) != line:
                last_line_by_layer[layer] = line
                progress(line)
        return client.images.get(name)
    except docker.errors.APIError as error:
        raise BaseImageError(f"pulling {name} failed: {error.explanation or error}") from error
    except docker.errors.ImageNotFound as error:
        raise BaseImageError(f"pulling {name} finished but the engine has no such image") from error


def format_pull_event(name: str, event: Mapping) -> str | None:
    """Build one progress line from a pull event, or None for events without a status."""
    status = str(event.get("status", "")).strip()
    if not status:
        return None
    layer = str(event.get("id", "")).strip()
    return f"{name}: {layer + ' ' if layer else ''}{status}"


def make_base_image(
    client: docker.DockerClient,
    name: str,
    *,
    suite: str,
    packages: Sequence[str] = (),
    progress: Progress | None = None,
    mirror_lines: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    timeout: float = MAKE_TIMEOUT,
):
    """Build a Debian root filesystem for `suite` with mmdebstrap, import it as `name` and return the image."""
    report = progress or _ignore
    check_suite_name(name, suite)
    all_packages = package_list(packages)
    if mirror_lines is None:
        mirror_lines = debian_mirror_lines(suite, read_host_sources())
    if not mirror_lines:
        raise BaseImageError(
            f"cannot make base image {name}: no Debian apt source found on this host to derive a {suite} mirror from",
            "pass the apt source lines explicitly (--mirror 'deb URI SUITE main')",
        )
    if shutil.which("mmdebstrap") is None:
        raise BaseImageError(
            f"cannot make base image {name}: mmdebstrap is not installed",
            "run scripts/setup, or apt-get install mmdebstrap",
        )

    with tempfile.TemporaryDirectory(prefix="build-suite-rootfs-", dir=workdir) as folder:
        tarball = Path(folder) / "rootfs.tar"
        command = mmdebstrap_command(suite, all_packages, tarball, mirror_lines)
        run_streaming(command, report, timeout, name=name, suite=suite)
        report(f"{name}: importing the root filesystem ({tarball.stat().st_size // 2**20} MiB)")
        return import_rootfs(client, tarball, name, labels=labels)


def check_suite_name(name: str, suite: str) -> None:
    # The suite goes into apt source lines, so anything but a plain release name is rejected early.
    if not SUITE_NAME.match(suite):
        raise BaseImageError(
            f"cannot make base image {name}: invalid Debian suite {suite!r}",
            "use a release name such as bookworm or trixie",
        )


def package_list(packages: Iterable[str]) -> tuple[str, ...]:
    """Return python3 and python3-venv followed by the extra packages, without duplicates."""
    names = list(dict.fromkeys([*REQUIRED_PACKAGES, *packages]))
    for package in names:
        if not PACKAGE_NAME.match(package):
            raise BaseImageError(f"invalid Debian package name {package!r}", "use names as apt-get install takes them")
    return tuple(names)


def mmdebstrap_command(suite: str, packages: Sequence[str], output: Path, mirror_lines: Sequence[str]) -> list[str]:
    """Return the mmdebstrap argument list that writes a tarball of `suite` to `output`."""
    return [
        "mmdebstrap",
        "--variant=apt",
        f"--include={','.join(packages)}",
        "--format=tar",
        suite,
        str(output),
        *mirror_lines,
    ]


def run_streaming(command: Sequence[str], progress: Progress, timeout: float, *, name: str, suite: str) -> None:
    """Run `command` and pass each output line to `progress`. Raise BaseImageError when it fails."""
    tail: list[str] = []
    timed_out = threading.Event()
    # stdin is closed because mmdebstrap reads apt sources from a non-terminal stdin.
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", bufsize=1,
    )

    def stop_on_timeout() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, stop_on_timeout)
    timer.start()
    try:
        assert process.stdout is not None
        for raw_line in process.stdout:
            line = raw_line.rstrip()
            if line:
                progress(f"{name}: {line}")
                tail = (tail + [line])[-8:]
        returncode = process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()

    if returncode == 0:
        return
    if timed_out.is_set():
        raise BaseImageError(
            f"making base image {name}: mmdebstrap for suite {suite} timed out after {timeout:g} s",
            "check that apt can reach the mirror, or raise the timeout",
        )
    raise BaseImageError(
        f"making base image {name}: mmdebstrap for suite {suite} failed with exit code {returncode}:\n"
        + "\n".join(f"  {line}" for line in tail),
        f"check that {suite} is a Debian suite the mirror carries and that apt can reach the mirror",
    )


def import_rootfs(
    client: docker.DockerClient,
    tarball: Path,
    name: str,
    *,
    cmd: Sequence[str] = DEFAULT_CMD,
    labels: Mapping[str, str] | None = None,
):
    """Import a root filesystem tarball as image `name`, with CMD set, and return the image."""
    changes = [f"CMD {_json_list(cmd)}", "ENV LANG=C.UTF-8"]
    for key, value in (labels or {}).items():
        changes.append(f'LABEL "{key}"="{value}"')
    try:
        # The Docker API accepts the tag inside `repo`. Podman 4.3 ignores a separate `tag` and
        # would name the image ":latest", so the whole name goes into `repository`.
        response = client.api.import_image(src=str(tarball), repository=name, changes=changes)
        image = find_local_image(client, name)
        if image is None:
            image = _tag_imported(client, name, response)
        return image
    except docker.errors.APIError as error:
        raise BaseImageError(
            f"importing the root filesystem as {name} failed: {error.explanation or error}",
            "check the engine's log and free disk space",
        ) from error


def _tag_imported(client: docker.DockerClient, name: str, response: object):
    image_id = imported_image_id(response)
    if not image_id:
        raise BaseImageError(
            f"importing {name} returned no image id and the engine has no image of that name: {response!r:.300}",
            "check the engine's log",
        )
    repository, tag = docker.utils.parse_repository_tag(name)
    client.api.tag(image_id, repository, tag or "latest")
    return client.images.get(name)


def imported_image_id(response: object) -> str:
    """Return the image id from an import response (JSON lines with "status" or "id"), or ""."""
    text = response.decode(errors="replace") if isinstance(response, bytes) else str(response)
    image_id = ""
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        for key in ("id", "status"):
            value = str(event.get(key, ""))
            if value.startswith("sha256:"):
                image_id = value
    return image_id


def _json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items))


def _ignore(_line: str) -> None:
    pass


def _print_line(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from build_suite.engine import connect_engine

    parser = argparse.ArgumentParser(
        prog="python -m build_suite.baseimage",
        description="Ensure base images exist: found locally, pulled, or made with mmdebstrap.",
    )
    parser.add_argument("name", nargs="?", help="image name, for example localhost/build-suite/python:3.11-bookworm")
    parser.add_argument("--suite", default="bookworm", help="Debian suite to make the image from (default %(default)s)")
    parser.add_argument("--package", action="append", default=[], help="extra Debian package to install (can be repeated)")
    parser.add_argument("--config", type=Path, help="ensure every [[base_images]] entry of this buildsuite.toml")
    parser.add_argument("--no-pull", action="store_true", help="do not try to pull a missing image")
    parser.add_argument("--no-make", action="store_true", help="do not make a missing image with mmdebstrap")
    parser.add_argument("--mirror", action="append", help="apt source line for mmdebstrap, such as 'deb URI SUITE main' (can be repeated)")
    args = parser.parse_args(argv)

    try:
        recipes = _requested_recipes(args)
        connection = connect_engine()
    except BuildSuiteError as error:
        # ConfigError exits with 4 (a usage error), the others with 1.
        print(error, file=sys.stderr)
        return error.exit_code

    try:
        for name, suite, packages, make in recipes:
            try:
                result = ensure_base_image(
                    connection.client, name, suite=suite, packages=packages, pull=not args.no_pull,
                    make=make and not args.no_make, progress=_print_line, mirror_lines=args.mirror,
                )
            except BaseImageError as error:
                print(error, file=sys.stderr)
                return 1
            print(describe_result(result), flush=True)
    finally:
        connection.close()
    return 0


def describe_result(result: BaseImageResult) -> str:
    """Build the line that reports how a base image became available."""
    return f"{result.name}: {result.outcome} in {result.seconds:.1f} s"


def _requested_recipes(args: argparse.Namespace) -> list[tuple[str, str, tuple[str, ...], bool]]:
    if args.config is not None:
        from build_suite.config import load_config

        config = load_config(args.config)
        return [(r.name, r.suite, tuple(r.packages), r.make) for r in config.base_images]
    if not args.name:
        raise BaseImageError("no image name given", "pass NAME or --config PATH")
    return [(args.name, args.suite, tuple(args.package), True)]


if __name__ == "__main__":
    sys.exit(main())
