"""In-memory job queue shared by the API's request handlers."""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
FINISHED_STATUSES = (SUCCEEDED, FAILED)


class QueueFullError(Exception):
    """Raised when a job is submitted while too many jobs are still unfinished."""


class JobNotFoundError(KeyError):
    """Raised for a job id that the store does not contain."""


class JobStateError(Exception):
    """Raised when a result arrives for a job that is not running or is leased to another worker."""


@dataclass
class Job:
    id: str
    operation: str
    text: str
    status: str = QUEUED
    created_at: float = field(default_factory=time.time)
    claimed_at: float | None = None
    claimed_by: str | None = None
    attempts: int = 0
    finished_at: float | None = None
    output: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "text": self.text,
            "status": self.status,
            "created_at": self.created_at,
            "claimed_at": self.claimed_at,
            "claimed_by": self.claimed_by,
            "attempts": self.attempts,
            "finished_at": self.finished_at,
            "output": self.output,
            "error": self.error,
        }


class JobStore:
    """Thread-safe FIFO job queue with leases.

    A claimed job is leased to one worker for `lease_seconds`. When the lease
    runs out before a result arrives (the worker crashed or lost the network),
    the next claim hands the job out again.
    """

    def __init__(
        self,
        max_unfinished: int = 1000,
        max_finished: int = 1000,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._max_unfinished = max_unfinished
        self._max_finished = max_finished
        self._lease_seconds = lease_seconds
        self._clock = clock

    def submit(self, operation: str, text: str) -> Job:
        with self._lock:
            unfinished = sum(1 for job in self._jobs.values() if job.status not in FINISHED_STATUSES)
            if unfinished >= self._max_unfinished:
                raise QueueFullError(
                    f"queue full: {unfinished} jobs are queued or running (maximum {self._max_unfinished}), retry later"
                )
            job = Job(id=f"job-{next(self._ids)}", operation=operation, text=text, created_at=self._clock())
            self._jobs[job.id] = job
            return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            return self._find(job_id)

    def claim(self, worker: str) -> Job | None:
        """Lease the oldest queued or lease-expired job to `worker`, or return None."""
        now = self._clock()
        with self._lock:
            for job in self._jobs.values():
                if job.status == QUEUED or (job.status == RUNNING and self._lease_expired(job, now)):
                    job.status = RUNNING
                    job.claimed_at = now
                    job.claimed_by = worker
                    job.attempts += 1
                    return job
            return None

    def finish(self, job_id: str, worker: str, output: dict[str, Any] | None, error: str | None) -> Job:
        """Store the result of a running job and mark it succeeded or failed.

        Only the worker holding the current lease may finish the job, so a late
        result from a worker whose lease expired is rejected.
        """
        with self._lock:
            job = self._find(job_id)
            if job.status != RUNNING:
                raise JobStateError(f"job {job_id} is {job.status}, expected {RUNNING}")
            if job.claimed_by != worker:
                raise JobStateError(f"job {job_id} is leased to {job.claimed_by!r}, not to {worker!r}")
            job.status = FAILED if error is not None else SUCCEEDED
            job.output = output
            job.error = error
            job.finished_at = self._clock()
            self._evict_finished()
            return job

    def counts(self) -> dict[str, int]:
        with self._lock:
            counts = {status: 0 for status in (QUEUED, RUNNING, SUCCEEDED, FAILED)}
            for job in self._jobs.values():
                counts[job.status] += 1
            return counts

    def _find(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFoundError(job_id) from None

    def _lease_expired(self, job: Job, now: float) -> bool:
        return job.claimed_at is not None and now - job.claimed_at >= self._lease_seconds

    def _evict_finished(self) -> None:
        # Finished jobs are kept so clients can read results, but only the newest
        # `max_finished` of them, which bounds memory for a long-running API.
        finished = [job.id for job in self._jobs.values() if job.status in FINISHED_STATUSES]
        for job_id in finished[: max(0, len(finished) - self._max_finished)]:
            del self._jobs[job_id]
