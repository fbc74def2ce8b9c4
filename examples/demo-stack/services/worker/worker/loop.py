"""The polling loop: claim a job, run it, send the result, repeat."""

from __future__ import annotations

import logging
import threading

import httpx

from worker.client import ApiClient
from worker.health import HealthState
from worker.tasks import execute

logger = logging.getLogger("worker")

# While the API stays unreachable, log the first failure and then every
# FAILURE_LOG_EVERY-th one, so a worker started before the API does not fill
# the log with one line per poll.
FAILURE_LOG_EVERY = 30


def run(
    client: ApiClient,
    state: HealthState,
    poll_interval: float,
    max_jobs: int,
    stop: threading.Event,
) -> int:
    """Process jobs until `stop` is set or `max_jobs` jobs are done, and return the number done.

    A `max_jobs` of 0 means no limit.
    """
    jobs_done = 0
    failures = 0
    while not stop.is_set():
        try:
            job = client.claim()
        except httpx.HTTPError as error:
            failures += 1
            state.record_failure(f"claim failed: {error}")
            if failures == 1 or failures % FAILURE_LOG_EVERY == 0:
                logger.warning("claiming a job from %s failed (%d in a row): %s", state.api_url, failures, error)
            stop.wait(poll_interval)
            continue

        if failures:
            logger.info("API at %s reachable again after %d failed requests", state.api_url, failures)
            failures = 0
        state.record_contact()
        if job is None:
            stop.wait(poll_interval)
            continue

        if process_job(client, state, job):
            jobs_done += 1
            state.record_job_done()
            if max_jobs and jobs_done >= max_jobs:
                logger.info("finished %d jobs, which reaches --max-jobs, so the worker stops", jobs_done)
                break
    return jobs_done


def process_job(client: ApiClient, state: HealthState, job: dict) -> bool:
    """Run `job` and send its result. Return True when the API accepted it."""
    output, error = execute(job)
    try:
        finished = client.send_result(job["id"], output, error)
    except httpx.HTTPStatusError as status_error:
        # 409: the lease ran out and another worker owns the job now.
        logger.warning("API rejected the result of %s: %s", job["id"], status_error)
        return False
    except httpx.HTTPError as request_error:
        # NOTE: the result is dropped here. The API hands the job out again once
        # its lease expires, so the job is re-run rather than lost.
        state.record_failure(f"sending result failed: {request_error}")
        logger.warning("sending the result of %s failed: %s", job["id"], request_error)
        return False
    state.record_contact()
    logger.info("finished %s status=%s", finished["id"], finished["status"])
    return True
