"""HTTP client for the API's job endpoints."""

from __future__ import annotations

from typing import Any

import httpx


class ApiClient:
    def __init__(
        self,
        base_url: str,
        worker_name: str,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.worker_name = worker_name
        # trust_env=False: the API sits on the stack's private network, where a
        # proxy taken from HTTP_PROXY/HTTPS_PROXY in the environment cannot reach it.
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport, trust_env=False)

    def claim(self) -> dict[str, Any] | None:
        """Lease the next job, or return None when no job is waiting."""
        response = self._http.post("/jobs/claim", json={"worker": self.worker_name})
        response.raise_for_status()
        if response.status_code == httpx.codes.NO_CONTENT:
            return None
        return response.json()

    def send_result(self, job_id: str, output: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
        body = {"worker": self.worker_name, "output": output, "error": error}
        response = self._http.post(f"/jobs/{job_id}/result", json=body)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self._http.close()
