"""Load and check buildsuite.toml, the file that describes one build.

Every key is checked when the file is loaded. Each of these raises ConfigError
naming the file, the key and what was expected: an unknown key, a wrong type, a
missing file or folder, a duplicate service, a dependency on an unknown service
and a dependency cycle. Relative paths resolve against the folder of the configuration file.
The schema is documented in docs/configuration.md.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from build_suite.configreader import TableReader
from build_suite.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "demo-stack" / "buildsuite.toml"

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
PYTHON_VERSION = re.compile(r"^3\.\d{1,2}(\.\d{1,3})?$")
GLIBC_VERSION = re.compile(r"^2\.\d{1,3}$")


@dataclass(frozen=True)
class Project:
    name: str
    version: str


@dataclass(frozen=True)
class Target:
    python: str = "3.11"
    implementation: str = "cpython"
    platform: str = "linux"
    libc: str = "glibc"
    glibc: str = "2.36"
    arch: str = "x86_64"
    portable: bool = False


@dataclass(frozen=True)
class WheelhouseConfig:
    requirements: tuple[Path, ...]
    constraints: tuple[Path, ...] = ()
    output: Path = Path("wheelhouse")
    timeout: float = 600.0
    stall_timeout: float = 120.0
    heartbeat: float = 3.0
    isolate_pip_config: bool = True
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_binary: tuple[str, ...] = ()
    only_binary: tuple[str, ...] = ()
    require_hashes: bool = False
    jobs: int = 4
    resolver: str = "pip"


@dataclass(frozen=True)
class BaseImageRecipe:
    """How to make a base image with mmdebstrap when it can be neither found nor pulled."""

    name: str
    suite: str = "bookworm"
    packages: tuple[str, ...] = ("python3", "python3-venv")
    make: bool = True


@dataclass(frozen=True)
class Probe:
    kind: str = "http"
    port: int | None = None
    path: str = "/"
    expect_status: int = 200
    command: tuple[str, ...] | None = None
    timeout: float = 60.0
    interval: float = 1.0
    healthy_in_a_row: int = 3


@dataclass(frozen=True)
class Service:
    name: str
    dockerfile: Path
    context: Path
    tag: str
    base_image: str | None = None
    target_stage: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    ports: dict[int, int] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    probe: Probe = field(default_factory=Probe)


@dataclass(frozen=True)
class EnvironmentConfig:
    min_disk_gb: float = 2.0
    min_memory_gb: float = 1.0
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class IntegrationConfig:
    tests: Path | None = None
    timeout: float = 300.0


@dataclass(frozen=True)
class BenchmarkConfig:
    probe_requests: int = 20
    commands: tuple[tuple[str, ...], ...] = ()
    warn_ratio: float = 1.25
    fail_ratio: float = 1.5
    on_regression: str = "warn"


@dataclass(frozen=True)
class SecurityConfig:
    secrets: bool = True
    baseline: Path | None = None
    osv_database: Path | None = None
    osv_snapshot_date: str | None = None
    osv_online: bool = False
    osv_api_url: str | None = None
    osv_missing: str = "skip"
    osv_unknown_severity: str = "high"
    severity_threshold: str = "high"
    hadolint: bool = True
    hadolint_failure_level: str = "error"
    hadolint_ignore: tuple[str, ...] = ()
    hadolint_config: Path | None = None
    image_allowed_names: tuple[str, ...] = ("GPG_KEY",)


@dataclass(frozen=True)
class DocsConfig:
    builder: str = "none"
    source: Path | None = None
    output: Path | None = None


@dataclass(frozen=True)
class BuildConfig:
    path: Path
    root: Path
    digest: str
    project: Project
    target: Target
    wheelhouse: WheelhouseConfig
    base_images: tuple[BaseImageRecipe, ...]
    services: tuple[Service, ...]
    environment: EnvironmentConfig
    integration: IntegrationConfig
    benchmark: BenchmarkConfig
    security: SecurityConfig
    docs: DocsConfig

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def base_image_names(self) -> tuple[str, ...]:
        names = [service.base_image for service in self.services if service.base_image]
        return tuple(dict.fromkeys(names))

    def recipe_for(self, image: str) -> BaseImageRecipe | None:
        for recipe in self.base_images:
            if recipe.name == image:
                return recipe
        return None


def load_config(path: Path | str) -> BuildConfig:
    """Read, check and return the build configuration at `path`."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(path, "", "configuration file not found",
                          "pass an existing file with --build-config PATH")
    raw_bytes = path.read_bytes()
    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"invalid TOML: {exc}", "fix the syntax at the line shown") from None

    top = TableReader(data, path, path.parent, "")
    project = _read_project(top.table("project", required=True))
    target = _read_target(top.table("target"))
    wheelhouse = _read_wheelhouse(top.table("wheelhouse", required=True))
    base_images = tuple(_read_base_image(t) for t in top.tables("base_images"))
    environment = _read_environment(top.table("environment"))
    services = _read_services(top.tables("services", required=True), project, base_images)
    integration = _read_integration(top.table("integration"))
    benchmark = _read_benchmark(top.table("benchmark"))
    security = _read_security(top.table("security"))
    docs = _read_docs(top.table("docs"))
    top.finish()

    return BuildConfig(
        path=path,
        root=path.parent,
        digest=hashlib.sha256(raw_bytes).hexdigest(),
        project=project,
        target=target,
        wheelhouse=wheelhouse,
        base_images=base_images,
        services=services,
        environment=environment,
        integration=integration,
        benchmark=benchmark,
        security=security,
        docs=docs,
    )


def _read_project(table: TableReader) -> Project:
    project = Project(name=table.string("name", required=True), version=table.string("version", required=True))
    table.finish()
    return project


def _read_target(table: TableReader) -> Target:
    default = Target()
    target = Target(
        python=table.string("python", default.python, pattern=PYTHON_VERSION, expected='a version such as "3.11" or "3.11.2"'),
        implementation=table.choice("implementation", ("cpython", "pypy"), default.implementation),
        platform=table.choice("platform", ("linux",), default.platform),
        libc=table.choice("libc", ("glibc",), default.libc),
        glibc=table.string("glibc", default.glibc, pattern=GLIBC_VERSION, expected='a version such as "2.36"'),
        arch=table.choice("arch", ("x86_64", "aarch64"), default.arch),
        portable=table.boolean("portable", default.portable),
    )
    table.finish()
    return target


def resolve_link(base: Path, link: str) -> str:
    """Return a find-links entry with a relative folder made absolute against `base`; URLs stay as they are."""
    if "://" in link:
        return link
    return os.path.normpath(base / Path(link).expanduser())


def _read_wheelhouse(table: TableReader) -> WheelhouseConfig:
    default = WheelhouseConfig(requirements=())
    requirements = table.paths("requirements", required=True, kind="file")
    if not requirements:
        raise ConfigError(table.file, table.key("requirements"), "expected at least one requirements file")
    wheelhouse = WheelhouseConfig(
        requirements=requirements,
        constraints=table.paths("constraints", kind="file"),
        output=table.path("output", must_exist=False) or table.base / "wheelhouse",
        timeout=table.number("timeout", default.timeout, minimum=1),
        stall_timeout=table.number("stall_timeout", default.stall_timeout, minimum=1),
        heartbeat=table.number("heartbeat", default.heartbeat, minimum=0.1, maximum=3.0),
        isolate_pip_config=table.boolean("isolate_pip_config", default.isolate_pip_config),
        index_url=table.string("index_url", None),
        extra_index_urls=table.strings("extra_index_urls"),
        find_links=tuple(resolve_link(table.base, link) for link in table.strings("find_links")),
        no_binary=table.strings("no_binary"),
        only_binary=table.strings("only_binary"),
        require_hashes=table.boolean("require_hashes", default.require_hashes),
        jobs=table.integer("jobs", default.jobs, minimum=1, maximum=64),
        resolver=table.choice("resolver", ("pip", "uv"), default.resolver),
    )
    table.finish()
    return wheelhouse


def _read_base_image(table: TableReader) -> BaseImageRecipe:
    recipe = BaseImageRecipe(
        name=table.string("name", required=True),
        suite=table.string("suite", "bookworm"),
        packages=table.strings("packages", ("python3", "python3-venv")),
        make=table.boolean("make", True),
    )
    table.finish()
    return recipe


def _read_environment(table: TableReader) -> EnvironmentConfig:
    default = EnvironmentConfig()
    environment = EnvironmentConfig(
        min_disk_gb=table.number("min_disk_gb", default.min_disk_gb, minimum=0),
        min_memory_gb=table.number("min_memory_gb", default.min_memory_gb, minimum=0),
        tools=table.strings("tools"),
    )
    table.finish()
    return environment


def _read_services(tables: list[TableReader], project: Project,
                   base_images: tuple[BaseImageRecipe, ...]) -> tuple[Service, ...]:
    if not tables:
        raise ConfigError(TableReader.file_of(tables), "services", "expected at least one [[services]] table")
    services: list[Service] = []
    seen: dict[str, str] = {}
    default_base = base_images[0].name if base_images else None
    for table in tables:
        service = _read_service(table, project, default_base)
        if service.name in seen:
            raise ConfigError(table.file, table.key("name"),
                              f"duplicate service name {service.name!r}, already used by {seen[service.name]}",
                              "give every service a unique name")
        seen[service.name] = table.prefix
        services.append(service)
    _check_dependencies(services, tables)
    return tuple(services)


def _read_service(table: TableReader, project: Project, default_base: str | None) -> Service:
    name = table.string("name", required=True, pattern=SERVICE_NAME,
                        expected="a lowercase name of letters, digits, '-', '_' or '.'")
    context = table.path("context", kind="dir") or table.base
    dockerfile = table.path("dockerfile", kind="file", required=True)
    service = Service(
        name=name,
        dockerfile=dockerfile,
        context=context,
        tag=table.string("tag", f"localhost/{project.name}/{name}:{project.version}"),
        base_image=table.string("base_image", default_base),
        target_stage=table.string("target", None),
        build_args=table.string_map("build_args"),
        ports=table.port_map("ports"),
        environment=table.string_map("environment"),
        depends_on=table.strings("depends_on"),
        probe=_read_probe(table.table("probe", required=True)),
    )
    table.finish()
    return service


def _read_probe(table: TableReader) -> Probe:
    default = Probe()
    kind = table.choice("kind", ("http", "tcp", "command"), required=True)
    port = table.integer("port", None, minimum=1, maximum=65535)
    command = table.strings("command", None)
    if kind in ("http", "tcp") and port is None:
        raise ConfigError(table.file, table.key("port"), f"a {kind} probe needs the container port to probe",
                          "add port = <container port>")
    if kind == "command" and not command:
        raise ConfigError(table.file, table.key("command"), "a command probe needs a command",
                          'add command = ["python", "-m", "...", ...]')
    probe = Probe(
        kind=kind,
        port=port,
        path=table.string("path", default.path),
        expect_status=table.integer("expect_status", default.expect_status, minimum=100, maximum=599),
        command=command,
        timeout=table.number("timeout", default.timeout, minimum=1),
        interval=table.number("interval", default.interval, minimum=0.05),
        healthy_in_a_row=table.integer("healthy_in_a_row", default.healthy_in_a_row, minimum=1),
    )
    table.finish()
    return probe


def _check_dependencies(services: list[Service], tables: list[TableReader]) -> None:
    names = {service.name for service in services}
    for service, table in zip(services, tables):
        for dependency in service.depends_on:
            if dependency not in names:
                raise ConfigError(table.file, table.key("depends_on"),
                                  f"service {service.name!r} depends on unknown service {dependency!r}",
                                  f"use one of: {', '.join(sorted(names))}")
    cycle = find_cycle({service.name: service.depends_on for service in services})
    if cycle:
        raise ConfigError(tables[0].file, "services.depends_on",
                          f"dependency cycle: {' -> '.join(cycle)}", "remove one of these dependencies")


def find_cycle(graph: dict[str, tuple[str, ...]]) -> list[str]:
    """Return one dependency cycle as a list of names ending where it started, or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for child in graph.get(node, ()):
            if state.get(child) == 1:
                return stack[stack.index(child):] + [child]
            if child not in state:
                found = visit(child)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _read_integration(table: TableReader) -> IntegrationConfig:
    integration = IntegrationConfig(
        tests=table.path("tests", kind="dir"),
        timeout=table.number("timeout", 300.0, minimum=1),
    )
    table.finish()
    return integration


def _read_benchmark(table: TableReader) -> BenchmarkConfig:
    default = BenchmarkConfig()
    commands = tuple(tuple(command) for command in table.string_lists("commands"))
    benchmark = BenchmarkConfig(
        probe_requests=table.integer("probe_requests", default.probe_requests, minimum=1, maximum=10000),
        commands=commands,
        warn_ratio=table.number("warn_ratio", default.warn_ratio, minimum=1),
        fail_ratio=table.number("fail_ratio", default.fail_ratio, minimum=1),
        on_regression=table.choice("on_regression", ("warn", "fail"), default.on_regression),
    )
    table.finish()
    return benchmark


SEVERITIES = ("low", "medium", "high", "critical")


def _read_security(table: TableReader) -> SecurityConfig:
    default = SecurityConfig()
    security = SecurityConfig(
        secrets=table.boolean("secrets", default.secrets),
        baseline=table.path("baseline", must_exist=False),
        osv_database=table.path("osv_database", must_exist=False),
        osv_snapshot_date=table.string("osv_snapshot_date", None),
        osv_online=table.boolean("osv_online", default.osv_online),
        osv_api_url=table.string("osv_api_url", None),
        osv_missing=table.choice("osv_missing", ("skip", "fail"), default.osv_missing),
        osv_unknown_severity=table.choice("osv_unknown_severity", SEVERITIES + ("ignore",),
                                          default.osv_unknown_severity),
        severity_threshold=table.choice("severity_threshold", SEVERITIES, default.severity_threshold),
        hadolint=table.boolean("hadolint", default.hadolint),
        hadolint_failure_level=table.choice("hadolint_failure_level", ("error", "warning", "info", "style"),
                                            default.hadolint_failure_level),
        hadolint_ignore=table.strings("hadolint_ignore"),
        hadolint_config=table.path("hadolint_config", kind="file"),
        image_allowed_names=table.strings("image_allowed_names", default.image_allowed_names),
    )
    table.finish()
    return security


def _read_docs(table: TableReader) -> DocsConfig:
    docs = DocsConfig(
        builder=table.choice("builder", ("none", "mkdocs", "sphinx"), "none"),
        source=table.path("source", kind="dir"),
        output=table.path("output", must_exist=False),
    )
    table.finish()
    return docs


def describe(value: Any) -> str:
    """Name a TOML value's type for error messages."""
    return TableReader.describe(value)
