"""Checks of the build environment: tools, engine, host Python against the target, disk, memory, base images.

Each check returns a Check with a verdict, the facts it found and, when it
fails, what to do. The environment phase turns each Check into one test, so
every check shows in the reports on its own.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from build_suite.config import BuildConfig
from build_suite.errors import BuildSuiteError
from build_suite.output import Output

GIB = 1024 ** 3


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    warning: str = ""

    def message(self) -> str:
        text = f"{self.name}: {self.detail}"
        if self.hint:
            text += f"\n  what to do: {self.hint}"
        return text


def check_config(config: BuildConfig) -> Check:
    services = ", ".join(service.name for service in config.services)
    detail = (f"{config.path} is valid: project {config.project.name} {config.project.version}, "
              f"{len(config.services)} services ({services}), "
              f"{len(config.wheelhouse.requirements)} requirements files")
    return Check("configuration", True, detail, facts={"path": str(config.path), "sha256": config.digest})


def required_tools(config: BuildConfig) -> list[str]:
    """List the programs this configuration needs on PATH."""
    tools = ["git"] + list(config.environment.tools)
    if any(recipe.make for recipe in config.base_images):
        tools.append("mmdebstrap")
    if config.security.hadolint:
        tools.append("hadolint")
    if config.docs.builder != "none":
        tools.append(config.docs.builder if config.docs.builder == "mkdocs" else "sphinx-build")
    return list(dict.fromkeys(tools))


def tool_search_path() -> str:
    """PATH plus the folder of the running interpreter, where a virtual environment keeps its tools."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def check_tools(config: BuildConfig) -> Check:
    search = tool_search_path()
    found = {tool: shutil.which(tool, path=search) for tool in required_tools(config)}
    missing = [tool for tool, location in found.items() if location is None]
    if missing:
        return Check("tools", False, f"missing on PATH: {', '.join(missing)}",
                     "install them (scripts/setup installs everything the demo stack needs), "
                     "or turn off the feature that needs them in buildsuite.toml",
                     facts={"tools": found})
    return Check("tools", True, f"found {', '.join(found)}", facts={"tools": found})


def host_python_facts() -> dict[str, str]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation().lower(),
        "machine": platform.machine(),
        "libc": " ".join(platform.libc_ver()),
    }


def check_python(config: BuildConfig) -> Check:
    host = host_python_facts()
    target = config.target
    host_short = ".".join(host["version"].split(".")[:2])
    target_short = ".".join(target.python.split(".")[:2])
    facts = {"host": host, "target": f"{target.implementation} {target.python} {target.platform} "
                                      f"glibc {target.glibc} {target.arch}"}
    same = (host_short == target_short and host["implementation"] == target.implementation
            and host["machine"] == target.arch)
    if same:
        detail = f"host Python {host['version']} matches the target {facts['target']}"
        return Check("python", True, detail, facts=facts)
    detail = (f"host Python {host['version']} ({host['implementation']}, {host['machine']}) differs from the "
              f"target {facts['target']}: the wheelhouse is built for the target, not the host. Binary wheels "
              f"are fetched for the target's tags, source distributions are built in a builder container from "
              f"the target's base image, and the host cannot import the wheels it collects")
    return Check("python", True, detail, facts=facts, warning="host and target Python differ")


def check_disk(config: BuildConfig) -> Check:
    folder = config.wheelhouse.output
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    needed = config.environment.min_disk_gb * GIB
    facts = {"folder": str(folder), "free_bytes": free, "required_bytes": int(needed)}
    detail = f"{format_bytes(free)} free at {folder}, {config.environment.min_disk_gb:g} GiB required"
    if free < needed:
        return Check("disk", False, detail, "free space there or lower [environment] min_disk_gb", facts)
    return Check("disk", True, detail, facts=facts)


def format_bytes(size: float) -> str:
    """Format a size as GiB from 1 GiB up, else as MB, so a nearly full disk still shows a number."""
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / 1e6:.1f} MB"


def check_memory(config: BuildConfig) -> Check:
    available = psutil.virtual_memory().available
    needed = config.environment.min_memory_gb * GIB
    facts = {"available_bytes": available, "required_bytes": int(needed)}
    detail = f"{available / GIB:.1f} GiB available, {config.environment.min_memory_gb:g} GiB required"
    if available < needed:
        return Check("memory", False, detail, "stop other work or lower [environment] min_memory_gb", facts)
    return Check("memory", True, detail, facts=facts)


def check_base_images(config: BuildConfig, client: Any) -> Check:
    """Check that every service's base image is in the engine's local store."""
    present, missing = [], []
    for name in config.base_image_names():
        try:
            client.images.get(name)
            present.append(name)
        except Exception:  # docker.errors.ImageNotFound, or an API error for a malformed name
            missing.append(name)
    facts = {"present": present, "missing": missing}
    if missing:
        makeable = [name for name in missing if (config.recipe_for(name) and config.recipe_for(name).make)]
        hint = ("run scripts/setup, which makes them with mmdebstrap" if makeable
                else "pull or build them, or add a [[base_images]] recipe so the harness can make them")
        return Check("base images", False, f"missing: {', '.join(missing)}", hint, facts)
    return Check("base images", True, f"present: {', '.join(present) or 'none needed'}", facts=facts)


def check_engine(connect: Callable[[], Any]) -> Check:
    """Connect to the container engine and report its kind, version and API version."""
    try:
        connection = connect()
    except BuildSuiteError as error:
        return Check("engine", False, error.message, error.hint, facts={"reachable": False})
    facts = {"reachable": True, "kind": connection.kind, "version": connection.version,
             "api_version": connection.api_version, "url": connection.url, "source": connection.source}
    detail = (f"{connection.kind} {connection.version} (API {connection.api_version}) "
              f"at {connection.url}, found through {connection.source}")
    return Check("engine", True, detail, facts=facts)


def run_checks(config: BuildConfig, connect: Callable[[], Any], output: Output) -> dict[str, Check]:
    """Run every environment check in order, showing each result as it comes."""
    checks: dict[str, Check] = {}
    steps: list[tuple[str, Callable[[], Check]]] = [
        ("configuration", lambda: check_config(config)),
        ("tools", lambda: check_tools(config)),
        ("engine", lambda: check_engine(connect)),
        ("python", lambda: check_python(config)),
        ("disk", lambda: check_disk(config)),
        ("memory", lambda: check_memory(config)),
        ("base images", lambda: base_images_step(config, checks, connect)),
    ]
    for name, step in steps:
        output.status(f"environment: checking {name}")
        check = step()
        checks[name] = check
        verdict = "ok" if check.ok else "FAILED"
        output.line(f"environment: {name}: {verdict}: {check.detail}")
    return checks


def base_images_step(config: BuildConfig, checks: dict[str, Check], connect: Callable[[], Any]) -> Check:
    if not checks["engine"].ok:
        return Check("base images", False, "not checked because the container engine is unreachable",
                     checks["engine"].hint, facts={"present": [], "missing": list(config.base_image_names())})
    return check_base_images(config, connect().client)
