"""ContainerStack against the real engine: failures per service, readiness rules, teardown."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from build_suite.config import Probe, Service
from build_suite.containers import (
    ContainerStack,
    DependencyError,
    probe_delay,
    remove_labelled,
    start_order,
)
from build_suite.images import BUILD_ID_LABEL, build_image

STACKS = Path(__file__).parent / "data" / "stacks"
BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"
TEST_LABEL = "build-suite.test"




@pytest.fixture
def build_id():
    return "t" + uuid.uuid4().hex[:10]


def service(name, *, stack="mixed", mode="ok", environment=None, depends_on=(), probe=None):
    return Service(
        name=name,
        dockerfile=STACKS / stack / "Dockerfile",
        context=STACKS / stack,
        tag=f"localhost/build-suite-test/{stack}:latest",
        base_image=BASE_IMAGE,
        environment={"MODE": mode, **(environment or {})},
        depends_on=tuple(depends_on),
        probe=probe or Probe(kind="http", port=8000, timeout=20, interval=0.2, healthy_in_a_row=2),
    )


def build_all(client, services, build_id):
    results = {}
    for spec in services:
        results[spec.name] = build_image(client, spec, build_id=build_id, labels={TEST_LABEL: "test_containers"},
                                         on_progress=lambda line: None, heartbeat=5.0)
    return results


def leftovers(client, build_id):
    label = {"label": f"{BUILD_ID_LABEL}={build_id}"}
    containers = [container.name for container in client.containers.list(all=True, filters=label)]
    networks = [network.name for network in client.networks.list(filters=label)]
    return containers, networks


def test_start_order_follows_dependencies():
    services = [service("api", depends_on=["db", "cache"]), service("db"), service("cache", depends_on=["db"])]

    assert start_order(services) == ["db", "cache", "api"]


def test_start_order_unknown_dependency():
    with pytest.raises(DependencyError, match="api -> queue"):
        start_order([service("api", depends_on=["queue"])])


def test_start_order_cycle_names_services():
    services = [service("a", depends_on=["b"]), service("b", depends_on=["a"]), service("c")]

    with pytest.raises(DependencyError, match="cycle among services: a, b"):
        start_order(services)


def test_probe_delay_backs_off_after_failures():
    first = probe_delay(1.0, None, healthy=False)
    second = probe_delay(1.0, first, healthy=False)
    capped = probe_delay(1.0, 100.0, healthy=False)
    after_pass = probe_delay(1.0, 3.0, healthy=True)

    assert first == 1.0
    assert second > first
    assert capped == 4.0
    assert after_pass == 1.0


@pytest.mark.slow
def test_failing_services_next_to_healthy(client, build_id):
    unhealthy_probe = Probe(kind="http", port=8000, timeout=3, interval=0.2, healthy_in_a_row=2)
    services = [
        service("web"),
        service("api", depends_on=["web"], probe=Probe(kind="tcp", port=8000, timeout=20, interval=0.2)),
        service("broken", stack="broken"),
        service("crasher", mode="crash"),
        service("sulky", mode="unhealthy", probe=unhealthy_probe),
        service("worker", depends_on=["crasher"]),
    ]
    builds = build_all(client, services, build_id)
    images = {name: result.image_id for name, result in builds.items() if result.status != "failed"}
    lines = []

    with ContainerStack(client, services, images, build_id, on_progress=lines.append,
                        labels={TEST_LABEL: "test_containers"}) as stack:
        outcomes = stack.outcomes
        assert leftovers(client, build_id)[1] == [stack.network_name]

    assert builds["broken"].status == "failed"
    assert "service 'broken'" in builds["broken"].error
    assert "wheel-that-does-not-exist" in builds["broken"].error
    assert outcomes["web"].status == "healthy"
    assert outcomes["api"].status == "healthy"
    assert outcomes["broken"].status == "skipped"
    assert "'broken'" in outcomes["broken"].error
    assert outcomes["crasher"].status == "failed"
    assert "service 'crasher'" in outcomes["crasher"].error
    assert "exited with code 3" in outcomes["crasher"].error
    assert "missing setting DATABASE_URL" in outcomes["crasher"].error
    assert outcomes["sulky"].status == "failed"
    assert "service 'sulky'" in outcomes["sulky"].error
    assert "not healthy after 3s" in outcomes["sulky"].error
    assert "returned 503, expected 200" in outcomes["sulky"].error
    assert "Last log lines" in outcomes["sulky"].error
    assert outcomes["worker"].status == "skipped"
    assert "crasher" in outcomes["worker"].error
    assert not stack.healthy
    assert any(line.startswith("web: healthy after") for line in lines)
    assert leftovers(client, build_id) == ([], [])


@pytest.mark.slow
def test_services_reach_each_other_by_name(client, build_id):
    command = ("python3", "-c", "import urllib.request; urllib.request.urlopen('http://web:8000/', timeout=2)")
    services = [
        service("web"),
        service("client", depends_on=["web"], environment={"PORT": "8001"},
                probe=Probe(kind="command", command=command, timeout=20, interval=0.3, healthy_in_a_row=1)),
    ]
    builds = build_all(client, services, build_id)

    with ContainerStack(client, services, {n: r.image_id for n, r in builds.items()}, build_id) as stack:
        outcomes = stack.outcomes

    assert outcomes["client"].status == "healthy", outcomes["client"].error
    assert stack.healthy


@pytest.mark.slow
def test_flapping_service_not_healthy(client, build_id):
    flapping = service("flapper", mode="flap",
                       probe=Probe(kind="http", port=8000, timeout=3, interval=0.2, healthy_in_a_row=2))
    builds = build_all(client, [flapping], build_id)

    with ContainerStack(client, [flapping], {"flapper": builds["flapper"].image_id}, build_id) as stack:
        outcome = stack.outcomes["flapper"]

    assert outcome.status == "failed"
    assert outcome.probes >= 4
    assert "not healthy after 3s" in outcome.error


@pytest.mark.slow
def test_flapping_service_passes_single_probe(client, build_id):
    # Control for the test above: the same service passes when one probe is enough.
    flapping = service("flapper", mode="flap",
                       probe=Probe(kind="http", port=8000, timeout=10, interval=0.2, healthy_in_a_row=1))
    builds = build_all(client, [flapping], build_id)

    with ContainerStack(client, [flapping], {"flapper": builds["flapper"].image_id}, build_id) as stack:
        outcome = stack.outcomes["flapper"]

    assert outcome.status == "healthy"


@pytest.mark.slow
def test_slow_service_within_timeout(client, build_id):
    slow = service("slow", environment={"DELAY": "2"},
                   probe=Probe(kind="http", port=8000, timeout=20, interval=0.2, healthy_in_a_row=3))
    builds = build_all(client, [slow], build_id)

    with ContainerStack(client, [slow], {"slow": builds["slow"].image_id}, build_id) as stack:
        outcome = stack.outcomes["slow"]

    assert outcome.status == "healthy", outcome.error
    assert outcome.seconds_to_healthy >= 2.0
    assert outcome.probes >= 3


@pytest.mark.slow
def test_configured_port_published_on_loopback(client, build_id):
    web = dataclasses.replace(service("web"), ports={8000: 0})
    builds = build_all(client, [web], build_id)

    with ContainerStack(client, [web], {"web": builds["web"].image_id}, build_id) as stack:
        stack.containers["web"].reload()
        bindings = stack.containers["web"].attrs["NetworkSettings"]["Ports"]["8000/tcp"]

    assert [binding["HostIp"] for binding in bindings] == ["127.0.0.1"]


@pytest.mark.slow
def test_teardown_on_keyboard_interrupt(client, build_id):
    web = service("web")
    builds = build_all(client, [web], build_id)

    with pytest.raises(KeyboardInterrupt):
        with ContainerStack(client, [web], {"web": builds["web"].image_id}, build_id):
            assert leftovers(client, build_id) != ([], [])
            raise KeyboardInterrupt

    assert leftovers(client, build_id) == ([], [])


@pytest.mark.slow
def test_teardown_on_interrupt_during_start(client, build_id):
    services = [service("web"), service("api", depends_on=["web"])]
    builds = build_all(client, services, build_id)

    def interrupt_at_second_service(line):
        if line.startswith("api: starting"):
            raise KeyboardInterrupt

    stack = ContainerStack(client, services, {n: r.image_id for n, r in builds.items()}, build_id,
                           on_progress=interrupt_at_second_service)
    with pytest.raises(KeyboardInterrupt):
        with stack:
            pass

    assert "web" in stack.outcomes
    assert leftovers(client, build_id) == ([], [])


@pytest.mark.slow
def test_keep_then_remove_labelled(client, build_id):
    web = service("web")
    builds = build_all(client, [web], build_id)

    with ContainerStack(client, [web], {"web": builds["web"].image_id}, build_id, keep=True):
        pass
    kept_resources = leftovers(client, build_id)
    removed = remove_labelled(client, f"{BUILD_ID_LABEL}={build_id}")

    assert kept_resources == ([f"build-suite-{build_id}-web"], [f"build-suite-{build_id}"])
    assert removed.containers == (f"build-suite-{build_id}-web",)
    assert removed.networks == (f"build-suite-{build_id}",)
    assert leftovers(client, build_id) == ([], [])


@pytest.mark.slow
def test_unknown_dependency_creates_nothing(client, build_id):
    services = [service("api", depends_on=["db"])]

    with pytest.raises(DependencyError, match="api -> db"):
        with ContainerStack(client, services, {"api": BASE_IMAGE}, build_id):
            pass

    assert leftovers(client, build_id) == ([], [])


@pytest.mark.slow
def test_failing_image_healthcheck_not_healthy(client, build_id):
    web = service("web", probe=Probe(kind="http", port=8000, timeout=4, interval=0.2, healthy_in_a_row=2))
    passing = service("passing", probe=Probe(kind="http", port=8000, timeout=20, interval=0.2, healthy_in_a_row=2))
    builds = build_all(client, [web, passing], build_id)
    images = {name: result.image_id for name, result in builds.items()}
    healthchecks = {"web": ("/bin/sh", "-c", "exit 1"), "passing": ("/bin/sh", "-c", "exit 0")}

    with ContainerStack(client, [web, passing], images, build_id, healthchecks=healthchecks) as stack:
        outcomes = dict(stack.outcomes)

    assert outcomes["web"].status == "failed"
    assert "HEALTHCHECK failed" in outcomes["web"].error
    assert outcomes["passing"].status == "healthy", outcomes["passing"].error
    assert leftovers(client, build_id) == ([], [])
