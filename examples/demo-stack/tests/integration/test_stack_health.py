"""Health endpoints of the running demo stack."""

JOB_STATUSES = {"queued", "running", "succeeded", "failed"}


def test_api_healthz_returns_ok(http, api_url):
    response = http.get(f"{api_url}/healthz")

    assert response.status == 200, response.body
    assert response.body["status"] == "ok"
    assert set(response.body["jobs"]) == JOB_STATUSES


def test_worker_healthz_reports_api_contact(http, worker_url):
    response = http.get(f"{worker_url}/healthz")

    assert response.status == 200, response.body
    assert response.body["status"] == "ok"
    assert response.body["last_error"] is None
    assert response.body["seconds_since_api_contact"] is not None


def test_worker_unknown_path_returns_404(http, worker_url):
    response = http.get(f"{worker_url}/metrics")

    assert response.status == 404
    assert "/healthz" in response.body["detail"]
