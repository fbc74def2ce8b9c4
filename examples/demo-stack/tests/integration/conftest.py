"""Fixtures for the demo stack's integration tests.

The tests talk to a running stack. Each service's base URL comes from
BUILD_SUITE_<SERVICE>_URL, the service name upper-cased with dashes turned
into underscores (BUILD_SUITE_API_URL, BUILD_SUITE_WORKER_URL). A test that
needs a service whose variable is unset is skipped with the reason.
The client uses only the standard library, so the tests need no packages
beyond pytest on the machine that runs them.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

REQUEST_TIMEOUT = 10.0
# Upper bound for the worker to pick up and finish a job. The worker polls
# every second by default and the operations are cheap string functions, so a
# healthy stack finishes well inside this.
JOB_TIMEOUT = 30.0
FINISHED_STATUSES = ("succeeded", "failed")


def url_variable(service: str) -> str:
    return f"BUILD_SUITE_{service.upper().replace('-', '_')}_URL"


def service_url(service: str) -> str:
    variable = url_variable(service)
    url = os.environ.get(variable, "").strip()
    if not url:
        pytest.skip(f"{variable} is not set: start the stack (pytest build_suite -m full) or export it")
    return url.rstrip("/")


@dataclass(frozen=True)
class JsonResponse:
    status: int
    body: Any


class JsonClient:
    """Minimal JSON-over-HTTP client that returns error statuses instead of raising."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        # An empty ProxyHandler ignores http_proxy from the environment, which
        # would otherwise route requests for the stack's ports through a proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, url: str, body: Any = None) -> JsonResponse:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return JsonResponse(response.status, parse_json(response.read()))
        except urllib.error.HTTPError as error:
            return JsonResponse(error.code, parse_json(error.read()))

    def get(self, url: str) -> JsonResponse:
        return self.request("GET", url)

    def post(self, url: str, body: Any) -> JsonResponse:
        return self.request("POST", url, body)


def parse_json(payload: bytes) -> Any:
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")


class JobsApi:
    """The API's job endpoints, with a bounded wait for the worker to finish a job."""

    def __init__(self, client: JsonClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url

    def submit(self, operation: str, text: str) -> JsonResponse:
        return self.client.post(f"{self.base_url}/jobs", {"operation": operation, "text": text})

    def get(self, job_id: str) -> JsonResponse:
        return self.client.get(f"{self.base_url}/jobs/{job_id}")

    def wait_finished(self, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
        """Poll the job until it succeeded or failed; fail the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.get(job_id)
            assert response.status == 200, f"GET /jobs/{job_id} returned {response.status}: {response.body}"
            job = response.body
            if job["status"] in FINISHED_STATUSES:
                return job
            time.sleep(0.2)
        pytest.fail(f"job {job_id} not finished after {timeout:.0f}s; last state: {job}")


@pytest.fixture(scope="session")
def http() -> JsonClient:
    return JsonClient(REQUEST_TIMEOUT)


@pytest.fixture(scope="session")
def api_url() -> str:
    return service_url("api")


@pytest.fixture(scope="session")
def worker_url() -> str:
    return service_url("worker")


@pytest.fixture(scope="session")
def jobs(http: JsonClient, api_url: str) -> JobsApi:
    return JobsApi(http, api_url)
