"""Jobs submitted to the API and finished by the worker in the running stack."""

import pytest

# Text with 5 words, 2 lines and 26 characters.
SAMPLE_TEXT = "build suite\nruns the stack"


@pytest.mark.usefixtures("worker_url")
def test_worker_finishes_word_count_job(jobs):
    submitted = jobs.submit("word_count", SAMPLE_TEXT)
    assert submitted.status == 201, submitted.body
    assert submitted.body["status"] == "queued"

    job = jobs.wait_finished(submitted.body["id"])

    assert job["status"] == "succeeded", job
    assert job["output"] == {"words": 5, "lines": 2, "characters": 26}
    assert job["error"] is None
    assert job["claimed_by"]
    assert job["attempts"] >= 1


@pytest.mark.usefixtures("worker_url")
@pytest.mark.parametrize(
    ("operation", "expected_text"),
    [("reverse", "kcats eht snur\netius dliub"), ("uppercase", "BUILD SUITE\nRUNS THE STACK")],
)
def test_worker_finishes_text_jobs(jobs, operation, expected_text):
    job_ids = []
    for _ in range(3):
        submitted = jobs.submit(operation, SAMPLE_TEXT)
        assert submitted.status == 201, submitted.body
        job_ids.append(submitted.body["id"])

    finished = [jobs.wait_finished(job_id) for job_id in job_ids]

    assert [job["status"] for job in finished] == ["succeeded"] * 3
    assert [job["output"] for job in finished] == [{"text": expected_text}] * 3


def test_worker_health_counts_finished_jobs(http, jobs, worker_url):
    before = http.get(f"{worker_url}/healthz").body["jobs_done"]

    submitted = jobs.submit("uppercase", "count me")
    jobs.wait_finished(submitted.body["id"])
    after = http.get(f"{worker_url}/healthz").body["jobs_done"]

    assert after >= before + 1


@pytest.mark.usefixtures("worker_url")
def test_result_for_finished_job_returns_409(http, jobs, api_url):
    submitted = jobs.submit("reverse", "abc")
    job = jobs.wait_finished(submitted.body["id"])

    response = http.post(f"{api_url}/jobs/{job['id']}/result", {"worker": job["claimed_by"], "output": {"text": "x"}})

    assert response.status == 409, response.body
    assert jobs.get(job["id"]).body["output"] == {"text": "cba"}


def test_unknown_job_returns_404(jobs):
    response = jobs.get("job-does-not-exist")

    assert response.status == 404
    assert "job-does-not-exist" in response.body["detail"]


def test_result_for_unknown_job_returns_404(http, api_url):
    response = http.post(f"{api_url}/jobs/job-does-not-exist/result", {"worker": "tests", "error": "boom"})

    assert response.status == 404


def test_unknown_operation_returns_422(jobs):
    response = jobs.submit("rot13", SAMPLE_TEXT)

    assert response.status == 422
    assert "operation" in str(response.body)


def test_oversized_text_returns_422(jobs):
    response = jobs.submit("reverse", "x" * 100_001)

    assert response.status == 422


def test_result_with_output_and_error_returns_422(http, api_url):
    body = {"worker": "tests", "output": {"text": "x"}, "error": "boom"}

    response = http.post(f"{api_url}/jobs/job-1/result", body)

    assert response.status == 422
    assert "exactly one of output and error" in str(response.body)
