"""Service containers for one build: a private network, dependency order, readiness, teardown.

``ContainerStack`` starts every service that has an image on a network made for the
build, waits until its probe passes several times in a row, and records each service's
outcome. One service failing does not stop the others, though services that depend on
it are skipped. Leaving the ``with`` block removes the containers and the network.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import docker
import docker.errors
from docker.types import EndpointConfig

from build_suite.config import Probe, Service
from build_suite.errors import ContainerError
from build_suite.images import BUILD_ID_LABEL, SERVICE_LABEL
from build_suite.probes import probe_command, ProbeResult, probe_once, validate_probe

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
# Maximum pause between failed probes, as a multiple of the probe interval.
MAX_BACKOFF_FACTOR = 4.0
BACKOFF_GROWTH = 1.5


class DependencyError(ContainerError):
    """Services whose depends_on names an unknown service or forms a cycle."""


@dataclass(frozen=True)
class ServiceOutcome:
    """Outcome of starting one service. ``status`` is "healthy", "failed" or "skipped"."""

    service: str
    status: str
    seconds_to_healthy: float | None = None
    error: str | None = None
    log_tail: tuple[str, ...] = ()
    probes: int = 0
    exit_code: int | None = None  # set when the container exited before it became healthy


@dataclass(frozen=True)
class CleanupResult:
    """Names of what ``remove_labelled`` removed."""

    containers: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    images: tuple[str, ...] = ()


def start_order(services: Iterable[Service]) -> list[str]:
    """Return service names in an order where each service follows its dependencies.

    Ties keep the configured order. Raises DependencyError naming the services with an
    unknown dependency or in a cycle.
    """
    services = list(services)
    names = [service.name for service in services]
    depends = {service.name: tuple(service.depends_on or ()) for service in services}
    unknown = [f"{name} -> {dependency}" for name in names for dependency in depends[name] if dependency not in depends]
    if unknown:
        raise DependencyError(f"depends_on names an unknown service: {', '.join(unknown)}",
                              "Add the missing service or remove it from depends_on.")

    ordered: list[str] = []
    placed: set[str] = set()
    while len(ordered) < len(names):
        ready = [name for name in names if name not in placed and all(dep in placed for dep in depends[name])]
        if not ready:
            cycle = sorted(name for name in names if name not in placed)
            raise DependencyError(f"depends_on forms a cycle among services: {', '.join(cycle)}",
                                  "Remove one dependency of the cycle.")
        ordered.append(ready[0])
        placed.add(ready[0])
    return ordered


def container_exit_message(service: str, exit_code: int | None, tail: list[str]) -> str:
    lines = [f"service {service!r}: container exited with code {exit_code} before it became healthy"]
    lines.extend(_tail_block(tail))
    lines.append("Check the service's command and the log above, then rerun.")
    return "\n".join(lines)


def probe_timeout_message(service: str, timeout: float, last_probe: ProbeResult | None, tail: list[str],
                          target: str = "") -> str:
    """Build the error for a service whose probe never passed; `target` names what was probed."""
    detail = last_probe.detail if last_probe else "no probe ran"
    probed = f" probing {target}" if target else ""
    lines = [f"service {service!r}: not healthy after {timeout:g}s{probed}; last probe: {detail}"]
    lines.extend(_tail_block(tail))
    lines.append("Check that the service listens on the probed port and path, "
                 "or raise probe.timeout if it starts slowly.")
    return "\n".join(lines)


def probe_target(probe: Probe) -> str:
    """Name what a probe checks in the container's terms, because the published host port is picked at run time."""
    if probe.kind == "http":
        return f"http://<container>:{probe.port}{probe.path}"
    if probe.kind == "tcp":
        return f"container port {probe.port}"
    return "command " + " ".join(probe.command or ())


def _tail_block(tail: list[str]) -> list[str]:
    if not tail:
        return ["Container log is empty."]
    return ["Last log lines:"] + [f"  {line}" for line in tail]


def probe_delay(interval: float, previous_delay: float | None, healthy: bool) -> float:
    """Return the pause before the next probe: the interval after a pass, growing after failures."""
    if healthy or previous_delay is None:
        return interval
    return min(previous_delay * BACKOFF_GROWTH, interval * MAX_BACKOFF_FACTOR)


@dataclass
class ContainerStack:
    """Context manager that runs the services of one build and removes them afterwards.

    ``images`` maps service names to built image ids or tags. A service without an image
    is recorded as skipped. ``labels`` are added to the network and every container, next
    to the build id and service labels. With ``keep=True`` the containers and network
    stay for inspection.
    """

    client: docker.DockerClient
    services: list[Service]
    images: Mapping[str, str]
    build_id: str
    on_progress: Callable[[str], None] = lambda line: None
    labels: Mapping[str, str] = field(default_factory=dict)
    keep: bool = False
    # The image HEALTHCHECK of each service, run through exec next to the configured probe, because
    # Podman without systemd never runs it and OCI-format images drop it.
    healthchecks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    outcomes: dict[str, ServiceOutcome] = field(default_factory=dict, init=False)
    containers: dict[str, Any] = field(default_factory=dict, init=False)
    network: Any = field(default=None, init=False)
    _attempted: list[str] = field(default_factory=list, init=False, repr=False)

    @property
    def network_name(self) -> str:
        return f"build-suite-{self.build_id}"

    def container_name(self, service_name: str) -> str:
        return f"build-suite-{self.build_id}-{service_name}"

    def __enter__(self) -> "ContainerStack":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def healthy(self) -> bool:
        """Whether every service became healthy."""
        return len(self.outcomes) == len(self.services) and all(
            outcome.status == "healthy" for outcome in self.outcomes.values())

    def start(self) -> dict[str, ServiceOutcome]:
        """Start the services in dependency order and return each one's outcome."""
        by_name = {service.name: service for service in self.services}
        order = start_order(self.services)
        for service in self.services:
            validate_probe(service.probe)
        self.network = self.client.networks.create(self.network_name, driver="bridge", labels=self._labels())
        self.on_progress(f"created network {self.network_name}")
        for name in order:
            self.outcomes[name] = self._start_service(by_name[name])
        return self.outcomes

    def _labels(self, service_name: str | None = None) -> dict[str, str]:
        labels = {**self.labels, BUILD_ID_LABEL: self.build_id}
        if service_name is not None:
            labels[SERVICE_LABEL] = service_name
        return labels

    def _start_service(self, service: Service) -> ServiceOutcome:
        blocked = [dep for dep in service.depends_on or () if self.outcomes[dep].status != "healthy"]
        if blocked:
            reason = f"service {service.name!r} skipped because its dependency {', '.join(blocked)} is not healthy"
            self.on_progress(reason)
            return ServiceOutcome(service.name, "skipped", error=reason)
        image = self.images.get(service.name)
        if not image:
            reason = f"service {service.name!r} skipped because it has no image (its build failed or did not run)"
            self.on_progress(reason)
            return ServiceOutcome(service.name, "skipped", error=reason)

        self.on_progress(f"{service.name}: starting container from {image}")
        try:
            container = self._run_container(service, image)
        except docker.errors.APIError as error:
            message = f"service {service.name!r}: container failed to start: {error.explanation or error}"
            logger.warning("build %s: %s", self.build_id, message)
            self.on_progress(message)
            return ServiceOutcome(service.name, "failed", error=message)
        self.containers[service.name] = container
        outcome = self._wait_until_healthy(service, container)
        if outcome.status == "healthy":
            self.on_progress(f"{service.name}: healthy after {outcome.seconds_to_healthy:.1f}s")
        else:
            self.on_progress(outcome.error or f"{service.name}: failed")
        return outcome

    def _run_container(self, service: Service, image: str) -> Any:
        # Every published port binds to loopback only, and probes reach it there.
        ports = {f"{container_port}/tcp": ("127.0.0.1", host_port)
                 for container_port, host_port in (service.ports or {}).items()}
        probe_port = service.probe.port
        if service.probe.kind in ("http", "tcp") and f"{probe_port}/tcp" not in ports:
            ports[f"{probe_port}/tcp"] = ("127.0.0.1", None)
        self._attempted.append(self.container_name(service.name))
        return self.client.containers.run(
            image, detach=True, name=self.container_name(service.name), labels=self._labels(service.name),
            environment=dict(service.environment or {}), ports=ports, network=self.network_name,
            networking_config={self.network_name: EndpointConfig(
                version=self.client.api.api_version, aliases=[service.name])},
        )

    def _wait_until_healthy(self, service: Service, container: Any) -> ServiceOutcome:
        probe = service.probe
        started = time.monotonic()
        deadline = started + probe.timeout
        in_a_row = 0
        attempts = 0
        delay: float | None = None
        last: ProbeResult | None = None
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                exit_code = (container.attrs.get("State") or {}).get("ExitCode")
                tail = exited_container_log_tail(container)
                return ServiceOutcome(service.name, "failed", error=container_exit_message(
                    service.name, exit_code, tail), log_tail=tuple(tail), probes=attempts, exit_code=exit_code)
            last = self._probe(service, container)
            attempts += 1
            # A failed probe resets the count, so a flapping service never reaches it.
            in_a_row = in_a_row + 1 if last.healthy else 0
            if in_a_row >= probe.healthy_in_a_row:
                return ServiceOutcome(service.name, "healthy", seconds_to_healthy=time.monotonic() - started,
                                      probes=attempts)
            now = time.monotonic()
            if now >= deadline:
                tail = container_log_tail(container)
                return ServiceOutcome(service.name, "failed", error=probe_timeout_message(
                    service.name, probe.timeout, last, tail, probe_target(probe)),
                    log_tail=tuple(tail), probes=attempts)
            delay = probe_delay(probe.interval, delay, last.healthy)
            time.sleep(min(delay, deadline - now))

    def _probe(self, service: Service, container: Any) -> ProbeResult:
        result = self._configured_probe(service, container)
        healthcheck = self.healthchecks.get(service.name)
        if not result.healthy or not healthcheck:
            return result
        check = probe_command(container, healthcheck)
        if not check.healthy:
            return ProbeResult(False, f"the image HEALTHCHECK failed: {check.detail}", result.latency + check.latency)
        return result

    def _configured_probe(self, service: Service, container: Any) -> ProbeResult:
        probe = service.probe
        if probe.kind == "command":
            return probe_once(probe, container=container)
        host_port = published_port(container, probe.port)
        if host_port is None:
            return ProbeResult(False, f"port {probe.port}/tcp is not published yet", 0.0)
        return probe_once(probe, host="127.0.0.1", port=host_port, timeout=max(0.5, min(5.0, probe.interval * 2)))

    def close(self) -> None:
        """Remove the containers and the network of this stack, unless ``keep`` is set."""
        if self.keep:
            if self.containers or self.network is not None:
                self.on_progress(f"keeping containers and network {self.network_name} for inspection")
            return
        errors = []
        for name, container in list(self.containers.items()):
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                errors.append(f"container {container.name}: {error}")
            self.containers.pop(name, None)
            if container.name in self._attempted:
                self._attempted.remove(container.name)
        # A run call that failed after the engine created the container leaves it behind
        # without a handle, so it is found again by name.
        for name in self._attempted:
            try:
                self.client.containers.get(name).remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                errors.append(f"container {name}: {error}")
        self._attempted.clear()
        if self.network is not None:
            try:
                self.network.remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                errors.append(f"network {self.network_name}: {error}")
            self.network = None
        for error in errors:
            logger.warning("teardown of build %s failed to remove %s", self.build_id, error)
            self.on_progress(f"teardown failed to remove {error}")


def published_port(container: Any, container_port: int) -> int | None:
    """Return the loopback host port published for a container port, or None."""
    bindings = ((container.attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{container_port}/tcp")
    for binding in bindings or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def container_log_tail(container: Any, lines: int = LOG_TAIL_LINES) -> list[str]:
    """Return the container's last log lines, stdout and stderr merged."""
    try:
        output = container.logs(tail=lines, stdout=True, stderr=True)
    except docker.errors.APIError as error:
        return [f"(log unavailable: {error})"]
    text = output.decode("utf-8", errors="replace").rstrip()
    return text.splitlines()[-lines:] if text else []


def exited_container_log_tail(container: Any, lines: int = LOG_TAIL_LINES, wait: float = 2.0) -> list[str]:
    """Return the last log lines of an exited container, waiting up to ``wait`` seconds for them.

    Podman 4.3 can report a container as exited before its last output reaches the log,
    so an empty log is read again a few times before it is taken as empty.
    """
    deadline = time.monotonic() + wait
    while True:
        tail = container_log_tail(container, lines)
        if tail or time.monotonic() >= deadline:
            return tail
        time.sleep(0.2)


def remove_labelled(client: docker.DockerClient, label: str, *, images: bool = False) -> CleanupResult:
    """Remove the containers and networks that carry ``label``, and the images too if asked.

    ``label`` is a key or ``key=value``, as the engine's label filter takes it. Images
    are removed children first, because the engine rejects removing an image that has
    children.
    """
    label_filter = {"label": label}
    removed_containers = []
    for container in client.containers.list(all=True, filters=label_filter):
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        removed_containers.append(container.name)
    removed_networks = []
    for network in client.networks.list(filters=label_filter):
        try:
            network.remove()
        except docker.errors.NotFound:
            continue
        removed_networks.append(network.name)
    removed_images: list[str] = []
    if images:
        removed_images = _remove_images(client, label_filter)
    return CleanupResult(tuple(removed_containers), tuple(removed_networks), tuple(removed_images))


def _remove_images(client: docker.DockerClient, label_filter: dict[str, str]) -> list[str]:
    removed: list[str] = []
    while True:
        try:
            remaining = client.images.list(all=True, filters=label_filter)
        except docker.errors.APIError:
            # Podman 4.3 returns status 500 when another client removes an image during the listing.
            time.sleep(0.5)
            remaining = client.images.list(all=True, filters=label_filter)
        progress = False
        for image in remaining:
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.NotFound:
                progress = True
            except docker.errors.APIError:
                continue
            else:
                removed.append(image.id)
                progress = True
        if not remaining or not progress:
            return removed
