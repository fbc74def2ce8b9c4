"""Tests of the phases as a user runs them: real builds of small stacks through the harness.

Each module-scoped stack lives in tmp with its own project name, image tags and
host ports 0, so these builds never collide with the demo stack or with each
other. The images that a module built are removed when the module ends.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
import jsonschema
import pytest

from build_suite.containers import remove_labelled
from build_suite.engine import connect_engine
from build_suite.errors import BuildSuiteError
from build_suite.images import BUILD_ID_LABEL

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo-stack"
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
PROJECT_LABEL = "build-suite.project"
BUILD_TIMEOUT = 900


def engine_problem() -> str:
    try:
        connect_engine().close()
    except BuildSuiteError as error:
        return error.message
    return ""


ENGINE_PROBLEM = engine_problem()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(ENGINE_PROBLEM), reason=f"no container engine: {ENGINE_PROBLEM}")]


@dataclass
class BuildRun:
    returncode: int
    output: str
    report_dir: Path

    @property
    def build(self) -> dict:
        return json.loads((self.report_dir / "build-report.json").read_text())["build"]

    @property
    def outcomes(self) -> dict[str, str]:
        """Outcome of each phase test by node id, from the JSON report."""
        report = json.loads((self.report_dir / "build-report.json").read_text())
        return {test["nodeid"]: test["outcome"] for test in report.get("tests", [])}


def build_environment() -> dict[str, str]:
    """Return the environment for a build subprocess without the machine's PIP_* settings."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    environment["PIP_CONFIG_FILE"] = os.devnull
    environment.pop("BUILD_SUITE_OSV_DATABASE", None)
    return environment


def run_build(config: Path, report_dir: Path, *args: str) -> BuildRun:
    """Run `pytest build_suite` as a user does, in a subprocess, and return its combined output."""
    command = [sys.executable, "-m", "pytest", str(ROOT / "build_suite"), "-c", str(ROOT / "pytest.ini"),
               "--rootdir", str(ROOT), "--build-config", str(config), "--report-dir", str(report_dir),
               "--progress", "plain", *args]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                               timeout=BUILD_TIMEOUT, env=build_environment(), check=False)
    return BuildRun(completed.returncode, completed.stdout + completed.stderr, report_dir)


def copy_demo_stack(folder: Path, project: str) -> Path:
    """Copy the demo stack without its wheelhouse, with its own project name, image tags and host ports 0."""
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("wheelhouse", ".build-suite.lock", ".benchmarks"))
    config = folder / "buildsuite.toml"
    text = config.read_text()
    text = text.replace('name = "demo-stack"', f'name = "{project}"')
    text = text.replace("localhost/demo-stack/", f"localhost/{project}/")
    text = re.sub(r"ports = \{ (\d+) = \d+ \}", r"ports = { \1 = 0 }", text)
    config.write_text(text)
    return config


def leftovers(build_id: str) -> dict[str, list[str]]:
    """Return the containers and networks that still carry the build's label."""
    client = docker.DockerClient(base_url=connect_engine().url)
    try:
        label = {"label": f"{BUILD_ID_LABEL}={build_id}"}
        return {"containers": [c.name for c in client.containers.list(all=True, filters=label)],
                "networks": [n.name for n in client.networks.list(filters=label)]}
    finally:
        client.close()


def remove_project(project: str) -> None:
    """Remove what a test project's builds left in the engine, images included."""
    connection = connect_engine()
    try:
        remove_labelled(connection.client, f"{PROJECT_LABEL}={project}", images=True)
    finally:
        connection.close()


# ---------------------------------------------------------------- the demo stack


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory):
    project = "phases-demo"
    config = copy_demo_stack(tmp_path_factory.mktemp("demo") / "stack", project)
    yield config
    remove_project(project)


@pytest.fixture(scope="module")
def full_build(demo_stack: Path) -> BuildRun:
    return run_build(demo_stack, demo_stack.parent / "reports-full", "-m", "full")


def test_full_build_passes(full_build: BuildRun) -> None:
    assert full_build.returncode == 0, full_build.output[-6000:]
    build = full_build.build
    jsonschema.validate(build, SCHEMA)
    assert build["outcome"] == "passed"
    for phase in ("environment", "wheelhouse", "images", "containers", "integration", "benchmark", "security"):
        assert build["phases"][phase]["outcome"] == "passed", (phase, build["phases"][phase])
    assert leftovers(build["build_id"]) == {"containers": [], "networks": []}


def test_full_build_reports_images(full_build: BuildRun) -> None:
    images = {image["service"]: image for image in full_build.build["images"]}
    assert sorted(images) == ["api", "worker"]
    for name, image in images.items():
        assert image["status"] in ("built", "cached"), image
        assert image["image_id"].startswith("sha256:"), image
        assert image["size"] > 10_000_000, image
        assert image["layers"] >= 2, image
        assert image["seconds"] > 0, image
        assert isinstance(image["cache_hits"], int), image
        assert image["tag"] == f"localhost/phases-demo/{name}:0.1.0"
    for name in images:
        assert re.search(rf"^image {name}: (built|cached) in .*, \d+ MB, \d+ layers, \d+ cache hits$",
                         full_build.output, re.MULTILINE), name


def test_full_build_reports_containers(full_build: BuildRun) -> None:
    containers = {container["service"]: container for container in full_build.build["containers"]}
    assert sorted(containers) == ["api", "worker"]
    for container in containers.values():
        assert container["status"] == "healthy", container
        assert 0 < container["seconds_to_healthy"] < 60, container
        assert container["probes"] >= 1, container


def test_full_build_counts_phase_tests(full_build: BuildRun) -> None:
    phases = full_build.build["phases"]
    outcomes = full_build.outcomes
    for phase in ("images", "containers"):
        nodeids = [nodeid for nodeid in outcomes if f"/test_{phase}.py::" in nodeid]
        assert phases[phase]["tests"] == len(nodeids), (phase, phases[phase], nodeids)
    assert re.search(r"^images\s+passed\s+\S+\s+2$", full_build.output, re.MULTILINE), full_build.output[-3000:]


def test_images_alone_reuses_wheelhouse(full_build: BuildRun, demo_stack: Path) -> None:
    assert full_build.returncode == 0, "needs the passing full build"
    run = run_build(demo_stack, demo_stack.parent / "reports-images", "-m", "images")
    assert run.returncode == 0, run.output[-6000:]
    build = run.build
    jsonschema.validate(build, SCHEMA)
    assert build["wheelhouse"]["reused"] is True, build["wheelhouse"]
    assert build["wheelhouse"]["status"] == "reused"
    assert build["phases"]["images"]["outcome"] == "passed"
    assert build["phases"]["images"]["tests"] == 2
    assert build["phases"]["wheelhouse"]["outcome"] == "not run"
    assert build["phases"]["containers"]["outcome"] == "not run"
    assert {image["service"] for image in build["images"]} == {"api", "worker"}
    assert build["containers"] in (None, [])


def test_second_wheelhouse_run_skips_pip(full_build: BuildRun, demo_stack: Path) -> None:
    assert full_build.returncode == 0, "needs the passing full build"
    run = run_build(demo_stack, demo_stack.parent / "reports-wheelhouse", "-m", "wheelhouse")
    assert run.returncode == 0, run.output[-6000:]
    wheelhouse = run.build["wheelhouse"]
    assert wheelhouse["reused"] is True, wheelhouse
    assert wheelhouse["pip_runs"] == 0, wheelhouse
    assert wheelhouse["counts"]["reused"] == wheelhouse["counts"]["wheels"] > 0
    assert "resolving the requirements with pip" not in run.output


def test_xdist_workers_show_progress(full_build: BuildRun, demo_stack: Path) -> None:
    assert full_build.returncode == 0, "needs the passing full build"
    run = run_build(demo_stack, demo_stack.parent / "reports-xdist", "-n", "2", "-m", "images or containers")
    assert run.returncode == 0, run.output[-6000:]
    for worker in ("gw0", "gw1"):
        assert re.search(rf"^\[{worker}\] ", run.output, re.MULTILINE), f"no line from {worker}:\n{run.output[-4000:]}"
    images_built = re.findall(r"^\[(gw\d)\] image (api|worker): (built|cached) in", run.output, re.MULTILINE)
    assert {service for _, service, _ in images_built} >= {"api", "worker"}, images_built
    phases = run.build["phases"]
    assert phases["images"]["tests"] == 2, phases["images"]
    assert phases["images"]["outcome"] == "passed"
    assert phases["containers"]["tests"] == 4, phases["containers"]
    assert phases["containers"]["outcome"] == "passed"
    assert phases["wheelhouse"]["outcome"] == "not run"
    assert phases["images"]["start"] is not None, "the timeline has no images bar under xdist"
    assert phases["containers"]["start"] is not None, "the timeline has no containers bar under xdist"
    jsonschema.validate(run.build, SCHEMA)
    assert {image["service"] for image in run.build["images"]} == {"api", "worker"}, run.build["images"]
    assert {container["service"]: container["status"] for container in run.build["containers"]} == {
        "api": "healthy", "worker": "healthy"}
    assert run.build["environment"]["engine"]["kind"] in ("podman", "docker")
    assert re.search(r"^images\s+passed\s+\S+\s+2$", run.output, re.MULTILINE), run.output[-3000:]
    assert re.search(r"^containers\s+passed\s+\S+\s+4$", run.output, re.MULTILINE), run.output[-3000:]
    assert leftovers(run.build["build_id"]) == {"containers": [], "networks": []}


# ---------------------------------------------------------------- a stack with failing services

FAULTY_CONFIG = """\
[project]
name = "phases-faulty"
version = "0.1.0"

[target]
# The host's minor version, so that source distributions build on the host.
python = "3.11"
glibc = "2.36"
arch = "x86_64"

[wheelhouse]
requirements = ["requirements.txt"]
output = "wheelhouse"

[[base_images]]
name = "localhost/build-suite/python:3.11-bookworm"
suite = "bookworm"
packages = ["python3", "python3-venv"]

[[services]]
name = "web"
dockerfile = "services/web/Dockerfile"
context = "services/web"
base_image = "localhost/build-suite/python:3.11-bookworm"
ports = {{ 8000 = 0 }}
[services.probe]
kind = "http"
port = 8000
path = "/"
timeout = 30

[[services]]
name = "broken"
dockerfile = "services/broken/Dockerfile"
context = "services/broken"
base_image = "localhost/build-suite/python:3.11-bookworm"
[services.probe]
kind = "command"
command = ["true"]
timeout = 10

[[services]]
name = "crasher"
dockerfile = "services/crasher/Dockerfile"
context = "services/crasher"
base_image = "localhost/build-suite/python:3.11-bookworm"
ports = {{ 8000 = 0 }}
[services.probe]
kind = "http"
port = 8000
timeout = 30

[[services]]
name = "sleeper"
dockerfile = "services/sleeper/Dockerfile"
context = "services/sleeper"
base_image = "localhost/build-suite/python:3.11-bookworm"
ports = {{ 9000 = 0 }}
[services.probe]
kind = "tcp"
port = 9000
timeout = 8
interval = 0.5

[security]
{security}
"""

DOCKERFILES = {
    "web": 'CMD ["python3", "-m", "http.server", "8000"]\n',
    "broken": "RUN echo 'broken: step fails on purpose' && exit 7\n",
    "crasher": 'CMD ["python3", "-c", "import sys; print(\'crasher: no settings\'); sys.exit(3)"]\n',
    "sleeper": 'CMD ["sleep", "3600"]\n',
}

# OSV record of a real public advisory: requests before 2.31.0 leaks Proxy-Authorization
# headers to the destination server when a request is redirected to HTTPS.
REQUESTS_ADVISORY = {
    "id": "PYSEC-2023-74",
    "aliases": ["CVE-2023-32681", "GHSA-j8r2-6x86-q33q"],
    "summary": "Proxy-Authorization header leaks on redirect to HTTPS",
    "modified": "2023-06-05T01:13:00Z",
    "published": "2023-05-26T18:15:00Z",
    "affected": [{
        "package": {"name": "requests", "ecosystem": "PyPI"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}]}],
    }],
}


def write_faulty_stack(folder: Path, security: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("requests==2.30.0\n")
    for name, body in DOCKERFILES.items():
        service = folder / "services" / name
        service.mkdir(parents=True, exist_ok=True)
        (service / "Dockerfile").write_text(f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\n{body}")
    config = folder / "buildsuite.toml"
    config.write_text(FAULTY_CONFIG.format(security=security))
    return config


@pytest.fixture(scope="module")
def faulty_stack(tmp_path_factory: pytest.TempPathFactory):
    config = write_faulty_stack(tmp_path_factory.mktemp("faulty") / "stack")
    yield config
    remove_project("phases-faulty")


@pytest.fixture(scope="module")
def faulty_build(faulty_stack: Path) -> BuildRun:
    return run_build(faulty_stack, faulty_stack.parent / "reports-faulty", "-m", "images or containers")


def test_faulty_build_fails_overall(faulty_build: BuildRun) -> None:
    assert faulty_build.returncode == 1, faulty_build.output[-6000:]
    build = faulty_build.build
    jsonschema.validate(build, SCHEMA)
    assert build["outcome"] == "failed"
    assert leftovers(build["build_id"]) == {"containers": [], "networks": []}


def test_failing_dockerfile_names_service(faulty_build: BuildRun) -> None:
    tests = faulty_build.outcomes
    assert tests["build_suite/phases/test_images.py::test_image_built[broken]"] == "failed"
    assert tests["build_suite/phases/test_images.py::test_image_built[web]"] == "passed"
    images = {image["service"]: image for image in faulty_build.build["images"]}
    assert images["broken"]["status"] == "failed"
    assert images["broken"]["error"].startswith("service 'broken': image build failed at STEP 2/"), images["broken"]
    containers = {container["service"]: container for container in faulty_build.build["containers"]}
    assert containers["broken"]["status"] == "skipped"
    assert "service 'broken' skipped because it has no image" in containers["broken"]["detail"]
    assert re.search(r"test_image_built\[broken\].*\n(.*\n)*?E\s+.*broken", faulty_build.output), \
        faulty_build.output[-6000:]


def test_exiting_container_names_service(faulty_build: BuildRun) -> None:
    tests = faulty_build.outcomes
    assert tests["build_suite/phases/test_containers.py::test_container_healthy[crasher]"] == "failed"
    containers = {container["service"]: container for container in faulty_build.build["containers"]}
    assert containers["crasher"]["status"] != "healthy"
    assert containers["crasher"]["status"] == "failed"
    assert containers["crasher"]["exit_code"] == 3, containers["crasher"]
    assert "service 'crasher': container exited with code 3" in containers["crasher"]["detail"]
    assert containers["crasher"]["log_tail"] == ["crasher: no settings"]


def test_unhealthy_container_names_service(faulty_build: BuildRun) -> None:
    tests = faulty_build.outcomes
    assert tests["build_suite/phases/test_containers.py::test_container_healthy[sleeper]"] == "failed"
    containers = {container["service"]: container for container in faulty_build.build["containers"]}
    assert containers["sleeper"]["status"] == "failed"
    assert containers["sleeper"]["exit_code"] is None
    assert "service 'sleeper': not healthy after 8s" in containers["sleeper"]["detail"], containers["sleeper"]


def test_healthy_service_still_passes(faulty_build: BuildRun) -> None:
    tests = faulty_build.outcomes
    assert tests["build_suite/phases/test_images.py::test_image_built[web]"] == "passed"
    assert tests["build_suite/phases/test_containers.py::test_container_healthy[web]"] == "passed"
    assert tests["build_suite/phases/test_containers.py::test_images_carry_build_labels"] == "passed"
    containers = {container["service"]: container for container in faulty_build.build["containers"]}
    assert containers["web"]["status"] == "healthy"
    assert containers["web"]["seconds_to_healthy"] > 0
    for service in ("broken", "crasher", "sleeper"):
        summary = f"FAILED build_suite/phases/test_containers.py::test_container_healthy[{service}]"
        assert summary in faulty_build.output, service


# ---------------------------------------------------------------- security


def test_planted_secret_fails_security(tmp_path: Path) -> None:
    config = copy_demo_stack(tmp_path / "stack", "phases-secret")
    key = "AKIA" + "TESTFAKE7EXAMPLE"  # access-key-shaped, made up for this test
    planted = tmp_path / "stack" / "services" / "api" / "api" / "settings.py"
    planted.write_text(f'"""Settings."""\n\nREGION = "eu"\nACCESS_KEY_ID = "{key}"\n')

    run = run_build(config, tmp_path / "reports", "-m", "security", "-k", "secrets")
    assert run.returncode == 1, run.output[-6000:]
    assert "services/api/api/settings.py:4" in run.output, run.output[-6000:]
    assert key not in run.output
    assert key not in (tmp_path / "reports" / "build-report.json").read_text()
    assert key not in (tmp_path / "reports" / "build-report.html").read_text()
    # Both services build from the demo stack's folder, so the file is in both build contexts.
    for service in ("api", "worker"):
        assert run.outcomes[f"build_suite/phases/test_security.py::test_no_secrets_in_context[{service}]"] == "failed"
    findings = run.build["security"]["findings"]
    assert {finding["where"] for finding in findings} == {"services/api/api/settings.py:4"}, findings

    with (tmp_path / "stack" / ".dockerignore").open("a") as file:
        file.write("services/api/api/settings.py\n")
    run = run_build(config, tmp_path / "reports-ignored", "-m", "security", "-k", "secrets")
    assert run.returncode == 0, run.output[-6000:]
    for service in ("api", "worker"):
        assert run.outcomes[f"build_suite/phases/test_security.py::test_no_secrets_in_context[{service}]"] == "passed"
    assert run.build["security"]["findings"] == []


def test_osv_database_finds_advisory(tmp_path: Path, faulty_stack: Path) -> None:
    database = tmp_path / "osv"
    (database / "PyPI" / "requests").mkdir(parents=True)
    (database / "PyPI" / "requests" / "PYSEC-2023-74.json").write_text(json.dumps(REQUESTS_ADVISORY))
    config = write_faulty_stack(faulty_stack.parent, f'osv_database = "{database}"')

    run = run_build(config, tmp_path / "reports", "-m", "security", "-k", "vulnerabilities")
    assert run.returncode == 1, run.output[-6000:]
    assert "PYSEC-2023-74" in run.output
    assert "requests==2.30.0" in run.output, run.output[-6000:]
    assert "2.31.0" in run.output
    security = run.build["security"]
    assert security["checks"]["vulnerabilities"]["status"] == "checked"
    assert security["checks"]["vulnerabilities"]["vulnerabilities"] == 1
    assert [finding["kind"] for finding in security["findings"]] == ["PYSEC-2023-74"]


@pytest.mark.parametrize("osv_missing, outcome, returncode", [("skip", "skipped", 0), ("fail", "failed", 1)])
def test_missing_osv_database_never_passes(tmp_path: Path, faulty_stack: Path, osv_missing: str, outcome: str,
                                           returncode: int) -> None:
    database = tmp_path / "osv-removed"
    config = write_faulty_stack(faulty_stack.parent,
                                f'osv_database = "{database}"\nosv_missing = "{osv_missing}"')

    run = run_build(config, tmp_path / "reports", "-m", "security", "-k", "vulnerabilities", "-rs")
    assert run.returncode == returncode, run.output[-6000:]
    assert run.outcomes["build_suite/phases/test_security.py::test_no_known_vulnerabilities"] == outcome
    assert "vulnerability check unavailable, not passed" in run.output
    assert str(database) in run.output
    assert "no vulnerabilities" not in run.output.lower()
    check = run.build["security"]["checks"]["vulnerabilities"]
    assert check["status"] == "unavailable"
    assert run.build["security"]["findings"] == []
