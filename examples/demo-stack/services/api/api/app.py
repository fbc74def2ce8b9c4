"""HTTP interface of the job queue: clients submit jobs, workers claim and finish them."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Response, status
from pydantic import BaseModel, Field, model_validator

from api.jobs import JobNotFoundError, JobStateError, JobStore, QueueFullError

logger = logging.getLogger("api")

# The operations the worker implements; the API rejects any other with 422.
Operation = Literal["word_count", "reverse", "uppercase"]


class JobRequest(BaseModel):
    operation: Operation
    text: str = Field(max_length=100_000)


class ClaimRequest(BaseModel):
    worker: str = Field(min_length=1, max_length=200)


class ResultRequest(BaseModel):
    worker: str = Field(min_length=1, max_length=200)
    output: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def check_output_or_error(self) -> "ResultRequest":
        if (self.output is None) == (self.error is None):
            raise ValueError("set exactly one of output and error")
        return self


def create_app(store: JobStore | None = None) -> FastAPI:
    store = store if store is not None else JobStore()
    app = FastAPI(title="demo-stack api", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "jobs": store.counts()}

    @app.post("/jobs", status_code=status.HTTP_201_CREATED)
    def submit_job(request: JobRequest) -> dict[str, Any]:
        try:
            job = store.submit(request.operation, request.text)
        except QueueFullError as error:
            logger.warning("rejected job: %s", error)
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
        logger.info("queued %s operation=%s", job.id, job.operation)
        return job.to_dict()

    @app.post("/jobs/claim", responses={204: {"description": "no job is waiting"}})
    def claim_job(request: ClaimRequest) -> Any:
        job = store.claim(request.worker)
        if job is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        logger.info("leased %s to worker=%s attempt=%d", job.id, job.claimed_by, job.attempts)
        return job.to_dict()

    @app.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        try:
            return store.get(job_id).to_dict()
        except JobNotFoundError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found") from None

    @app.post("/jobs/{job_id}/result")
    def finish_job(job_id: str, request: ResultRequest) -> dict[str, Any]:
        try:
            job = store.finish(job_id, request.worker, request.output, request.error)
        except JobNotFoundError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found") from None
        except JobStateError as error:
            logger.warning("rejected result for %s from worker=%s: %s", job_id, request.worker, error)
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
        logger.info("finished %s status=%s worker=%s", job.id, job.status, request.worker)
        return job.to_dict()

    return app


app = create_app()
