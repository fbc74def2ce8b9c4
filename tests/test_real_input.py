"""Tests of the harness on a real public stack's requirements, built through `pytest build_suite`.

The requirement files of a real multi-service RAG application (its API and its
curation worker) are read in place from REAL_INPUT, outside the repository,
and never copied into it. Every test skips, with the reason, when they are
absent.

The API's wheelhouse is built once per module and shared: the reuse check and
the image build run against the same configuration, so they find it valid.
The wheelhouse of both files is a second build, which pip's cache (shared by
every pip run of this user) keeps short. The target is the base image's real
interpreter, CPython 3.11.2 of Debian bookworm, so a wheel that needs a later
3.11 patch release must not get into either wheelhouse.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_phases import ENGINE_PROBLEM, BuildRun, leftovers, remove_project, run_build  # noqa: E402

from build_suite.engine import connect_engine  # noqa: E402
from build_suite.offline import resolve_offline  # noqa: E402
from build_suite.target import TargetSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL_INPUT = ROOT.parent / "shared" / "real-input" / "xnai"
API_REQUIREMENTS = REAL_INPUT / "requirements-api.txt"
WORKER_REQUIREMENTS = REAL_INPUT / "requirements-curation_worker.txt"
MISSING = [str(path) for path in (API_REQUIREMENTS, WORKER_REQUIREMENTS) if not path.is_file()]

# The interpreter of the bookworm base image, which pip in the image checks Requires-Python against.
TARGET_PYTHON = "3.11.2"
BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"
VALIDATION_CHECKS = ("tags", "requires_python", "duplicates", "integrity", "offline_resolution")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING), reason=f"real input not found: {', '.join(MISSING)}")]

CONFIG = """\
[project]
name = "{project}"
version = "0.1.0"

[target]
python = "{python}"
implementation = "cpython"
platform = "linux"
glibc = "2.36"
arch = "x86_64"

[wheelhouse]
requirements = [{requirements}]
output = "{output}"
timeout = 900

[[base_images]]
name = "{base_image}"
suite = "bookworm"
packages = ["python3", "python3-venv"]

[[services]]
name = "api"
dockerfile = "{context}/Dockerfile"
context = "{context}"
base_image = "{base_image}"
ports = {{ 8000 = 0 }}

[services.probe]
kind = "http"
port = 8000
path = "/healthz"
# Importing langchain, faiss and numpy on a cold start takes several seconds on 2 cores.
timeout = 180
"""

# Stage 1 installs from the wheelhouse alone, so the image build needs no network.
# Stage 2 copies only the venv and runs as an unprivileged user.
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS install
COPY wheelhouse/ /wheelhouse/
COPY requirements-api.txt /requirements/api.txt
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-index --find-links /wheelhouse \\
        --no-cache-dir --disable-pip-version-check -r /requirements/api.txt

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin app
COPY --from=install /opt/venv /opt/venv
COPY app.py /app/app.py
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8000
CMD ["/opt/venv/bin/python", "-m", "uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"]
"""

# The service imports the main packages of requirements-api.txt at start, so a
# missing or broken wheel stops uvicorn and /healthz never responds.
# python-magic is installed but not imported: it loads the libmagic system
# library, which the minimal base image lacks, and image builds have no network
# to install it.
APP = textwrap.dedent('''\
    """A minimal service that proves the wheelhouse installs and imports in the image."""

    import bs4
    import faiss
    import fastapi
    import feedparser
    import httpx
    import json_log_formatter
    import langchain_community
    import langchain_core
    import numpy
    import orjson
    import prometheus_client
    import psutil
    import pybreaker
    import pydantic
    import pydantic_settings
    import redis
    import requests
    import slowapi
    import tenacity
    import toml
    import tqdm
    import uvicorn
    from langchain_core.documents import Document

    app = fastapi.FastAPI()


    def nearest_neighbour() -> int:
        """Run one search on a small faiss index, so the native library is exercised, not only loaded."""
        vectors = numpy.eye(4, dtype="float32")
        index = faiss.IndexFlatL2(4)
        index.add(vectors)
        _, neighbours = index.search(vectors[2:3], 1)
        return int(neighbours[0][0])


    @app.get("/healthz")
    def healthz() -> fastapi.Response:
        document = Document(page_content="ready")
        body = {"neighbour": nearest_neighbour(), "document": document.page_content,
                "fastapi": fastapi.__version__, "pydantic": pydantic.VERSION, "httpx": httpx.__version__}
        status = 200 if body["neighbour"] == 2 else 500
        return fastapi.Response(orjson.dumps(body), status_code=status, media_type="application/json")
''')


def requirement_names(path: Path) -> set[str]:
    """Return the canonical project names that a requirements file lists, without extras or versions."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            names.add(canonicalize_name(Requirement(text).name))
        except InvalidRequirement:
            continue
    return names


def write_config(folder: Path, project: str, requirements: list[Path], output: Path, context: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "buildsuite.toml"
    config.write_text(CONFIG.format(
        project=project, python=TARGET_PYTHON, base_image=BASE_IMAGE, output=output, context=context,
        requirements=", ".join(f'"{path}"' for path in requirements)))
    return config


def write_api_context(context: Path) -> None:
    """Write the API service's build context: Dockerfile, app and a copy of the requirements file."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "app.py").write_text(APP)
    shutil.copyfile(API_REQUIREMENTS, context / "requirements-api.txt")


def wheel_versions(build: dict) -> dict[str, list[str]]:
    """Return each project's versions among the report's wheels."""
    versions: dict[str, list[str]] = {}
    for wheel in build["wheelhouse"]["wheels"]:
        versions.setdefault(canonicalize_name(wheel["name"]), []).append(wheel["version"])
    return versions


def excluded_by_requires_python(wheelhouse: Path, python: str) -> list[str]:
    """Return the wheels in `wheelhouse` whose Requires-Python rejects the interpreter version `python`."""
    excluded = []
    for path in sorted(wheelhouse.glob("*.whl")):
        with zipfile.ZipFile(path) as archive:
            metadata_name = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
            metadata = Parser().parsestr(archive.read(metadata_name).decode("utf-8"))
        requires_python = metadata.get("Requires-Python")
        if requires_python and not SpecifierSet(requires_python).contains(python, prereleases=True):
            excluded.append(f"{path.name} (Requires-Python {requires_python})")
    return excluded


def image_user(image_id: str) -> str:
    connection = connect_engine()
    try:
        return connection.client.images.get(image_id).attrs["Config"].get("User", "")
    finally:
        connection.close()


def phase_test_outcomes(run: BuildRun, module: str) -> dict[str, str]:
    return {nodeid: outcome for nodeid, outcome in run.outcomes.items() if f"/{module}::" in nodeid}


def assert_wheelhouse_valid(run: BuildRun) -> None:
    """Assert that the wheelhouse phase passed: every validation check ran and passed, and the SBOM exists."""
    build = run.build
    assert build["wheelhouse"] is not None, run.output[-6000:]
    assert build["wheelhouse"]["status"] in ("built", "updated", "reused"), build["wheelhouse"]
    checks = (build.get("validation") or {}).get("checks", {})
    not_run = [name for name in VALIDATION_CHECKS if name not in checks]
    assert not not_run, f"validation checks that did not run: {not_run}"
    # All failed checks in one message, because one wheel can fail several checks for one cause.
    failed = {name: checks[name]["problems"] for name in VALIDATION_CHECKS if not checks[name]["passed"]}
    assert not failed, f"failed validation checks: {failed}"
    assert Path(build["validation"]["sbom"]).is_file(), build["validation"]
    outcomes = phase_test_outcomes(run, "test_wheelhouse_validation.py")
    assert len(outcomes) == len(VALIDATION_CHECKS) + 1, outcomes
    assert set(outcomes.values()) == {"passed"}, outcomes
    assert build["phases"]["wheelhouse"]["outcome"] == "passed", build["phases"]["wheelhouse"]
    assert run.returncode == 0, run.output[-6000:]


# ---------------------------------------------------------------- the API's wheelhouse, image and container


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory):
    """Write the API's configuration; its wheelhouse goes inside the service's build context."""
    project = "real-input-api"
    folder = tmp_path_factory.mktemp("real-api")
    context = folder / "context"
    write_api_context(context)
    config = write_config(folder / "config", project, [API_REQUIREMENTS], context / "wheelhouse", context)
    yield config
    remove_project(project)


@pytest.fixture(scope="module")
def api_wheelhouse(api_stack: Path) -> BuildRun:
    return run_build(api_stack, api_stack.parent.parent / "reports-wheelhouse", "-m", "wheelhouse")


def test_api_wheelhouse_passes_validation(api_wheelhouse: BuildRun) -> None:
    assert_wheelhouse_valid(api_wheelhouse)
    assert api_wheelhouse.build["wheelhouse"]["pip_runs"] >= 1, api_wheelhouse.build["wheelhouse"]


def test_api_wheelhouse_holds_every_requirement(api_wheelhouse: BuildRun) -> None:
    assert api_wheelhouse.build["wheelhouse"] is not None, api_wheelhouse.output[-6000:]
    versions = wheel_versions(api_wheelhouse.build)
    missing = requirement_names(API_REQUIREMENTS) - set(versions)
    assert not missing, f"requirements without a wheel: {sorted(missing)}"
    # These three are published only as sdists, so the harness must have built their wheels.
    for name in ("json-log-formatter", "pybreaker", "sgmllib3k"):
        assert name in versions, f"no wheel built for the sdist-only project {name}"
    # requests>=2.31.0 and requests==2.32.5 in the same file make one requirement, not two.
    assert versions["requests"] == ["2.32.5"], versions["requests"]
    duplicated = {name: found for name, found in versions.items() if len(found) > 1}
    assert not duplicated, f"projects with more than one wheel: {duplicated}"


def test_api_wheelhouse_fits_target_patch_release(api_wheelhouse: BuildRun) -> None:
    assert api_wheelhouse.build["wheelhouse"] is not None, api_wheelhouse.output[-6000:]
    excluded = excluded_by_requires_python(Path(api_wheelhouse.build["wheelhouse"]["output"]), TARGET_PYTHON)
    assert not excluded, f"wheels that Python {TARGET_PYTHON} of the base image cannot install: {excluded}"


def test_api_offline_check_uses_target_markers(api_wheelhouse: BuildRun) -> None:
    # redis 6.4.0 requires async-timeout only where python_full_version < "3.11.3", so the
    # offline check must decide by the target's patch release, not by the host's.
    assert api_wheelhouse.build["wheelhouse"] is not None, api_wheelhouse.output[-6000:]
    wheelhouse = Path(api_wheelhouse.build["wheelhouse"]["output"])
    bookworm = resolve_offline(wheelhouse, [API_REQUIREMENTS], TargetSpec(python=TARGET_PYTHON, glibc="2.36"))
    later = resolve_offline(wheelhouse, [API_REQUIREMENTS], TargetSpec(python="3.11.3", glibc="2.36"))
    installed = {name for name, _ in bookworm.installs}
    named = [problem.message for problem in bookworm.problems if "async-timeout" in problem.message]
    assert "async-timeout" in installed or named, (bookworm.problems, sorted(installed))
    assert later.problems == [], later.problems
    assert "async-timeout" not in {name for name, _ in later.installs}


def test_api_wheelhouse_second_run_reuses(api_wheelhouse: BuildRun, api_stack: Path) -> None:
    assert api_wheelhouse.build["wheelhouse"] is not None, "needs the first wheelhouse build"
    run = run_build(api_stack, api_stack.parent.parent / "reports-wheelhouse-again", "-m", "wheelhouse")
    wheelhouse = run.build["wheelhouse"]
    assert wheelhouse is not None, run.output[-6000:]
    assert wheelhouse["status"] == "reused", wheelhouse
    assert wheelhouse["pip_runs"] == 0, wheelhouse
    assert wheelhouse["counts"]["reused"] == wheelhouse["counts"]["wheels"], wheelhouse["counts"]
    assert wheelhouse["counts"]["wheels"] == len(api_wheelhouse.build["wheelhouse"]["wheels"])
    assert "resolving the requirements with pip" not in run.output


def test_api_image_installs_offline_and_starts(api_wheelhouse: BuildRun, api_stack: Path) -> None:
    assert api_wheelhouse.build["wheelhouse"] is not None, "needs the first wheelhouse build"
    if ENGINE_PROBLEM:
        pytest.skip(f"no container engine: {ENGINE_PROBLEM}")
    run = run_build(api_stack, api_stack.parent.parent / "reports-containers", "-m", "containers")
    build = run.build
    # Cleanup must hold whether or not the image built, so it is checked first.
    assert leftovers(build["build_id"]) == {"containers": [], "networks": []}
    assert build["wheelhouse"]["status"] == "reused", build["wheelhouse"]
    images = {image["service"]: image for image in build["images"] or []}
    assert "api" in images, run.output[-6000:]
    assert images["api"]["status"] in ("built", "cached"), images["api"]["error"] or run.output[-6000:]
    containers = {container["service"]: container for container in build["containers"] or []}
    assert "api" in containers, run.output[-6000:]
    assert containers["api"]["status"] == "healthy", containers["api"]
    assert build["phases"]["containers"]["outcome"] == "passed", build["phases"]["containers"]
    assert run.returncode == 0, run.output[-6000:]
    assert image_user(images["api"]["image_id"]) == "10001:10001"


# ---------------------------------------------------------------- both services' files in one wheelhouse


@pytest.fixture(scope="module")
def both_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> BuildRun:
    folder = tmp_path_factory.mktemp("real-both")
    context = folder / "context"
    write_api_context(context)
    config = write_config(folder / "config", "real-input-both", [API_REQUIREMENTS, WORKER_REQUIREMENTS],
                          folder / "wheelhouse", context)
    return run_build(config, folder / "reports", "-m", "wheelhouse")


def test_both_files_pass_validation(both_wheelhouse: BuildRun) -> None:
    outcomes = phase_test_outcomes(both_wheelhouse, "test_wheelhouse.py")
    pins = [outcome for nodeid, outcome in outcomes.items() if "test_requirement_pins_agree" in nodeid]
    assert pins == ["passed"], outcomes
    assert_wheelhouse_valid(both_wheelhouse)


def test_both_files_share_one_version(both_wheelhouse: BuildRun) -> None:
    assert both_wheelhouse.build["wheelhouse"] is not None, both_wheelhouse.output[-6000:]
    versions = wheel_versions(both_wheelhouse.build)
    missing = (requirement_names(API_REQUIREMENTS) | requirement_names(WORKER_REQUIREMENTS)) - set(versions)
    assert not missing, f"requirements without a wheel: {sorted(missing)}"
    # Both files pin httpx==0.27.2; the worker alone adds python-dotenv.
    assert versions["httpx"] == ["0.27.2"], versions["httpx"]
    assert versions["requests"] == ["2.32.5"], versions["requests"]
    assert versions["python-dotenv"] == ["1.2.1"], versions["python-dotenv"]
    excluded = excluded_by_requires_python(Path(both_wheelhouse.build["wheelhouse"]["output"]), TARGET_PYTHON)
    assert not excluded, f"wheels that Python {TARGET_PYTHON} of the base image cannot install: {excluded}"
